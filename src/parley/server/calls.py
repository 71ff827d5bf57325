"""The calls of this process: pending (created over REST), live, and recently ended.

A record's ``status`` moves along one table, like the conversation's own state
(``parley.conversation.state``); an illegal move is our bug and raises::

    PENDING ──socket claims it──▶ CONNECTING ──handshake done──▶ LIVE ──▶ ENDED
       ▲                              │
       └──── the peer left before its start (it may retry) ┘
    PENDING/CONNECTING ──▶ ENDED (deleted, refused, engine unavailable)
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from parley.conversation.journal import Journal
from parley.conversation.session import Conversation
from parley.engines.seams import CallEngine
from parley.engines.spec import EngineKind
from parley.errors import LocalProtocolError
from parley.flows import FlowConfig
from parley.store.records import StoredSession
from parley.transports.platform import PlatformStream

__all__ = ["CALL_TRANSITIONS", "CallOptions", "CallRecord", "CallRegistry", "CallStatus"]


class CallStatus(StrEnum):
    PENDING = "pending"
    CONNECTING = "connecting"
    LIVE = "live"
    ENDED = "ended"


_C = CallStatus

CALL_TRANSITIONS: Final[dict[CallStatus, frozenset[CallStatus]]] = {
    _C.PENDING: frozenset({_C.CONNECTING, _C.ENDED}),
    _C.CONNECTING: frozenset({_C.PENDING, _C.LIVE, _C.ENDED}),
    _C.LIVE: frozenset({_C.ENDED}),
    _C.ENDED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class CallOptions:
    """What an embedding layer (seed 001's connection managers) asks of one socket's
    call: its id (the platform's own session id), what the assistant says first, and
    how many caller audio chunks its engine may hold (None: the engine's default)."""

    session_id: str | None = None
    greeting: str = ""
    audio_queue: int | None = None


@dataclass(slots=True)
class CallRecord:
    """One conversation as the server sees it (before, during and after the call)."""

    id: str
    engine: EngineKind
    brain: str
    voice: str
    system_prompt: str
    kind: str | None = None  # the platform's name once a socket carries it
    user_id: str | None = None
    # The owner: the principal that created it (parley.security.tenancy), never a
    # client's field; ``user_id`` above is the app's user (context providers, hooks).
    tenant: str = "default"
    owner_id: str = "anonymous"
    metadata: dict[str, str] = field(default_factory=dict)
    flow: FlowConfig | None = None  # its own guided flow (POST /conversations); else the app's
    max_seconds: float | None = None  # its own limit on the call's length, under the tier's
    call_sid: str = ""
    status: CallStatus = CallStatus.PENDING
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    ended_at: float | None = None
    journal: Journal | None = None  # transcript, metrics, errors once a call runs
    conversation: Conversation | None = None  # phone and browser calls
    stream: PlatformStream | None = None
    live_engine: CallEngine | None = None
    end_requested: bool = False
    end_reason: str = ""  # why it ended, as the session store keeps it
    resumed_turns: int = 0  # turns carried over from the stored session it resumes
    resume_from: StoredSession | None = None  # that session, until the call starts
    greeting: str = ""  # said by the assistant when the call starts ("": it listens)
    audio_queue: int | None = None  # the engine's caller-audio queue (None: its default)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def move(self, target: CallStatus) -> None:
        """Change ``status`` along :data:`CALL_TRANSITIONS` (raises otherwise)."""
        if target is self.status:
            return
        if target not in CALL_TRANSITIONS[self.status]:
            raise LocalProtocolError(
                f"call {self.id} cannot go from {self.status.value} to {target.value}",
                code="illegal_call_transition",
            )
        self.status = target

    @property
    def serving(self) -> str:
        """The engine answering now (or last), e.g. "cascade" after a failover."""
        if self.live_engine is not None:
            return self.live_engine.stats().serving
        if self.journal is not None and self.journal.serving:
            return self.journal.serving
        return self.engine.value

    def health(self) -> dict[str, Any]:
        stats = self.live_engine.stats() if self.live_engine is not None else None
        conv = self.conversation
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status.value,
            "state": conv.state.value if conv is not None else None,
            "engine": self.serving,
            "brain": self.brain,
            "queue_depths": dict(stats.queue_depths) if stats is not None else {},
            "dropped_audio_chunks": stats.dropped_audio_chunks if stats is not None else 0,
        }


class CallRegistry:
    """Records by id. Ended calls are kept (the newest ``keep_ended``; the switchboard
    keeps none: they live in its session store) for GET/transcript."""

    def __init__(self, *, max_calls: int = 1000, keep_ended: int = 1000) -> None:
        self.max_calls = max_calls
        self.keep_ended = keep_ended
        self._records: dict[str, CallRecord] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        #: Open WebSockets served by this process (handshakes included).
        self.connections = 0

    def new_id(self) -> str:
        return f"conv_{secrets.token_hex(8)}"

    def add(self, record: CallRecord) -> CallRecord:
        self._records[record.id] = record
        return record

    def get(self, call_id: str) -> CallRecord | None:
        return self._records.get(call_id)

    def records(self) -> list[CallRecord]:
        """Every record kept: pending, live and recently ended."""
        return list(self._records.values())

    def active(self) -> list[CallRecord]:
        """Calls that hold (or are about to hold) a WebSocket."""
        return [r for r in self._records.values() if r.status in (_C.CONNECTING, _C.LIVE)]

    def open_count(self) -> int:
        """Calls that hold (or are about to hold) a socket: what ``max_calls`` limits.
        Pending conversations count against their creator (its limits), not here."""
        return sum(1 for r in self._records.values() if r.status in (_C.CONNECTING, _C.LIVE))

    def pending(self) -> list[CallRecord]:
        return [r for r in self._records.values() if r.status is _C.PENDING]

    def ended(self, record: CallRecord) -> None:
        record.move(_C.ENDED)
        record.ended_at = time.time()
        record.stream = None  # the socket is gone; keep transcript and metrics only
        record.live_engine = None
        record.finished.set()
        self._ended[record.id] = None
        while len(self._ended) > self.keep_ended:
            old, _ = self._ended.popitem(last=False)
            self._records.pop(old, None)

    async def wait_finished(self, records: list[CallRecord], seconds: float) -> bool:
        """Wait up to ``seconds`` for ``records`` to end; True if they all did."""
        pending = [r for r in records if not r.finished.is_set()]
        if not pending:
            return True
        waiters = [asyncio.ensure_future(r.finished.wait()) for r in pending]
        try:
            _, still = await asyncio.wait(waiters, timeout=seconds)
        finally:
            for w in waiters:
                w.cancel()
        return not still

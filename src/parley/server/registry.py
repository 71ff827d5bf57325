"""The calls of this process: pending (created over REST), live, and recently ended."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from parley.config import EngineKind
from parley.conversation.session import Conversation
from parley.transports.browser import BrowserCallStream
from parley.transports.twilio import TwilioCallStream

__all__ = ["CallKind", "CallRecord", "CallRegistry", "CallStatus"]

CallKind: TypeAlias = Literal["browser", "twilio"]
CallStatus: TypeAlias = Literal["pending", "connecting", "live", "ended"]


@dataclass(slots=True)
class CallRecord:
    """One conversation as the server sees it (before, during and after the call)."""

    id: str
    engine: EngineKind
    brain: str
    voice: str
    system_prompt: str
    kind: CallKind | None = None
    user_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    call_sid: str = ""
    status: CallStatus = "pending"
    created_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    conversation: Conversation | None = None
    stream: TwilioCallStream | BrowserCallStream | None = None
    end_requested: bool = False
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def health(self) -> dict[str, Any]:
        conv = self.conversation
        stats = conv.engine.stats() if conv is not None else None
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "state": conv.state.value if conv is not None else None,
            "engine": stats.serving if stats is not None else self.engine.value,
            "brain": self.brain,
            "queue_depths": dict(stats.queue_depths) if stats is not None else {},
            "dropped_audio_chunks": stats.dropped_audio_chunks if stats is not None else 0,
        }


class CallRegistry:
    """Records by id. Ended calls are kept (the newest ``keep_ended``) for GET/transcript."""

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
        return [r for r in self._records.values() if r.status in ("connecting", "live")]

    def open_count(self) -> int:
        """Calls not yet ended (pending ones included): what ``max_calls`` limits."""
        return sum(1 for r in self._records.values() if r.status != "ended")

    def ended(self, record: CallRecord) -> None:
        record.status = "ended"
        record.ended_at = time.time()
        record.stream = None  # the socket is gone; keep transcript and metrics only
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

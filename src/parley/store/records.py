"""What a session store keeps, and the :class:`SessionStore` seam every backend fills.

A session is its :class:`SessionRecord` (who owns it, its state, what is needed to
continue it: ``config``) and its finished turns (:class:`StoredTurn`, numbered from 0).
``append_turn`` is called once per finished turn and returns only when the turn is
committed, so the next turn never begins before the last one is safe; appending the
same index again replaces it (a retry is harmless).

:meth:`StoredSession.history` turns the stored turns into the engine's messages
(``HistorySeedable.seed_history``) for a browser that reconnects within
:meth:`StoredSession.resumable`'s window.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final, Literal, Protocol, runtime_checkable

from parley.errors import ParleyError
from parley.events import Role
from parley.providers.seams import Message

__all__ = [
    "RESUMABLE_REASONS",
    "SessionRecord",
    "SessionStatus",
    "SessionStore",
    "StoredSession",
    "StoredTurn",
    "TurnLike",
    "UnknownSession",
]

SessionStatus = Literal["pending", "live", "ended"]
#: End reasons a session may be resumed after (the caller did not hang up on purpose).
RESUMABLE_REASONS: Final = frozenset({"disconnected", "node_lost"})


class UnknownSession(ParleyError):
    """A turn for a session that was never saved (``save_record`` comes first)."""

    code = "unknown_session"


class TurnLike(Protocol):
    """What :meth:`StoredTurn.from_turn` reads (``parley.conversation.Turn`` has it)."""

    @property
    def role(self) -> Role: ...
    @property
    def text(self) -> str: ...
    @property
    def started_at(self) -> float: ...
    @property
    def ended_at(self) -> float | None: ...
    @property
    def interrupted(self) -> bool: ...
    @property
    def response_id(self) -> str: ...
    @property
    def failed(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class StoredTurn:
    """One finished turn. ``text`` of an interrupted reply is what the caller heard; a
    ``failed`` reply's text is the apology that was spoken."""

    index: int
    role: str
    text: str
    started_at: float
    ended_at: float | None = None
    interrupted: bool = False
    failed: bool = False
    response_id: str = ""

    @classmethod
    def from_turn(cls, turn: TurnLike, index: int) -> StoredTurn:
        return cls(
            index,
            turn.role.value,
            turn.text,
            turn.started_at,
            turn.ended_at,
            turn.interrupted,
            turn.failed,
            turn.response_id,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str | bytes) -> StoredTurn:
        return cls(**json.loads(raw))


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session's row. ``tenant``/``user_id`` are the owner, set from the principal
    that created it (never from a client's body). ``config`` is what a reconnect needs
    to rebuild the call (system prompt, voice, engine choice); ``metadata`` is the
    client's own, bounded by the REST layer."""

    session_id: str
    tenant: str
    user_id: str
    created_at: float
    status: SessionStatus = "pending"
    platform: str = ""
    node_id: str = ""
    updated_at: float = 0.0
    ended_at: float | None = None
    end_reason: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.updated_at:  # a new record was last active when it was created
            object.__setattr__(self, "updated_at", self.created_at)

    def ended(self, at: float, reason: str) -> SessionRecord:
        return replace(self, status="ended", ended_at=at, end_reason=reason, updated_at=at)

    def to_row(self) -> dict[str, Any]:
        """Flat strings and numbers (metadata and config as JSON)."""
        row = asdict(self)
        row["metadata"] = json.dumps(self.metadata, ensure_ascii=False)
        row["config"] = json.dumps(self.config, ensure_ascii=False)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SessionRecord:
        values = dict(row)
        values["metadata"] = json.loads(values.get("metadata") or "{}")
        values["config"] = json.loads(values.get("config") or "{}")
        ended = values.get("ended_at")
        values["ended_at"] = None if ended in (None, "") else float(ended)
        for name in ("created_at", "updated_at"):
            values[name] = float(values[name])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class StoredSession:
    record: SessionRecord
    turns: tuple[StoredTurn, ...] = ()

    def history(self) -> list[Message]:
        """The user and assistant turns as chat messages, oldest first. Failed replies
        (a provider error; their text is the apology) are left out."""
        out: list[Message] = []
        for t in self.turns:
            if t.failed or not t.text or t.role not in (Role.USER, Role.ASSISTANT):
                continue
            out.append(Message(Role(t.role), t.text))
        return out

    def resumable(self, now: float, within_seconds: float) -> bool:
        """Whether a reconnect may continue this session: it ended by a dropped
        connection or a lost node, less than ``within_seconds`` ago."""
        r = self.record
        return (
            r.status == "ended"
            and r.end_reason in RESUMABLE_REASONS
            and r.ended_at is not None
            and now - r.ended_at <= within_seconds
        )


@runtime_checkable
class SessionStore(Protocol):
    """Durable sessions. Every method is safe to call from the event loop."""

    async def save_record(self, record: SessionRecord) -> None:
        """Insert or replace the record (the turns are kept)."""
        ...

    async def append_turn(self, session_id: str, turn: StoredTurn) -> None:
        """Commit one finished turn; returns once it is durable. ``UnknownSession``
        if ``save_record`` was never called for ``session_id``."""
        ...

    async def load(self, session_id: str) -> StoredSession | None: ...

    async def get_record(self, session_id: str) -> SessionRecord | None: ...

    async def list(
        self,
        *,
        tenant: str | None,
        user_id: str | None = None,
        status: SessionStatus | None = None,
        limit: int = 100,
    ) -> Sequence[SessionRecord]:
        """Newest first; ``tenant=None`` lists every tenant (operators only)."""
        ...

    async def mark_ended(self, session_id: str, *, ended_at: float, reason: str = "") -> bool:
        """End a session that is not ended yet; False if absent or already ended."""
        ...

    async def purge_older_than(self, cutoff: float) -> int:
        """Delete sessions (and their turns) whose last activity — ``ended_at``, else
        ``updated_at`` — is before ``cutoff``; how many were deleted."""
        ...

    async def delete(self, session_id: str) -> bool: ...

    async def aclose(self) -> None: ...

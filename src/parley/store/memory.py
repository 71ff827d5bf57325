"""The in-memory :class:`~parley.store.records.SessionStore`: one process, nothing
survives a restart (tests, and servers run with ``persist_conversations=False``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from parley.store.records import (
    SessionRecord,
    SessionStatus,
    StoredSession,
    StoredTurn,
    UnknownSession,
)

__all__ = ["MemorySessionStore"]


class MemorySessionStore:
    def __init__(self) -> None:
        self._records: dict[str, SessionRecord] = {}
        self._turns: dict[str, dict[int, StoredTurn]] = {}

    async def save_record(self, record: SessionRecord) -> None:
        self._records[record.session_id] = record
        self._turns.setdefault(record.session_id, {})

    async def append_turn(self, session_id: str, turn: StoredTurn) -> None:
        turns = self._turns.get(session_id)
        if turns is None:
            raise UnknownSession(f"no session {session_id!r}")
        turns[turn.index] = turn
        record = self._records[session_id]
        active = turn.ended_at or turn.started_at
        if active > record.updated_at:
            self._records[session_id] = replace(record, updated_at=active)

    async def load(self, session_id: str) -> StoredSession | None:
        record = self._records.get(session_id)
        if record is None:
            return None
        turns = self._turns.get(session_id, {})
        return StoredSession(record, tuple(turns[i] for i in sorted(turns)))

    async def get_record(self, session_id: str) -> SessionRecord | None:
        return self._records.get(session_id)

    async def list(
        self,
        *,
        tenant: str | None,
        user_id: str | None = None,
        status: SessionStatus | None = None,
        limit: int = 100,
    ) -> Sequence[SessionRecord]:
        found = [
            r
            for r in self._records.values()
            if (tenant is None or r.tenant == tenant)
            and (user_id is None or r.user_id == user_id)
            and (status is None or r.status == status)
        ]
        found.sort(key=lambda r: r.created_at, reverse=True)
        return found[:limit]

    async def mark_ended(self, session_id: str, *, ended_at: float, reason: str = "") -> bool:
        record = self._records.get(session_id)
        if record is None or record.status == "ended":
            return False
        self._records[session_id] = record.ended(ended_at, reason)
        return True

    async def purge_older_than(self, cutoff: float) -> int:
        old = [
            sid
            for sid, r in self._records.items()
            if (r.ended_at if r.ended_at is not None else r.updated_at) < cutoff
        ]
        for sid in old:
            await self.delete(sid)
        return len(old)

    async def delete(self, session_id: str) -> bool:
        self._turns.pop(session_id, None)
        return self._records.pop(session_id, None) is not None

    async def aclose(self) -> None:
        return None

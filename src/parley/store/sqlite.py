"""The SQLite :class:`~parley.store.records.SessionStore`: the default, one file beside
the app, shared safely by the worker processes of one machine.

WAL journal (readers never block the writer, and several processes can share the
file) with ``synchronous=NORMAL`` by default: in WAL mode a commit is in the
operating system's page cache when ``append_turn`` returns, so it survives any crash
of the *process* (``kill -9``, OOM, a segfault in a model) — which is what the
durability test proves. What NORMAL gives up is the last few commits after an OS crash
or power loss (the file is never corrupted, it rolls back to a checkpoint); FULL
(``synchronous="FULL"``, and the HIPAA policy) adds one fsync per turn for that.

All statements run on one thread per store (``parley.store._sqlite``), never on the
event loop. Schema (``PRAGMA user_version`` = 1)::

    sessions(session_id PK, tenant, user_id, status, platform, node_id, created_at,
             updated_at, ended_at, end_reason, metadata JSON, config JSON)
    turns(session_id → sessions ON DELETE CASCADE, idx, role, text, started_at,
          ended_at, interrupted, failed, response_id; PK (session_id, idx))
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from parley.store._sqlite import SqliteThread, Synchronous, transaction
from parley.store.records import (
    SessionRecord,
    SessionStatus,
    StoredSession,
    StoredTurn,
    UnknownSession,
)

__all__ = ["SCHEMA", "SqliteSessionStore"]

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'live', 'ended')),
    platform   TEXT NOT NULL DEFAULT '',
    node_id    TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    ended_at   REAL,
    end_reason TEXT NOT NULL DEFAULT '',
    metadata   TEXT NOT NULL DEFAULT '{}',
    config     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS sessions_owner ON sessions (tenant, user_id, created_at);
CREATE INDEX IF NOT EXISTS sessions_activity ON sessions (coalesce(ended_at, updated_at));
CREATE TABLE IF NOT EXISTS turns (
    session_id  TEXT NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    role        TEXT NOT NULL,
    text        TEXT NOT NULL,
    started_at  REAL NOT NULL,
    ended_at    REAL,
    interrupted INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    response_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (session_id, idx)
) WITHOUT ROWID;
PRAGMA user_version = 1;
"""

_COLUMNS: Final = (
    "session_id, tenant, user_id, status, platform, node_id, created_at, updated_at, "
    "ended_at, end_reason, metadata, config"
)


def _record(row: sqlite3.Row) -> SessionRecord:
    return SessionRecord.from_row(dict(row))


def _turn(row: sqlite3.Row) -> StoredTurn:
    return StoredTurn(
        row["idx"],
        row["role"],
        row["text"],
        row["started_at"],
        row["ended_at"],
        bool(row["interrupted"]),
        bool(row["failed"]),
        row["response_id"],
    )


class SqliteSessionStore:
    """Sessions in the SQLite file ``path`` (created with its directory if missing)."""

    def __init__(self, path: str | Path, *, synchronous: Synchronous = "NORMAL") -> None:
        self.path = Path(path)
        self._db = SqliteThread(path, schema=SCHEMA, synchronous=synchronous, name="parley-store")

    async def save_record(self, record: SessionRecord) -> None:
        row = record.to_row()
        row["updated_at"] = row["updated_at"] or record.created_at
        placeholders = ", ".join(f":{c.strip()}" for c in _COLUMNS.split(","))
        updates = ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in _COLUMNS.split(",")[1:])
        sql = (
            f"INSERT INTO sessions ({_COLUMNS}) VALUES ({placeholders}) "
            f"ON CONFLICT (session_id) DO UPDATE SET {updates}"
        )
        await self._db.run(lambda c: c.execute(sql, row).close())

    async def append_turn(self, session_id: str, turn: StoredTurn) -> None:
        values: dict[str, Any] = {
            "sid": session_id,
            "idx": turn.index,
            "role": turn.role,
            "text": turn.text,
            "started_at": turn.started_at,
            "ended_at": turn.ended_at,
            "interrupted": int(turn.interrupted),
            "failed": int(turn.failed),
            "response_id": turn.response_id,
        }

        def write(c: sqlite3.Connection) -> None:
            try:
                c.execute(
                    "INSERT OR REPLACE INTO turns VALUES (:sid, :idx, :role, :text, "
                    ":started_at, :ended_at, :interrupted, :failed, :response_id)",
                    values,
                )
            except sqlite3.IntegrityError:
                raise UnknownSession(f"no session {session_id!r}") from None
            c.execute(
                "UPDATE sessions SET updated_at = max(updated_at, :t) WHERE session_id = :sid",
                {"t": turn.ended_at or turn.started_at, "sid": session_id},
            )

        # One transaction per turn: when this returns, the turn is committed.
        await self._db.run(lambda c: transaction(c, write))

    async def load(self, session_id: str) -> StoredSession | None:
        def read(c: sqlite3.Connection) -> StoredSession | None:
            row = c.execute(
                f"SELECT {_COLUMNS} FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            if row is None:
                return None
            turns = c.execute(
                "SELECT * FROM turns WHERE session_id = ? ORDER BY idx", (session_id,)
            ).fetchall()
            return StoredSession(_record(row), tuple(_turn(t) for t in turns))

        # One read transaction, so the record and its turns are of the same moment.
        return await self._db.run(lambda c: transaction(c, read))

    async def get_record(self, session_id: str) -> SessionRecord | None:
        def read(c: sqlite3.Connection) -> SessionRecord | None:
            row = c.execute(
                f"SELECT {_COLUMNS} FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            return None if row is None else _record(row)

        return await self._db.run(read)

    async def list(
        self,
        *,
        tenant: str | None,
        user_id: str | None = None,
        status: SessionStatus | None = None,
        limit: int = 100,
    ) -> Sequence[SessionRecord]:
        where, args = [], []
        for column, value in (("tenant", tenant), ("user_id", user_id), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = f"SELECT {_COLUMNS} FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC LIMIT ?"
        params = (*args, max(0, limit))
        rows = await self._db.run(lambda c: c.execute(sql, params).fetchall())
        return [_record(r) for r in rows]

    async def mark_ended(self, session_id: str, *, ended_at: float, reason: str = "") -> bool:
        sql = (
            "UPDATE sessions SET status = 'ended', ended_at = ?, end_reason = ?, "
            "updated_at = max(updated_at, ?) WHERE session_id = ? AND status != 'ended'"
        )
        params = (ended_at, reason, ended_at, session_id)
        n = await self._db.run(lambda c: c.execute(sql, params).rowcount)
        return n > 0

    async def purge_older_than(self, cutoff: float) -> int:
        sql = "DELETE FROM sessions WHERE coalesce(ended_at, updated_at) < ?"
        n: int = await self._db.run(lambda c: c.execute(sql, (cutoff,)).rowcount)
        return n

    async def delete(self, session_id: str) -> bool:
        sql = "DELETE FROM sessions WHERE session_id = ?"
        n = await self._db.run(lambda c: c.execute(sql, (session_id,)).rowcount)
        return n > 0

    async def aclose(self) -> None:
        await self._db.aclose()

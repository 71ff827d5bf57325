"""The audit log: who did what, when, and how it ended — append-only.

Every REST and admin action and every authentication failure is one
:class:`AuditEntry`. Backends: :class:`MemoryAuditLog` (tests), :class:`SqliteAuditLog`
(a table whose UPDATE and DELETE are refused by triggers, so not even Parley's own
code can rewrite history through it) and ``parley.store.redis_audit.RedisAuditLog``
(a Redis stream, ``XADD`` only). Reading is for ``admin`` principals of the tenant:
``parley.security.auditing.read_audit`` checks that and records the read itself.

Entries hold ids and outcomes, not conversation content; ``detail`` is for short
facts (a status code, a reason), and the redacting log filter's patterns are applied
to it on write when ``redact=True``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Protocol, runtime_checkable

from parley.store._sqlite import SqliteThread, Synchronous

__all__ = [
    "AUDIT_SCHEMA",
    "AuditEntry",
    "AuditLog",
    "AuditOutcome",
    "MemoryAuditLog",
    "SqliteAuditLog",
    "matches",
]

AuditOutcome = Literal["ok", "denied", "error"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One action. ``actor`` is the user id ("" when unauthenticated), ``target`` what
    it was done to (a conversation id, a route)."""

    action: str
    outcome: AuditOutcome
    actor: str = ""
    tenant: str = ""
    target: str = ""
    method: str = ""  # how the actor authenticated
    client: str = ""  # the client's address
    detail: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def to_fields(self) -> dict[str, str]:
        row = {k: str(v) for k, v in asdict(self).items() if k != "detail"}
        row["detail"] = json.dumps(self.detail, ensure_ascii=False, default=str)
        row["at"] = repr(self.at)
        return row

    @classmethod
    def from_fields(cls, row: Mapping[str, Any]) -> AuditEntry:
        values = dict(row)
        values["detail"] = json.loads(values.get("detail") or "{}")
        values["at"] = float(values["at"])
        return cls(**values)


def matches(
    e: AuditEntry,
    *,
    tenant: str | None,
    actor: str | None = None,
    action: str | None = None,
    since: float | None = None,
) -> bool:
    return (
        (tenant is None or e.tenant == tenant)
        and (actor is None or e.actor == actor)
        and (action is None or e.action == action)
        and (since is None or e.at >= since)
    )


@runtime_checkable
class AuditLog(Protocol):
    async def append(self, entry: AuditEntry) -> None: ...

    async def read(
        self,
        *,
        tenant: str | None,
        actor: str | None = None,
        action: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> Sequence[AuditEntry]:
        """Newest first."""
        ...

    async def aclose(self) -> None: ...


class MemoryAuditLog:
    def __init__(self) -> None:
        self._entries: list[AuditEntry] = []

    async def append(self, entry: AuditEntry) -> None:
        self._entries.append(entry)

    async def read(
        self,
        *,
        tenant: str | None,
        actor: str | None = None,
        action: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> Sequence[AuditEntry]:
        found = [
            e
            for e in reversed(self._entries)
            if matches(e, tenant=tenant, actor=actor, action=action, since=since)
        ]
        return found[:limit]

    async def aclose(self) -> None:
        return None


AUDIT_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS audit (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      REAL NOT NULL,
    tenant  TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    outcome TEXT NOT NULL,
    target  TEXT NOT NULL,
    method  TEXT NOT NULL,
    client  TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_tenant_at ON audit (tenant, at);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

_AUDIT_COLUMNS: Final = (
    "at",
    "tenant",
    "actor",
    "action",
    "outcome",
    "target",
    "method",
    "client",
    "detail",
)


class SqliteAuditLog:
    """The ``audit`` table in a SQLite file (it may be the session store's file)."""

    def __init__(self, path: str | Path, *, synchronous: Synchronous = "NORMAL") -> None:
        self._db = SqliteThread(
            path, schema=AUDIT_SCHEMA, synchronous=synchronous, name="parley-audit"
        )

    async def append(self, entry: AuditEntry) -> None:
        row = entry.to_fields()
        values = [entry.at, *(row[c] for c in _AUDIT_COLUMNS[1:])]
        marks = ", ".join("?" * len(_AUDIT_COLUMNS))
        sql = f"INSERT INTO audit ({', '.join(_AUDIT_COLUMNS)}) VALUES ({marks})"
        await self._db.run(lambda c: c.execute(sql, values).close())

    async def read(
        self,
        *,
        tenant: str | None,
        actor: str | None = None,
        action: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> Sequence[AuditEntry]:
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("tenant", tenant), ("actor", actor), ("action", action)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("at >= ?")
            args.append(since)
        sql = f"SELECT {', '.join(_AUDIT_COLUMNS)} FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(max(0, limit))

        def read(c: sqlite3.Connection) -> list[AuditEntry]:
            return [AuditEntry.from_fields(dict(r)) for r in c.execute(sql, args).fetchall()]

        return await self._db.run(read)

    async def aclose(self) -> None:
        await self._db.aclose()

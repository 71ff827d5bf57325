"""The key-value seams of :mod:`parley.store.kv` in the SQLite file of one machine:
one-time claims and short-lived secrets shared by its worker processes and kept
across restarts (a Twilio stream token used once stays used; a client secret minted
by one worker opens a socket on another).

Table ``kv(key PK, value, expires)`` with wall-clock expiry (every process reads the
same clock); each operation is one ``BEGIN IMMEDIATE`` transaction, so two workers
claiming the same key cannot both win. Expired rows are deleted as new claims arrive.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from parley.store._sqlite import SqliteThread, Synchronous, transaction

__all__ = ["KV_SCHEMA", "SqliteKV"]

KV_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS kv (
    key     TEXT PRIMARY KEY,
    value   BLOB NOT NULL,
    expires REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expires ON kv (expires);
"""


class SqliteKV:
    """:class:`~parley.store.kv.OnceStore` and :class:`~parley.store.kv.SecretStore`."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Synchronous = "NORMAL",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = SqliteThread(path, schema=KV_SCHEMA, synchronous=synchronous, name="parley-kv")
        self._clock = clock

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        now = self._clock()

        def run(c: sqlite3.Connection) -> bool:
            c.execute("DELETE FROM kv WHERE expires <= ?", (now,))
            cur = c.execute(
                "INSERT OR IGNORE INTO kv VALUES (?, x'31', ?)", (key, now + ttl_seconds)
            )
            return cur.rowcount == 1

        return await self._db.run(lambda c: transaction(c, run))

    async def release(self, key: str) -> None:
        await self._db.run(lambda c: c.execute("DELETE FROM kv WHERE key = ?", (key,)).close())

    async def put(self, key: str, value: bytes, ttl_seconds: float) -> None:
        row = (key, value, self._clock() + ttl_seconds)
        await self._db.run(
            lambda c: c.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", row).close()
        )

    async def get(self, key: str) -> bytes | None:
        now = self._clock()

        def run(c: sqlite3.Connection) -> bytes | None:
            row = c.execute(
                "SELECT value FROM kv WHERE key = ? AND expires > ?", (key, now)
            ).fetchone()
            return None if row is None else bytes(row[0])

        return await self._db.run(run)

    async def take(self, key: str) -> bytes | None:
        now = self._clock()

        def run(c: sqlite3.Connection) -> bytes | None:
            row = c.execute("SELECT value, expires FROM kv WHERE key = ?", (key,)).fetchone()
            c.execute("DELETE FROM kv WHERE key = ?", (key,))
            return None if row is None or row[1] <= now else bytes(row[0])

        return await self._db.run(lambda c: transaction(c, run))

    async def aclose(self) -> None:
        await self._db.aclose()

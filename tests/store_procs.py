"""Child processes for the store durability tests (run as ``python -c``)."""

from __future__ import annotations

import asyncio
import sys
import time

from parley.store.records import SessionRecord, StoredTurn
from parley.store.sqlite import SqliteSessionStore


def turn_text(i: int) -> str:
    return f"turn {i}: " + "the quick brown fox jumps over the lazy dog " * 40


async def _write(path: str, synchronous: str) -> None:
    store = SqliteSessionStore(path, synchronous=synchronous)  # type: ignore[arg-type]
    now = time.time()
    await store.save_record(SessionRecord("call-1", "acme", "alice", now, status="live"))
    i = 0
    while True:  # until killed
        role = "user" if i % 2 == 0 else "assistant"
        await store.append_turn("call-1", StoredTurn(i, role, turn_text(i), now + i, now + i + 0.5))
        # Only a turn whose append_turn returned counts as finished.
        sys.stdout.write(f"{i}\n")
        sys.stdout.flush()
        i += 1


def write(path: str, synchronous: str = "NORMAL") -> None:
    asyncio.run(_write(path, synchronous))

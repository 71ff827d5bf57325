"""Cost of the durable-session and limit primitives, each against memory in the same run.

    .venv/bin/python bench/store.py                  # ~10 s
    .venv/bin/python bench/store.py --samples 5000

- ``append_turn`` (one finished turn, ~300 characters, committed when it returns) on
  the in-memory store (the reference), SQLite with ``synchronous=NORMAL`` (the
  default) and ``FULL`` (HIPAA), in a temporary directory, and Redis (a local
  ``redis-server`` started on a free port, nothing saved);
- a ``take`` on a token bucket: ``MemoryLimiter`` against ``RedisLimiter`` (one Lua
  script call).

Prints ONE JSON line with p50/p99 in ms for each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from parley.security.limits import MemoryLimiter, Rate
from parley.security.redis_limiter import RedisLimiter
from parley.store.memory import MemorySessionStore
from parley.store.records import SessionRecord, SessionStore, StoredTurn
from parley.store.redis_sessions import RedisSessionStore
from parley.store.sqlite import SqliteSessionStore
from parley.testing.redis_server import RedisServer

TEXT = "I would like to change the delivery address of my last order, please. " * 4


async def _timed(n: int, op: Callable[[int], Awaitable[object]]) -> dict[str, float]:
    for i in range(min(50, n)):  # warm up
        await op(-1 - i)
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        await op(i)
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 4),
        "p99_ms": round(samples[min(n - 1, int(0.99 * n))], 4),
    }


async def _append(store: SessionStore, n: int) -> dict[str, float]:
    await store.save_record(SessionRecord("bench", "acme", "alice", time.time(), status="live"))

    async def op(i: int) -> None:
        await store.append_turn("bench", StoredTurn(i + 100, "user", TEXT, 1.0, 2.0))

    try:
        return await _timed(n, op)
    finally:
        await store.aclose()


async def main_async(samples: int) -> dict[str, object]:
    out: dict[str, object] = {"bench": "store", "samples": samples}
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as redis:
        out["append_turn_memory"] = await _append(MemorySessionStore(), samples)
        for mode in ("NORMAL", "FULL"):
            path = Path(tmp) / f"{mode}.db"
            store = SqliteSessionStore(path, synchronous=mode)
            out[f"append_turn_sqlite_{mode.lower()}"] = await _append(store, samples)
        out["append_turn_redis"] = await _append(RedisSessionStore(url=redis.url), samples)
        rate = Rate(10**9, 1.0)
        mem = MemoryLimiter()
        out["take_memory"] = await _timed(samples, lambda i: mem.take("k", rate))
        rl = RedisLimiter(redis.url)
        out["take_redis"] = await _timed(samples, lambda i: rl.take("k", rate))
        await rl.aclose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args.samples))))


if __name__ == "__main__":
    main()

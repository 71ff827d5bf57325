"""Child processes for the multi-process limiter tests (spawned: importable by name)."""

from __future__ import annotations

import asyncio
from typing import Any

from parley.security.limits import Rate
from parley.security.redis_limiter import RedisLimiter


async def _ready(limiter: RedisLimiter, barrier: Any) -> None:
    # Connected and the script loaded before the barrier, so both start at once.
    await limiter.take("warmup", Rate(1, 1.0))
    await asyncio.to_thread(barrier.wait)


async def _hammer(
    url: str, key: str, rate: Rate, attempts: int, seconds: float, barrier: Any
) -> int:
    limiter = RedisLimiter(url)
    await _ready(limiter, barrier)
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    allowed = n = 0
    try:
        # a fixed number of attempts, or (seconds > 0) as many as fit in that time
        while (loop.time() < end) if seconds else (n < attempts):
            v = await limiter.take(key, rate)
            allowed += v.allowed
            n += 1
    finally:
        await limiter.aclose()
    return allowed


async def _occupy(url: str, key: str, who: str, limit: int, members: int, barrier: Any) -> int:
    limiter = RedisLimiter(url)
    await _ready(limiter, barrier)
    got = 0
    try:
        for i in range(members):
            v = await limiter.occupy(key, f"{who}-{i}", limit, 60)
            got += v.allowed
    finally:
        await limiter.aclose()
    return got


def hammer(url: str, key: str, capacity: int, period: float, attempts: int, seconds: float,
           start: Any, out: Any) -> None:  # fmt: skip
    out.put(asyncio.run(_hammer(url, key, Rate(capacity, period), attempts, seconds, start)))


def occupy(url: str, key: str, who: str, limit: int, members: int, start: Any, out: Any) -> None:
    out.put(asyncio.run(_occupy(url, key, who, limit, members, start)))

"""Child processes for the multi-process limiter tests (spawned: importable by name)."""

from __future__ import annotations

import asyncio
from typing import Any

from parley.security.limits import Rate
from parley.security.redis_limiter import RedisLimiter


async def _hammer(url: str, key: str, rate: Rate, attempts: int, seconds: float) -> int:
    limiter = RedisLimiter(url)
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


async def _occupy(url: str, key: str, who: str, limit: int, members: int) -> int:
    limiter = RedisLimiter(url)
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
    start.wait()
    out.put(asyncio.run(_hammer(url, key, Rate(capacity, period), attempts, seconds)))


def occupy(url: str, key: str, who: str, limit: int, members: int, start: Any, out: Any) -> None:
    start.wait()
    out.put(asyncio.run(_occupy(url, key, who, limit, members)))

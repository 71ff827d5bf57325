"""Context caching: per user (and tenant), TTL, invalidation, one provider call for
concurrent misses; in memory and on a real redis-server."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pytest

from parley.store.cache import CachedProvider, ContextCache, MemoryContextCache, cache_scope
from parley.store.redis_kv import RedisContextCache
from parley.testing.redis_server import RedisServer
from waits import Watch


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with RedisServer() as server:
        yield server.url


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[ContextCache]:
    if request.param == "memory":
        yield MemoryContextCache()
        return
    c = RedisContextCache(url=redis_url, prefix=f"t{os.urandom(3).hex()}")
    yield c
    await c.aclose()


class WatchedGets:
    """A cache as it is, with ``gets`` counting the lookups that have answered."""

    def __init__(self, inner: ContextCache) -> None:
        self.inner = inner
        self.gets = 0
        self.watch = Watch()

    async def get(self, scope: str, provider: str) -> dict[str, Any] | None:
        try:
            return await self.inner.get(scope, provider)
        finally:
            self.gets += 1
            self.watch.notify()

    async def put(
        self, scope: str, provider: str, value: Mapping[str, Any], ttl_seconds: float
    ) -> None:
        await self.inner.put(scope, provider, value, ttl_seconds)

    async def invalidate(self, scope: str, provider: str | None = None) -> None:
        await self.inner.invalidate(scope, provider)


async def test_cached_provider_hits_misses_and_invalidation(cache: ContextCache) -> None:
    seen: list[str] = []
    gate = asyncio.Event()

    async def user_context(user_id: str) -> dict[str, Any]:
        seen.append(user_id)
        await gate.wait()
        return {"name": user_id.title(), "orders": [1, 2]}

    watched = WatchedGets(cache)
    cached = CachedProvider(user_context, watched, ttl_seconds=60)
    # ten calls starting together: the backend is asked once
    calls = [asyncio.create_task(cached("alice", tenant="acme")) for _ in range(10)]
    # Each goes from its cache miss straight to the backend or to the flight under way
    # (no await in between): once all ten lookups answered, all ten are there.
    await watched.watch.until(lambda: watched.gets == 10)
    gate.set()
    results = await asyncio.gather(*calls)
    assert all(r == {"name": "Alice", "orders": [1, 2]} for r in results)
    assert seen == ["alice"]
    assert await cached("alice", tenant="acme") == {"name": "Alice", "orders": [1, 2]}
    assert seen == ["alice"]
    await cached("alice", tenant="globex")  # another tenant's alice is another user
    assert seen == ["alice", "alice"]
    await cached.invalidate("alice", tenant="acme")
    await cached("alice", tenant="acme")
    assert seen == ["alice"] * 3
    await cache.put(cache_scope("acme", "bob"), "other", {"x": 1}, 60)
    await cache.put(cache_scope("acme", "bob"), "third", {"y": 2}, 60)
    await cache.invalidate(cache_scope("acme", "bob"))
    assert await cache.get(cache_scope("acme", "bob"), "other") is None
    assert await cache.get(cache_scope("acme", "bob"), "third") is None
    assert await cache.get(cache_scope("acme", "alice"), cached.name) is not None


async def test_entries_expire() -> None:
    now = [0.0]
    cache = MemoryContextCache(clock=lambda: now[0], max_entries=2)
    await cache.put("s", "p", {"v": 1}, 10)
    now[0] = 9.9
    assert await cache.get("s", "p") == {"v": 1}
    now[0] = 10.1
    assert await cache.get("s", "p") is None
    for i in range(3):
        await cache.put("s", f"p{i}", {"v": i}, 10)
    assert len(cache) == 2 and await cache.get("s", "p0") is None


async def test_redis_entries_carry_the_ttl(redis_url: str) -> None:
    cache = RedisContextCache(url=redis_url, prefix="ttl")
    try:
        await cache.put("acme/u", "prov", {"v": 1}, 0.05)
        assert 0 < await cache.client.pttl("ttl:ctx:acme/u:0:prov") <= 50
        await asyncio.sleep(0.1)  # the expiry under test is Redis's own
        assert await cache.get("acme/u", "prov") is None
    finally:
        await cache.aclose()


async def test_provider_failure_is_not_cached() -> None:
    n = 0

    async def flaky(user_id: str) -> dict[str, Any]:
        nonlocal n
        n += 1
        if n == 1:
            raise RuntimeError("backend down")
        return {"ok": True}

    cached = CachedProvider(flaky, MemoryContextCache())
    with pytest.raises(RuntimeError):
        await cached("u")
    assert await cached("u") == {"ok": True}

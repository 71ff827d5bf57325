"""Context caching (``enable_caching``, ``cache_ttl_seconds``): a context provider's
result kept per user for a while, so a call that starts (or a trigger that fires)
does not ask the business's backend again; :meth:`ContextCache.invalidate` drops a
user's entries at once when their data changes.

:class:`MemoryContextCache` serves one process; ``parley.store.redis_kv``'s
``RedisContextCache`` every node. :class:`CachedProvider` wraps a provider
``async (user_id) -> dict`` and also collapses concurrent misses for the same user
into one call (ten calls starting together ask the backend once).

A *scope* names whose data it is: :func:`cache_scope` (tenant and user), so two
tenants' users with the same id never share an entry.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["CachedProvider", "ContextCache", "MemoryContextCache", "cache_scope"]


def cache_scope(tenant: str, user_id: str) -> str:
    return f"{tenant}/{user_id}"


@runtime_checkable
class ContextCache(Protocol):
    async def get(self, scope: str, provider: str) -> dict[str, Any] | None: ...

    async def put(
        self, scope: str, provider: str, value: Mapping[str, Any], ttl_seconds: float
    ) -> None: ...

    async def invalidate(self, scope: str, provider: str | None = None) -> None:
        """Drop ``provider``'s entry for ``scope``, or every entry of ``scope``."""
        ...


class MemoryContextCache:
    """Bounded (least recently used go first) with a TTL per entry."""

    def __init__(
        self, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._max = max_entries
        self._items: OrderedDict[tuple[str, str], tuple[float, dict[str, Any]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    async def get(self, scope: str, provider: str) -> dict[str, Any] | None:
        key = (scope, provider)
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= self._clock():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return dict(item[1])

    async def put(
        self, scope: str, provider: str, value: Mapping[str, Any], ttl_seconds: float
    ) -> None:
        key = (scope, provider)
        self._items[key] = (self._clock() + ttl_seconds, dict(value))
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    async def invalidate(self, scope: str, provider: str | None = None) -> None:
        if provider is not None:
            self._items.pop((scope, provider), None)
            return
        for key in [k for k in self._items if k[0] == scope]:
            del self._items[key]


Provider = Callable[[str], Awaitable[Mapping[str, Any]]]


class CachedProvider:
    """``await cached(user_id, tenant=…)``: the provider's result, from the cache when
    fresh. ``name`` keys the entries (the provider's function name by default)."""

    def __init__(
        self,
        provider: Provider,
        cache: ContextCache,
        *,
        ttl_seconds: float = 300.0,
        name: str | None = None,
    ) -> None:
        self._provider = provider
        self.cache = cache
        self.ttl_seconds = ttl_seconds
        self.name: str = name or str(getattr(provider, "__qualname__", "provider"))
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.calls = 0  # how often the provider itself ran

    async def __call__(self, user_id: str, *, tenant: str = "default") -> dict[str, Any]:
        scope = cache_scope(tenant, user_id)
        hit = await self.cache.get(scope, self.name)
        if hit is not None:
            return hit
        waiting = self._inflight.get(scope)
        if waiting is not None:
            return dict(await asyncio.shield(waiting))
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._inflight[scope] = future
        try:
            self.calls += 1
            value = dict(await self._provider(user_id))
            await self.cache.put(scope, self.name, value, self.ttl_seconds)
            future.set_result(value)
            return dict(value)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters (if any) re-raise it themselves
            raise
        finally:
            del self._inflight[scope]

    async def invalidate(self, user_id: str, *, tenant: str = "default") -> None:
        await self.cache.invalidate(cache_scope(tenant, user_id), self.name)

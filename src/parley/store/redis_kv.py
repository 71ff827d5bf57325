"""The key-value seams of ``parley.store.kv``, and the context cache, on Redis: shared
by every node and surviving every restart of Parley (not of an unpersisted Redis).

Keys: ``{p}:once:{key}`` (``SET NX PX``: a claim) and ``{p}:secret:{key}``
(``SET PX`` / ``GET`` / ``GETDEL``: a short-lived secret). Callers pass hashed keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

__all__ = ["RedisContextCache", "RedisKV"]


def _bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


class RedisKV:
    """:class:`~parley.store.kv.OnceStore` and :class:`~parley.store.kv.SecretStore`."""

    def __init__(
        self, url: str | None = None, *, client: Redis | None = None, prefix: str = "parley"
    ) -> None:
        if client is None:
            if url is None:
                raise ValueError("RedisKV needs url= or client=")
            client = Redis.from_url(url)
        self._owned = url is not None
        self.client = client
        self.prefix = prefix

    @staticmethod
    def _ms(ttl_seconds: float) -> int:
        return max(1, round(ttl_seconds * 1000))

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        done = await self.client.set(
            f"{self.prefix}:once:{key}", b"1", nx=True, px=self._ms(ttl_seconds)
        )
        return bool(done)

    async def release(self, key: str) -> None:
        """Forget a claim before its time (a claimed conversation whose peer left)."""
        await self.client.delete(f"{self.prefix}:once:{key}")

    async def put(self, key: str, value: bytes, ttl_seconds: float) -> None:
        await self.client.set(f"{self.prefix}:secret:{key}", value, px=self._ms(ttl_seconds))

    async def get(self, key: str) -> bytes | None:
        return _bytes(await self.client.get(f"{self.prefix}:secret:{key}"))

    async def take(self, key: str) -> bytes | None:
        return _bytes(await self.client.getdel(f"{self.prefix}:secret:{key}"))

    async def aclose(self) -> None:
        if self._owned:
            await self.client.aclose()


class RedisContextCache:
    """:class:`~parley.store.cache.ContextCache` on Redis.

    Keys: ``{p}:ctx:{scope}:gen`` (a generation counter) and
    ``{p}:ctx:{scope}:{gen}:{provider}`` (the JSON value, ``SET EX``). Invalidating a
    whole scope is one ``INCR``: the old generation's entries are never read again
    and expire by their TTL.
    """

    def __init__(
        self, url: str | None = None, *, client: Redis | None = None, prefix: str = "parley"
    ) -> None:
        if client is None:
            if url is None:
                raise ValueError("RedisContextCache needs url= or client=")
            client = Redis.from_url(url)
        self._owned = url is not None
        self.client = client
        self.prefix = prefix

    async def _gen(self, scope: str) -> str:
        gen = await self.client.get(f"{self.prefix}:ctx:{scope}:gen")
        return "0" if gen is None else (gen.decode() if isinstance(gen, bytes) else str(gen))

    async def get(self, scope: str, provider: str) -> dict[str, Any] | None:
        gen = await self._gen(scope)
        raw = await self.client.get(f"{self.prefix}:ctx:{scope}:{gen}:{provider}")
        if raw is None:
            return None
        value: dict[str, Any] = json.loads(raw)
        return value

    async def put(
        self, scope: str, provider: str, value: Mapping[str, Any], ttl_seconds: float
    ) -> None:
        gen = await self._gen(scope)
        body = json.dumps(value, ensure_ascii=False, default=str)
        key = f"{self.prefix}:ctx:{scope}:{gen}:{provider}"
        await self.client.set(key, body, px=max(1, round(ttl_seconds * 1000)))

    async def invalidate(self, scope: str, provider: str | None = None) -> None:
        if provider is None:
            await self.client.incr(f"{self.prefix}:ctx:{scope}:gen")
        else:
            gen = await self._gen(scope)
            await self.client.delete(f"{self.prefix}:ctx:{scope}:{gen}:{provider}")

    async def aclose(self) -> None:
        if self._owned:
            await self.client.aclose()

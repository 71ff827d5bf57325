"""The key-value seams of ``parley.store.kv`` on Redis, shared by every node and
surviving every restart of Parley (not of an unpersisted Redis).

Keys: ``{p}:once:{key}`` (``SET NX PX``: a claim) and ``{p}:secret:{key}``
(``SET PX`` / ``GET`` / ``GETDEL``: a short-lived secret). Callers pass hashed keys.
"""

from __future__ import annotations

from redis.asyncio import Redis

__all__ = ["RedisKV"]


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

    async def put(self, key: str, value: bytes, ttl_seconds: float) -> None:
        await self.client.set(f"{self.prefix}:secret:{key}", value, px=self._ms(ttl_seconds))

    async def get(self, key: str) -> bytes | None:
        return _bytes(await self.client.get(f"{self.prefix}:secret:{key}"))

    async def take(self, key: str) -> bytes | None:
        return _bytes(await self.client.getdel(f"{self.prefix}:secret:{key}"))

    async def aclose(self) -> None:
        if self._owned:
            await self.client.aclose()

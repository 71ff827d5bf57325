"""The :class:`~parley.security.limits.Limiter` on Redis: one count for every process
and node, each decision one atomic Lua script (registered with redis-py's
``register_script``: EVALSHA, falling back to EVAL after a Redis restart).

Time comes from Redis (``TIME`` inside the script), not from the callers, so nodes
with skewed clocks still share one bucket exactly. Keys (``{prefix}`` is the
namespace, ``parley`` by default):

- ``{prefix}:{key}`` — a hash ``{t: tokens, ts: seconds}`` for a bucket, expiring
  once it would be full again;
- ``{prefix}:{key}`` — a sorted set ``member → expiry (ms)`` for slots, expiring with
  its last member.
"""

from __future__ import annotations

from typing import Any, Final

from redis.asyncio import Redis

from parley.security.limits import Rate, Verdict

__all__ = ["RedisLimiter"]

_TAKE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then tokens = cap; ts = now end
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
tokens = math.min(cap, tokens + elapsed * rate)
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((cap - tokens) / rate * 1000) + 1000)
return {allowed, math.floor(tokens), string.format('%.6f', retry)}
"""

_OCCUPY: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member = ARGV[1]
local limit = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
local present = redis.call('ZSCORE', KEYS[1], member)
if present or n < limit then
  redis.call('ZADD', KEYS[1], now + ttl, member)
  if not present then n = n + 1 end
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]))
  return {1, limit - n, '0'}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, 0, string.format('%.3f', (tonumber(first[2]) - now) / 1000)}
"""


class RedisLimiter:
    """Token buckets and slots in Redis; give ``url`` or an existing ``client``."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Redis | None = None,
        prefix: str = "parley",
    ) -> None:
        if client is None:
            if url is None:
                raise ValueError("RedisLimiter needs url= or client=")
            client = Redis.from_url(url)
            self._owned = True
        else:
            self._owned = False
        self.client = client
        self.prefix = prefix
        self._take = client.register_script(_TAKE)
        self._occupy = client.register_script(_OCCUPY)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    async def take(self, key: str, rate: Rate, cost: int = 1) -> Verdict:
        res: list[Any] = await self._take(
            keys=[self._key(key)], args=[rate.capacity, repr(rate.per_second), cost]
        )
        return Verdict(bool(int(res[0])), int(res[1]), float(res[2]))

    async def occupy(self, key: str, member: str, limit: int, ttl_seconds: float) -> Verdict:
        res: list[Any] = await self._occupy(
            keys=[self._key(key)], args=[member, limit, max(1, round(ttl_seconds * 1000))]
        )
        return Verdict(bool(int(res[0])), max(0, int(res[1])), max(0.0, float(res[2])))

    async def vacate(self, key: str, member: str) -> None:
        await self.client.zrem(self._key(key), member)

    async def aclose(self) -> None:
        if self._owned:
            await self.client.aclose()

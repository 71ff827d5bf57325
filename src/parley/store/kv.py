"""Two tiny key-value seams shared by authentication: one-time claims and short-lived
secrets, in memory (one process) or in Redis (``parley.store.redis_kv``: every node
and every restart).

- :class:`OnceStore` makes a token single-use: ``claim(key, ttl)`` is True the first
  time and False after, until ``ttl`` passes (Redis: ``SET key 1 NX PX ttl``). Twilio
  one-time stream tokens and single-use client secrets go through it.
- :class:`SecretStore` keeps a value for a while: ``put``, ``get`` and ``take`` (read
  and delete in one step, so two nodes cannot both take it).

Keys are hashed by the callers, so neither store ever holds a usable secret.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["MemoryKV", "OnceStore", "SecretStore"]


@runtime_checkable
class OnceStore(Protocol):
    async def claim(self, key: str, ttl_seconds: float) -> bool:
        """True if ``key`` was not claimed in the last ``ttl_seconds`` (and claim it)."""
        ...


@runtime_checkable
class SecretStore(Protocol):
    async def put(self, key: str, value: bytes, ttl_seconds: float) -> None: ...

    async def get(self, key: str) -> bytes | None: ...

    async def take(self, key: str) -> bytes | None:
        """The value, deleted in the same step; None if absent or expired."""
        ...


class MemoryKV:
    """Both seams for one process. Expired entries are pruned as new ones arrive."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._items: dict[str, tuple[float, bytes]] = {}
        self._next_prune = 0.0

    def __len__(self) -> int:
        return len(self._items)

    def _prune(self, now: float) -> None:
        if now < self._next_prune:
            return
        self._next_prune = now + 1.0
        for key in [k for k, (exp, _) in self._items.items() if exp <= now]:
            del self._items[key]

    def _live(self, key: str, now: float) -> tuple[float, bytes] | None:
        item = self._items.get(key)
        if item is None or item[0] <= now:
            return None
        return item

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        now = self._clock()
        self._prune(now)
        if self._live(key, now) is not None:
            return False
        self._items[key] = (now + ttl_seconds, b"1")
        return True

    async def put(self, key: str, value: bytes, ttl_seconds: float) -> None:
        now = self._clock()
        self._prune(now)
        self._items[key] = (now + ttl_seconds, value)

    async def get(self, key: str) -> bytes | None:
        item = self._live(key, self._clock())
        return None if item is None else item[1]

    async def take(self, key: str) -> bytes | None:
        item = self._live(key, self._clock())
        self._items.pop(key, None)
        return None if item is None else item[1]

    async def release(self, key: str) -> None:
        """Forget a claim before its time (a claimed conversation whose peer left)."""
        self._items.pop(key, None)

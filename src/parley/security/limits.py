"""Limits: token buckets and counted slots behind one :class:`Limiter` seam, and the
:class:`LimitPolicy` that turns a principal and its tier into keys and rules.

Two primitives cover every limit of issue 10:

- ``take(key, rate)`` — a token bucket: ``rate.capacity`` tokens, refilled evenly over
  ``rate.period_seconds``. REST requests and new calls, per user and per tier.
- ``occupy(key, member, limit, ttl)`` — a set of at most ``limit`` members, each
  leaving by itself ``ttl`` seconds after its last ``occupy`` unless ``vacate``d first.
  Concurrent calls per user (a lease the call refreshes; a dead node's calls free their
  slots when the lease lapses), pending conversations (the TTL *is* the pending
  lifetime, so an abandoned one stops counting against its creator by itself), and
  unauthenticated connections (globally and per client address).

:class:`MemoryLimiter` counts in one process; ``parley.security.redis_limiter``'s
``RedisLimiter`` counts across processes and nodes, atomically, on Redis's clock.
A refusal is :class:`~parley.errors.RateLimited` with ``retry_after`` from the bucket
(REST: 429 + ``Retry-After``; a WebSocket: close 1013 "try again later").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from parley.errors import ConfigError, RateLimited
from parley.security.principal import Principal

__all__ = [
    "LimitPolicy",
    "Limiter",
    "MemoryLimiter",
    "Rate",
    "TierLimits",
    "Verdict",
]


@dataclass(frozen=True, slots=True)
class Rate:
    """``capacity`` tokens (the burst), refilled at ``capacity / period_seconds`` per s."""

    capacity: int
    period_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.period_seconds <= 0:
            raise ConfigError("a rate needs capacity >= 1 and a positive period", field="rate")

    @classmethod
    def per_minute(cls, n: int) -> Rate:
        return cls(n, 60.0)

    @property
    def per_second(self) -> float:
        return self.capacity / self.period_seconds


@dataclass(frozen=True, slots=True)
class Verdict:
    """One limiter decision. ``retry_after`` (seconds) is 0 when allowed; ``remaining``
    is the whole tokens or free slots left after it."""

    allowed: bool
    remaining: int
    retry_after: float = 0.0


@runtime_checkable
class Limiter(Protocol):
    async def take(self, key: str, rate: Rate, cost: int = 1) -> Verdict: ...

    async def occupy(self, key: str, member: str, limit: int, ttl_seconds: float) -> Verdict:
        """Add (or refresh) ``member``; refused if ``limit`` others hold the set."""
        ...

    async def vacate(self, key: str, member: str) -> None: ...


class MemoryLimiter:
    """The limiter of one process (single node). ``clock`` is monotonic seconds."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000):
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float, float]] = {}  # tokens, stamp, period
        self._slots: dict[str, dict[str, float]] = {}  # key -> member -> expiry

    async def take(self, key: str, rate: Rate, cost: int = 1) -> Verdict:
        now = self._clock()
        tokens, stamp, _ = self._buckets.get(key, (float(rate.capacity), now, 0.0))
        tokens = min(float(rate.capacity), tokens + max(0.0, now - stamp) * rate.per_second)
        if tokens >= cost:
            tokens -= cost
            verdict = Verdict(True, math.floor(tokens))
        else:
            verdict = Verdict(False, math.floor(tokens), (cost - tokens) / rate.per_second)
        if key not in self._buckets and len(self._buckets) >= self._max_keys:
            self._prune_buckets(now)
        self._buckets[key] = (tokens, now, rate.period_seconds)
        return verdict

    def _prune_buckets(self, now: float) -> None:
        # A bucket untouched for a whole period is full again: forgetting it changes nothing.
        for k in [k for k, (_, t, p) in self._buckets.items() if now - t >= p]:
            del self._buckets[k]

    async def occupy(self, key: str, member: str, limit: int, ttl_seconds: float) -> Verdict:
        now = self._clock()
        if key not in self._slots and len(self._slots) >= self._max_keys:
            self._prune_slots(now)
        members = self._slots.setdefault(key, {})
        for m in [m for m, exp in members.items() if exp <= now]:
            del members[m]
        if member in members or len(members) < limit:
            members[member] = now + ttl_seconds
            return Verdict(True, max(0, limit - len(members)))
        return Verdict(False, 0, max(0.0, min(members.values()) - now))

    def _prune_slots(self, now: float) -> None:
        for k in [k for k, m in self._slots.items() if all(exp <= now for exp in m.values())]:
            del self._slots[k]

    async def vacate(self, key: str, member: str) -> None:
        members = self._slots.get(key)
        if members is not None:
            members.pop(member, None)
            if not members:
                del self._slots[key]


@dataclass(frozen=True, slots=True)
class TierLimits:
    """The limits of one tier; None means unlimited. Per-user rules count each user of
    the tier on their own; ``tier_*`` rules count the whole tier together."""

    requests: Rate | None = None
    new_calls: Rate | None = None
    tier_requests: Rate | None = None
    tier_new_calls: Rate | None = None
    concurrent_calls: int | None = None
    pending_conversations: int | None = None
    pending_ttl_seconds: float = 300.0
    max_call_seconds: float | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TierLimits:
        """From settings: rates as ``{"capacity": n, "period_seconds": s}`` or a plain
        number per minute (``requests_per_minute: 60`` is ``requests``)."""
        kw: dict[str, Any] = {}
        for name, value in values.items():
            base = name.removesuffix("_per_minute")
            if base in ("requests", "new_calls", "tier_requests", "tier_new_calls"):
                if isinstance(value, Mapping):
                    kw[base] = Rate(int(value["capacity"]), float(value.get("period_seconds", 60)))
                elif value is not None:
                    kw[base] = Rate.per_minute(int(value))
            elif name in cls.__dataclass_fields__:
                kw[name] = value
            else:
                raise ConfigError(f"unknown limit {name!r}", field="limits")
        return cls(**kw)


@dataclass(slots=True)
class LimitPolicy:
    """Which keys and rules apply to a principal; every check raises ``RateLimited``.

    ``call_lease_seconds`` is how long a live call's slot lasts without a
    :meth:`refresh_call`; the holder refreshes it about every third of that.
    """

    limiter: Limiter
    tiers: Mapping[str, TierLimits] = field(default_factory=dict)
    default: TierLimits = TierLimits()
    unauthenticated_connections: int | None = 64
    unauthenticated_per_address: int | None = 8
    unauthenticated_ttl_seconds: float = 30.0
    call_lease_seconds: float = 120.0
    namespace: str = "limit"

    @classmethod
    def from_settings(
        cls,
        limiter: Limiter,
        *,
        rate_limit_per_minute: int | None = None,
        tiers: Mapping[str, Mapping[str, Any]] | None = None,
        **options: Any,
    ) -> LimitPolicy:
        """``rate_limit_per_minute`` (the seed's setting) is the default tier's REST rate
        and, a tenth of it (at least 1), its new-call rate; ``tiers`` override by name."""
        default = TierLimits()
        if rate_limit_per_minute is not None:
            default = TierLimits(
                requests=Rate.per_minute(rate_limit_per_minute),
                new_calls=Rate.per_minute(max(1, rate_limit_per_minute // 10)),
            )
        parsed = {name: TierLimits.from_mapping(v) for name, v in (tiers or {}).items()}
        return cls(limiter, parsed, default=parsed.pop("default", default), **options)

    def tier(self, principal: Principal) -> TierLimits:
        return self.tiers.get(principal.tier, self.default)

    def _user(self, what: str, p: Principal) -> str:
        return f"{self.namespace}:{what}:u:{p.tenant}:{p.user_id}"

    def _tier(self, what: str, p: Principal) -> str:
        return f"{self.namespace}:{what}:t:{p.tier}"

    async def _take(self, key: str, rate: Rate | None, what: str) -> None:
        if rate is None:
            return
        v = await self.limiter.take(key, rate)
        if not v.allowed:
            raise RateLimited(
                f"too many {what} (limit {rate.capacity} per {rate.period_seconds:g} s)",
                retry_after=v.retry_after,
            )

    async def _occupy(
        self, key: str, member: str, limit: int | None, ttl: float, what: str
    ) -> None:
        if limit is None:
            return
        v = await self.limiter.occupy(key, member, limit, ttl)
        if not v.allowed:
            raise RateLimited(f"too many {what} (limit {limit})", retry_after=v.retry_after)

    async def check_request(self, principal: Principal) -> None:
        """One REST request (call for each, before the handler)."""
        t = self.tier(principal)
        await self._take(self._user("req", principal), t.requests, "requests")
        await self._take(self._tier("req", principal), t.tier_requests, "requests for this tier")

    async def hold_pending(self, principal: Principal, conversation_id: str) -> None:
        """A conversation was created and waits for its call; it counts against its
        creator until :meth:`release_pending` or its TTL (the pending lifetime)."""
        t = self.tier(principal)
        await self._take(self._user("calls", principal), t.new_calls, "new calls")
        await self._take(
            self._tier("calls", principal), t.tier_new_calls, "new calls for this tier"
        )
        await self._occupy(
            self._user("pending", principal),
            conversation_id,
            t.pending_conversations,
            t.pending_ttl_seconds,
            "pending conversations",
        )

    async def release_pending(self, principal: Principal, conversation_id: str) -> None:
        await self.limiter.vacate(self._user("pending", principal), conversation_id)

    def pending_expired(self, principal: Principal, created_at: float, now: float) -> bool:
        """Whether a conversation created at ``created_at`` (wall clock) is too old to
        start: the switchboard refuses its call and forgets it."""
        return now - created_at > self.tier(principal).pending_ttl_seconds

    async def admit_call(
        self, principal: Principal, call_id: str, *, from_pending: bool = False
    ) -> float | None:
        """A call starts: the new-call buckets (unless it was counted when its pending
        conversation was created) and a concurrent-call slot. Returns the call's
        maximum duration in seconds (None: unlimited) for the switchboard's timer."""
        t = self.tier(principal)
        if from_pending:
            await self.release_pending(principal, call_id)
        else:
            await self._take(self._user("calls", principal), t.new_calls, "new calls")
            await self._take(
                self._tier("calls", principal), t.tier_new_calls, "new calls for this tier"
            )
        await self._occupy(
            self._user("live", principal),
            call_id,
            t.concurrent_calls,
            self.call_lease_seconds,
            "concurrent calls",
        )
        return t.max_call_seconds

    async def refresh_call(self, principal: Principal, call_id: str) -> None:
        """Keep a live call's slot (every ``call_lease_seconds / 3``)."""
        t = self.tier(principal)
        if t.concurrent_calls is not None:
            await self.limiter.occupy(
                self._user("live", principal), call_id, t.concurrent_calls, self.call_lease_seconds
            )

    async def end_call(self, principal: Principal, call_id: str) -> None:
        await self.limiter.vacate(self._user("live", principal), call_id)

    async def admit_unauthenticated(self, connection_id: str, client_address: str = "") -> None:
        """A connection not yet authenticated (its token comes in a later frame); it
        holds a slot until :meth:`release_unauthenticated` or the TTL (the time it has
        to authenticate)."""
        ttl = self.unauthenticated_ttl_seconds
        key = f"{self.namespace}:anon"
        await self._occupy(
            key, connection_id, self.unauthenticated_connections, ttl, "unauthenticated connections"
        )
        if client_address:
            try:
                await self._occupy(
                    f"{key}:{client_address}",
                    connection_id,
                    self.unauthenticated_per_address,
                    ttl,
                    "unauthenticated connections from this address",
                )
            except RateLimited:
                await self.limiter.vacate(key, connection_id)
                raise

    async def release_unauthenticated(self, connection_id: str, client_address: str = "") -> None:
        await self.limiter.vacate(f"{self.namespace}:anon", connection_id)
        if client_address:
            await self.limiter.vacate(f"{self.namespace}:anon:{client_address}", connection_id)

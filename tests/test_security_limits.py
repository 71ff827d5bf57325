"""Limits: token buckets and slots in memory and on a real redis-server, the policy's
per-user / per-tier rules, and exactness across two real OS processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from limiter_procs import hammer, occupy
from parley.errors import RateLimited
from parley.security import LimitPolicy, MemoryLimiter, Principal, Rate, TierLimits
from parley.security.limits import Limiter
from parley.security.redis_limiter import RedisLimiter
from parley.testing.redis_server import RedisServer


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with RedisServer() as server:
        yield server.url


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_bucket_burst_refill_and_retry_after() -> None:
    clock = Clock()
    lim = MemoryLimiter(clock=clock)
    rate = Rate(3, 3.0)  # one token per second
    got = [await lim.take("k", rate) for _ in range(4)]
    assert [v.allowed for v in got] == [True, True, True, False]
    assert got[2].remaining == 0 and got[3].retry_after == pytest.approx(1.0)
    clock.now += 0.5
    assert (await lim.take("k", rate)).retry_after == pytest.approx(0.5)
    clock.now += 0.5
    assert (await lim.take("k", rate)).allowed
    clock.now += 100
    assert (await lim.take("k", rate)).remaining == 2  # refilled to capacity, not beyond


async def test_memory_slots_expire_refresh_and_vacate() -> None:
    clock = Clock()
    lim = MemoryLimiter(clock=clock)
    assert (await lim.occupy("s", "a", 2, 10)).allowed
    assert (await lim.occupy("s", "b", 2, 10)).allowed
    refused = await lim.occupy("s", "c", 2, 10)
    assert not refused.allowed and refused.retry_after == pytest.approx(10)
    assert (await lim.occupy("s", "a", 2, 10)).allowed  # a refresh, not a new member
    clock.now += 5
    await lim.vacate("s", "b")
    assert (await lim.occupy("s", "c", 2, 10)).allowed
    clock.now += 11  # both leases lapse
    assert (await lim.occupy("s", "d", 2, 10)).remaining == 1


async def test_memory_limiter_forgets_idle_keys_past_its_bound() -> None:
    clock = Clock()
    lim = MemoryLimiter(clock=clock, max_keys=2)
    for i in range(2):
        await lim.take(f"b{i}", Rate(1, 1.0))
        await lim.occupy(f"s{i}", "m", 1, 1.0)
    clock.now += 2  # every bucket is full again, every slot expired
    await lim.take("b-new", Rate(1, 1.0))
    await lim.occupy("s-new", "m", 1, 1.0)
    assert set(lim._buckets) == {"b-new"} and set(lim._slots) == {"s-new"}


async def _same_semantics(lim: Limiter, prefix: str) -> None:
    rate = Rate(5, 3600)
    verdicts = [await lim.take(f"{prefix}b", rate) for _ in range(7)]
    assert [v.allowed for v in verdicts] == [True] * 5 + [False] * 2
    assert [v.remaining for v in verdicts[:5]] == [4, 3, 2, 1, 0]
    assert verdicts[-1].retry_after == pytest.approx(720, rel=0.01)  # 1 token / 720 s
    assert (await lim.occupy(f"{prefix}s", "a", 1, 30)).allowed
    no = await lim.occupy(f"{prefix}s", "b", 1, 30)
    assert not no.allowed and 29 <= no.retry_after <= 30
    await lim.vacate(f"{prefix}s", "a")
    assert (await lim.occupy(f"{prefix}s", "b", 1, 30)).allowed


async def test_redis_limiter_matches_memory(redis_url: str) -> None:
    await _same_semantics(MemoryLimiter(), "m:")
    lim = RedisLimiter(redis_url, prefix="t1")
    try:
        await _same_semantics(lim, "r:")
        # the lease really lapses on Redis's clock, and the keys carry a TTL
        assert (await lim.occupy("short", "x", 1, 0.05)).allowed
        client: Redis = lim.client
        assert 0 < await client.pttl("t1:short") <= 50
        assert 0 < await client.pttl("t1:r:b") <= 3600 * 1000 + 1000
        await asyncio.sleep(0.08)  # the TTL under test is Redis's own clock
        assert (await lim.occupy("short", "y", 1, 0.05)).allowed
    finally:
        await lim.aclose()


async def test_redis_limiter_survives_a_script_flush(redis_url: str) -> None:
    lim = RedisLimiter(redis_url, prefix="t2")
    try:
        assert (await lim.take("k", Rate(2, 60))).allowed
        await lim.client.script_flush()  # as after a Redis restart: EVALSHA misses
        assert (await lim.take("k", Rate(2, 60))).remaining == 0
    finally:
        await lim.aclose()


def _run_children(target: Any, args: list[tuple[Any, ...]]) -> list[int]:
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(len(args)), ctx.Queue()  # the children start together
    procs = [ctx.Process(target=target, args=(*a, barrier, out)) for a in args]
    for p in procs:
        p.start()
    results = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=10)
        assert p.exitcode == 0
    return results


async def _server_time(url: str) -> float:
    client = Redis.from_url(url)
    try:
        secs, micros = await client.time()
        return secs + micros / 1e6
    finally:
        await client.aclose()


async def test_two_processes_share_one_exact_bucket(redis_url: str) -> None:
    """1,000 tokens per 10 hours, 2 processes × 1,500 attempts: exactly the capacity
    passes (the refill in a second is 0.03 of a token)."""
    results = await asyncio.to_thread(
        _run_children, hammer, [(redis_url, "exact", 1000, 36000.0, 1500, 0.0)] * 2
    )
    assert sum(results) in (1000, 1001), results
    assert all(r > 0 for r in results)  # both really competed


async def test_two_processes_refilling_bucket_within_one(redis_url: str) -> None:
    """40 per 2 s (20/s) hammered by 2 processes for 1.5 s: allowed = 40 + 20 × elapsed ± 1."""
    t0 = await _server_time(redis_url)
    results = await asyncio.to_thread(
        _run_children, hammer, [(redis_url, "refill", 40, 2.0, 0, 1.5)] * 2
    )
    t1 = await _server_time(redis_url)
    # The bucket starts counting at the first take, after t0; the window is at most t1 - t0
    # and at least the hammering time itself.
    upper = 40 + 20 * (t1 - t0)
    lower = 40 + 20 * 1.5
    assert lower - 1 <= sum(results) <= upper + 1, (results, t1 - t0)


async def test_two_processes_share_exact_slots(redis_url: str) -> None:
    results = await asyncio.to_thread(
        _run_children, occupy, [(redis_url, "slots", w, 10, 40) for w in ("a", "b")]
    )
    assert sum(results) == 10, results


async def test_policy_per_user_per_tier_concurrency_pending_and_anonymous() -> None:
    clock = Clock()
    pol = LimitPolicy(
        MemoryLimiter(clock=clock),
        {
            "free": TierLimits(
                requests=Rate(2, 60),
                tier_requests=Rate(3, 60),
                new_calls=Rate(5, 60),
                concurrent_calls=1,
                pending_conversations=1,
                pending_ttl_seconds=30,
                max_call_seconds=600,
            )
        },
        unauthenticated_connections=2,
        unauthenticated_per_address=1,
    )
    a = Principal("a", tier="free")
    b = Principal("b", tier="free")
    other_tenant_a = Principal("a", tenant="other", tier="free")
    await pol.check_request(a)
    await pol.check_request(a)
    with pytest.raises(RateLimited) as info:
        await pol.check_request(a)  # per user
    assert info.value.retry_after == pytest.approx(30)
    await pol.check_request(b)
    with pytest.raises(RateLimited, match="tier"):
        await pol.check_request(other_tenant_a)  # the tier's shared bucket is empty
    # unlimited default tier
    for _ in range(50):
        await pol.check_request(Principal("c"))

    await pol.hold_pending(a, "conv1")
    with pytest.raises(RateLimited, match="pending"):
        await pol.hold_pending(a, "conv2")
    clock.now += 31  # the pending conversation lapsed: it no longer counts against a
    assert pol.pending_expired(a, created_at=0.0, now=31.0)
    await pol.hold_pending(a, "conv2")
    assert await pol.admit_call(a, "conv2", from_pending=True) == 600
    with pytest.raises(RateLimited, match="concurrent"):
        await pol.admit_call(a, "call3")
    await pol.end_call(a, "conv2")
    await pol.admit_call(a, "call3")

    await pol.admit_unauthenticated("c1", "10.0.0.1")
    with pytest.raises(RateLimited, match="address"):
        await pol.admit_unauthenticated("c2", "10.0.0.1")
    await pol.admit_unauthenticated("c3", "10.0.0.2")
    with pytest.raises(RateLimited, match="unauthenticated"):
        await pol.admit_unauthenticated("c4", "10.0.0.3")
    await pol.release_unauthenticated("c1", "10.0.0.1")
    await pol.admit_unauthenticated("c2", "10.0.0.1")


def test_policy_from_settings() -> None:
    pol = LimitPolicy.from_settings(
        MemoryLimiter(),
        rate_limit_per_minute=60,
        tiers={"pro": {"requests_per_minute": 600, "concurrent_calls": 5}},
    )
    assert pol.default.requests == Rate(60, 60)
    assert pol.default.new_calls == Rate(6, 60)
    pro = pol.tier(Principal("x", tier="pro"))
    assert pro.requests == Rate(600, 60) and pro.concurrent_calls == 5
    assert pol.tier(Principal("x", tier="unknown")) is pol.default
    assert time.monotonic() > 0

"""Scale-out on a real redis-server with real node processes: commands reach the node
holding a call (from any node) with a reply, a dead node's calls are marked ended by
its lapsed lease with their turns kept, and Twilio tokens are single-use everywhere."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from cluster_procs import Node, check_token, run_node
from parley.errors import AuthError
from parley.security.twilio_once import SingleUseTokens, SingleUseTwilioTokens
from parley.server.auth import TwilioTokens
from parley.server.tokens import StreamTokens
from parley.store.cluster import (
    CallNotFound,
    Command,
    CommandFailed,
    CommandTimeout,
    NodeUnreachable,
)
from parley.store.kv import MemoryKV
from parley.store.records import SessionRecord, StoredTurn
from parley.store.redis_kv import RedisKV
from parley.store.sqlite import SqliteSessionStore
from parley.testing.redis_server import RedisServer

LEASE = 0.6


@pytest.fixture
def redis_url() -> Iterator[str]:
    with RedisServer() as server:
        yield server.url


class Cluster:
    def __init__(self, url: str) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.url = url
        self.ready = self.ctx.Queue()
        # One stop event per node: a killed waiter would block a shared Event's set().
        self.stops: dict[str, Any] = {}
        self.procs: dict[str, Any] = {}

    def start(self, nodes: dict[str, list[str]]) -> None:
        for node_id, calls in nodes.items():
            self.stops[node_id] = stop = self.ctx.Event()
            p = self.ctx.Process(
                target=run_node, args=(self.url, node_id, calls, LEASE, self.ready, stop)
            )
            p.start()
            self.procs[node_id] = p
        started = {self.ready.get(timeout=30) for _ in nodes}
        assert started == set(nodes)

    def close(self) -> None:
        for node_id, p in self.procs.items():
            if p.is_alive():
                self.stops[node_id].set()
        for p in self.procs.values():
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()


@pytest.fixture
async def cluster(redis_url: str) -> AsyncIterator[tuple[Cluster, Node]]:
    c = Cluster(redis_url)
    await asyncio.to_thread(c.start, {"A": ["A-1", "A-2"], "B": ["B-1"], "C": ["C-1", "C-2"]})
    client = Redis.from_url(redis_url)
    here = Node(client, "T", LEASE)  # the test is a node too (holding "T-1")
    await here.start(["T-1"])
    try:
        yield c, here
    finally:
        await here.aclose()
        await client.aclose()
        await asyncio.to_thread(c.close)


async def test_commands_reach_the_holding_node_from_any_node(cluster: tuple[Cluster, Node]) -> None:
    _, t = cluster
    send = t.router.send
    r = await send(Command("inject_context", "A-2", {"data": {"order": "late"}}))
    assert r == {"node": "A", "context": [{"data": {"order": "late"}}], "events": []}
    await send(Command("fire_event", "B-1", {"name": "payment"}))
    assert (await send(Command("live_state", "B-1")))["events"] == [{"name": "payment"}]
    assert (await send(Command("live_state", "T-1")))["node"] == "T"  # same node: no bus
    # from another node: T asks A to route a command for a call on C
    relay = {"kind": "inject_context", "call_id": "C-2", "payload": {"x": 1}}
    r = await send(Command("relay", "A-1", relay))
    assert r["via"] == "A" and r["inner"]["node"] == "C" and r["inner"]["context"] == [{"x": 1}]
    assert (await send(Command("end_call", "C-1")))["ended"]
    with pytest.raises(CallNotFound):
        await send(Command("live_state", "C-1"))
    with pytest.raises(CallNotFound):
        await send(Command("live_state", "nowhere"))
    # an error on the holding node comes back typed
    with pytest.raises(CommandFailed) as info:
        await send(Command("relay", "A-1", {"kind": "bogus", "call_id": "B-1", "payload": {}}))
    assert info.value.code in ("unknown_command", "internal_error")


async def test_timeout_when_the_holder_does_not_answer(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    stuck = asyncio.Event()

    async def never(cmd: Command) -> dict[str, Any]:
        await stuck.wait()
        return {}

    slow, asker = Node(client, "S", LEASE), Node(client, "Q", LEASE)
    slow.bus._handler = never  # the holder hangs in its handler
    await slow.start(["S-1"])
    await asker.start([])
    try:
        t0 = time.monotonic()
        with pytest.raises(CommandTimeout):
            await asker.router.send(Command("live_state", "S-1"), wait_seconds=0.2)
        assert time.monotonic() - t0 < 1.0
    finally:
        stuck.set()
        await slow.aclose()
        await asker.aclose()
        await client.aclose()


async def test_dead_node_calls_end_by_lease_with_turns_kept(
    cluster: tuple[Cluster, Node], tmp_path: Path
) -> None:
    c, t = cluster
    store = SqliteSessionStore(tmp_path / "parley.db")
    for sid in ("C-1", "C-2", "A-1"):
        await store.save_record(SessionRecord(sid, "acme", "alice", 1.0, status="live"))
        await store.append_turn(sid, StoredTurn(0, "user", f"hello from {sid}", 2.0, 3.0))

    c.procs["C"].kill()  # SIGKILL: no clean shutdown, the lease just stops
    await asyncio.to_thread(c.procs["C"].join)
    with pytest.raises(NodeUnreachable):
        await t.router.send(Command("live_state", "C-1"))

    lost_by: dict[str, list[str]] = {}

    async def on_lost(node: str, calls: Any) -> None:
        lost_by[node] = list(calls)
        for call_id in calls:
            await store.mark_ended(call_id, ended_at=time.time(), reason="node_lost")

    deadline = time.monotonic() + 5
    while not lost_by and time.monotonic() < deadline:
        await t.directory.reap(on_lost)
        await asyncio.sleep(LEASE / 4)  # the lease lapses on Redis's clock
    assert lost_by == {"C": ["C-1", "C-2"]}
    for sid in ("C-1", "C-2"):
        s = await store.load(sid)
        assert s is not None and s.record.status == "ended" and s.record.end_reason == "node_lost"
        assert [x.text for x in s.turns] == [f"hello from {sid}"]
    a1 = await store.get_record("A-1")
    assert a1 is not None and a1.status == "live"  # a live node's calls are untouched
    with pytest.raises(CallNotFound):
        await t.router.send(Command("live_state", "C-1"))
    assert (await t.router.send(Command("live_state", "A-1")))["node"] == "A"
    assert await t.directory.reap(on_lost) == []  # reaped once
    await store.aclose()


async def test_a_paused_node_that_was_reaped_registers_again(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    n, other = Node(client, "P", LEASE), Node(client, "O", LEASE)
    await n.start(["P-1"])
    await other.start([])
    try:
        assert n.directory._heartbeat is not None
        n.directory._heartbeat.cancel()  # a long pause: no heartbeats
        await client.delete("c:lease:P")  # ... until the lease lapsed
        lost: list[str] = []

        async def on_lost(node: str, calls: Any) -> None:
            lost.extend(calls)

        await other.directory.reap(on_lost)
        assert lost == ["P-1"]
        await n.directory._beat()  # it wakes up
        assert await other.directory.locate("P-1") == "P"
    finally:
        await n.aclose()
        await other.aclose()
        await client.aclose()


def _race(url: str, token: str) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=check_token, args=(url, token, "CA123", start, out)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    return sorted(results)


async def test_twilio_tokens_single_use_across_processes_and_restarts(redis_url: str) -> None:
    token = TwilioTokens("auth-token-secret").issue("CA123", "+15550100")
    assert await asyncio.to_thread(_race, redis_url, token) == ["accepted", "token already used"]
    kv = RedisKV(redis_url)  # a restarted server: a new TwilioTokens with an empty used-set
    again = SingleUseTwilioTokens(TwilioTokens("auth-token-secret"), kv)
    with pytest.raises(AuthError, match="already used"):
        await again.check(token, "CA123", "+15550100")
    fresh = again.issue("CA999")
    await again.check(fresh, "CA999")
    with pytest.raises(AuthError, match="unknown token"):
        await again.check(fresh, "CA000")  # another call's token
    ttl = await kv.client.pttl(next(iter(await kv.client.keys("parley:once:twilio-token:*"))))
    assert 0 < ttl <= 122_000  # the claim lasts as long as the token could be valid
    assert await again.first_webhook("CA777") and not await again.first_webhook("CA777")
    await kv.aclose()
    mem = SingleUseTwilioTokens(TwilioTokens("auth-token-secret"), MemoryKV())
    t2 = mem.issue("CA1")
    await mem.check(t2, "CA1")
    other_process = SingleUseTwilioTokens(TwilioTokens("auth-token-secret"), mem.once)
    with pytest.raises(AuthError, match="already used"):
        await other_process.check(t2, "CA1")


@pytest.mark.parametrize("platform", ["telnyx", "vonage", "plivo"])
async def test_other_phone_tokens_single_use_across_restarts(redis_url: str, platform: str) -> None:
    """The same guard for every phone platform's tokens, under its own claim keys."""
    tokens = StreamTokens("platform-secret", platform=platform)
    token = tokens.issue("call-1", "+15550100")
    kv = RedisKV(redis_url)
    first = SingleUseTokens(tokens, kv, platform=platform)
    await first.check(token, "call-1", "+15550100")
    # a restarted server: fresh StreamTokens (empty used-set), the same Redis
    again = SingleUseTokens(
        StreamTokens("platform-secret", platform=platform), kv, platform=platform
    )
    with pytest.raises(AuthError, match="already used"):
        await again.check(token, "call-1", "+15550100")
    assert await kv.client.keys(f"parley:once:{platform}-token:*")
    await kv.aclose()


def test_bench_cluster_prints_one_json_line() -> None:
    import json
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, str(root / "bench" / "cluster.py"), "--samples", "50", "--warmup", "5"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["samples"] == 50
    assert result["cross_node_p50_ms"] > 0 and result["same_node_p50_ms"] > 0

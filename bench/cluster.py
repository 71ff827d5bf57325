"""Cross-node command round trip against same-node, in one run, on a real redis-server.

    .venv/bin/python bench/cluster.py                 # ~5 s
    .venv/bin/python bench/cluster.py --samples 5000

Two nodes: this process (node A, holding call ``A-1``) and a spawned OS process (node
B, holding ``B-1``), each with its ``CallDirectory`` and ``NodeBus`` on one local
``redis-server`` started on a free port (nothing saved). Each sample is
``ClusterRouter.send(Command("inject_context", call))`` as a REST handler would call
it: the directory lookup (one Redis GET, plus the holder's lease check when it is
another node) and then either the local handler (same node) or the bus (PUBLISH to
B's channel, B runs its handler, PUBLISH of the reply to A's). Samples alternate
between the two calls so both see the same machine load.

With ``--servers`` the same comparison end to end: two real ``parley serve``
processes (loopback engine, sessions and limits on the same redis-server), one live
browser call on node B, and ``POST /conversations/{id}/context`` alternately to B
(same node) and to A (which routes it to B over the bus), over keep-alive HTTP.

Prints ONE JSON line: p50/p99 of both in ms and ``added_p99_ms`` (cross − same).
Goal (issue 10): added p99 ≤ 20 ms on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from cluster_procs import Node, run_node
from parley.store.cluster import Command
from parley.testing.redis_server import RedisServer


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(url: str, samples: int, warmup: int) -> dict[str, float | int]:
    client = Redis.from_url(url)
    here = Node(client, "A", lease_seconds=10.0)
    await here.start(["A-1"])
    same: list[float] = []
    cross: list[float] = []
    try:
        for i in range(warmup + samples):
            for call, out in (("A-1", same), ("B-1", cross)):
                t0 = time.perf_counter()
                reply = await here.router.send(Command("inject_context", call, {"i": i}))
                dt = (time.perf_counter() - t0) * 1000
                assert reply["node"] == call[0]
                if i >= warmup:
                    out.append(dt)
                here.calls["A-1"]["context"].clear()  # keep replies small and equal
    finally:
        await here.aclose()
        await client.aclose()
    return {
        "samples": samples,
        "same_node_p50_ms": round(statistics.median(same), 3),
        "same_node_p99_ms": round(_pct(same, 0.99), 3),
        "cross_node_p50_ms": round(statistics.median(cross), 3),
        "cross_node_p99_ms": round(_pct(cross, 0.99), 3),
        "added_p50_ms": round(statistics.median(cross) - statistics.median(same), 3),
        "added_p99_ms": round(_pct(cross, 0.99) - _pct(same, 0.99), 3),
    }


async def _measure_servers(
    a_url: str, b_url: str, b_ws: str, samples: int, warmup: int
) -> dict[str, float | int]:
    import httpx
    import websockets

    from parley.protocols.browser import StartMessage, encode_client_message

    same: list[float] = []
    cross: list[float] = []
    async with (
        httpx.AsyncClient(base_url=a_url) as on_a,
        httpx.AsyncClient(base_url=b_url) as on_b,
        websockets.connect(b_ws) as ws,
    ):
        await ws.send(encode_client_message(StartMessage()))
        ready = json.loads(await ws.recv())
        cid = ready["session_id"]
        body = {"key": "k", "data": {"n": 1}}
        for i in range(warmup + samples):
            for client, out in ((on_b, same), (on_a, cross)):
                t0 = time.perf_counter()
                r = await client.post(f"/conversations/{cid}/context", json=body)
                dt = (time.perf_counter() - t0) * 1000
                assert r.status_code == 202, r.text
                if i >= warmup:
                    out.append(dt)
    return {
        "samples": samples,
        "same_node_p50_ms": round(statistics.median(same), 3),
        "same_node_p99_ms": round(_pct(same, 0.99), 3),
        "cross_node_p50_ms": round(statistics.median(cross), 3),
        "cross_node_p99_ms": round(_pct(cross, 0.99), 3),
        "added_p50_ms": round(statistics.median(cross) - statistics.median(same), 3),
        "added_p99_ms": round(_pct(cross, 0.99) - _pct(same, 0.99), 3),
    }


def _servers(samples: int, warmup: int) -> None:
    from servers import ServerProcess

    with RedisServer() as redis:
        env = {
            "PARLEY_ENGINE": "loopback",
            "PARLEY_REDIS_URL": redis.url,
            "PARLEY_PERSIST_CONVERSATIONS": "true",
        }
        with ServerProcess(env) as a, ServerProcess(env) as b:
            out = asyncio.run(
                _measure_servers(a.url, b.url, b.ws_url("/ws/audio"), samples, warmup)
            )
    print(json.dumps({"bench": "cluster", "transport": "REST via 2 parley serve, redis", **out}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--servers", action="store_true", help="end to end, over REST")
    args = parser.parse_args()
    if args.servers:
        _servers(args.samples, args.warmup)
        return
    ctx = multiprocessing.get_context("spawn")
    with RedisServer() as redis:
        ready, stop = ctx.Queue(), ctx.Event()
        node_b = ctx.Process(target=run_node, args=(redis.url, "B", ["B-1"], 10.0, ready, stop))
        node_b.start()
        try:
            ready.get(timeout=30)
            out = asyncio.run(_measure(redis.url, args.samples, args.warmup))
        finally:
            stop.set()
            node_b.join(timeout=10)
            if node_b.is_alive():
                node_b.kill()
    print(json.dumps({"bench": "cluster", "transport": "redis pub/sub, loopback", **out}))


if __name__ == "__main__":
    main()

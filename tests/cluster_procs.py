"""Node processes for the cluster tests and bench (spawned, so importable by name): a
node with a call table, its directory entry, its bus and a router."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from parley.errors import AuthError
from parley.security.twilio_once import SingleUseTwilioTokens
from parley.server.auth import TwilioTokens
from parley.store.cluster import CallDirectory, CallNotFound, ClusterRouter, Command, NodeBus
from parley.store.redis_kv import RedisKV


class Node:
    """One node's live calls: ``{call_id: {"context": [...], "events": [...]}}``."""

    def __init__(self, client: Redis, node_id: str, lease_seconds: float) -> None:
        self.node_id = node_id
        self.calls: dict[str, dict[str, list[Any]]] = {}
        self.directory = CallDirectory(client, node_id, lease_seconds=lease_seconds, prefix="c")
        self.bus = NodeBus(client, node_id, self.handle, prefix="c")
        self.router = ClusterRouter(self.directory, self.bus, self.handle)

    async def start(self, call_ids: list[str]) -> None:
        await self.directory.start()
        await self.bus.start()
        for call_id in call_ids:
            self.calls[call_id] = {"context": [], "events": []}
            await self.directory.register(call_id)

    async def handle(self, cmd: Command) -> dict[str, Any]:
        if cmd.kind == "relay":  # "published by any node": route an inner command from here
            inner = Command(cmd.payload["kind"], cmd.payload["call_id"], cmd.payload["payload"])
            return {"via": self.node_id, "inner": await self.router.send(inner)}
        call = self.calls.get(cmd.call_id)
        if call is None:
            raise CallNotFound(f"{cmd.call_id} is not on {self.node_id}")
        if cmd.kind == "inject_context":
            call["context"].append(cmd.payload)
        elif cmd.kind == "fire_event":
            call["events"].append(cmd.payload)
        elif cmd.kind == "end_call":
            del self.calls[cmd.call_id]
            await self.directory.unregister(cmd.call_id)
            return {"node": self.node_id, "ended": True}
        return {"node": self.node_id, "context": call["context"], "events": call["events"]}

    async def aclose(self) -> None:
        await self.bus.aclose()
        await self.directory.aclose()


async def _node(
    url: str, node_id: str, calls: list[str], lease: float, ready: Any, stop: Any
) -> None:
    client = Redis.from_url(url)
    node = Node(client, node_id, lease)
    await node.start(calls)
    ready.put(node_id)
    await asyncio.to_thread(stop.wait)
    await node.aclose()
    await client.aclose()


def run_node(url: str, node_id: str, calls: list[str], lease: float, ready: Any, stop: Any) -> None:
    asyncio.run(_node(url, node_id, calls, lease, ready, stop))


async def _check_token(url: str, token: str, call_sid: str) -> str:
    kv = RedisKV(url)
    guard = SingleUseTwilioTokens(TwilioTokens("auth-token-secret"), kv)
    try:
        await guard.check(token, call_sid, "+15550100")
        return "accepted"
    except AuthError as exc:
        return str(exc)
    finally:
        await kv.aclose()


def check_token(url: str, token: str, call_sid: str, start: Any, out: Any) -> None:
    start.wait()
    out.put(asyncio.run(_check_token(url, token, call_sid)))

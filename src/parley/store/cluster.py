"""Scale-out on Redis: which node holds a call, and a way to reach it.

- :class:`CallDirectory` — ``call → node`` with node *leases*. Each node keeps
  ``{p}:lease:{node}`` alive (``SET PX``, refreshed every third of the lease); a node
  that dies stops refreshing, and :meth:`CallDirectory.reap` (run by every node,
  :meth:`CallDirectory.run_reaper`) hands its calls to ``on_lost`` — the switchboard
  marks them ended (``reason="node_lost"``) in the session store, whose finished
  turns stay — then forgets them. A node that was only paused and finds itself reaped
  registers its live calls again at its next heartbeat.
- :class:`NodeBus` — one pub/sub channel per node, ``{p}:node:{node}``, carrying
  commands (inject context, fire an event, end a call, read live state) and their
  replies on ``{p}:reply:{node}``: request/response with a timeout. ``PUBLISH``
  reports how many subscribers got a message, so a command to a node that is gone
  fails at once (:class:`NodeUnreachable`), not after the timeout.
- :class:`ClusterRouter` — ``send(command)``: locate the call, run the command locally
  if it is here, else over the bus; a REST handler calls only this.

Other keys: ``{p}:call:{id}`` (the node), ``{p}:node:{node}:calls`` (its call ids),
``{p}:nodes`` (nodes known), ``{p}:reap:{node}`` (one reaper per dead node).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from parley.errors import ParleyError
from parley.tasks import cancel_and_wait

__all__ = [
    "COMMAND_KINDS",
    "CallDirectory",
    "CallNotFound",
    "ClusterError",
    "ClusterRouter",
    "Command",
    "CommandFailed",
    "CommandHandler",
    "CommandKind",
    "CommandTimeout",
    "LostCalls",
    "NodeBus",
    "NodeUnreachable",
]

log = logging.getLogger("parley.cluster")

CommandKind = Literal["inject_context", "fire_event", "end_call", "live_state", "relay"]
COMMAND_KINDS: Final = frozenset(
    {"inject_context", "fire_event", "end_call", "live_state", "relay"}
)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ClusterError(ParleyError):
    code = "cluster_error"


class CallNotFound(ClusterError):
    """No live call with that id on any node."""

    code = "call_not_found"


class NodeUnreachable(ClusterError):
    """The node holding the call has no listener (it died; its lease will lapse)."""

    code = "node_unreachable"


class CommandTimeout(ClusterError):
    code = "command_timeout"


class CommandFailed(ClusterError):
    """The holding node ran the command and it failed; ``code`` is the remote one."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Command:
    """A command for the node holding ``call_id``; ``payload`` is JSON."""

    kind: CommandKind
    call_id: str
    payload: dict[str, Any] = field(default_factory=dict)


#: Runs a command against a call held by this node; raises ``CallNotFound`` if the
#: call is not (or no longer) here, another ``ParleyError`` to refuse it.
CommandHandler = Callable[[Command], Awaitable[dict[str, Any]]]
#: Told of a dead node's calls: ``(node_id, call_ids)``.
LostCalls = Callable[[str, Sequence[str]], Awaitable[None]]


class CallDirectory:
    """This node's entry in the ``call → node`` directory, and its lease."""

    def __init__(
        self,
        client: Redis,
        node_id: str,
        *,
        lease_seconds: float = 10.0,
        prefix: str = "parley",
    ) -> None:
        self.client = client
        self.node_id = node_id
        self.lease_seconds = lease_seconds
        self.prefix = prefix
        self._calls: set[str] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def _lease_ms(self) -> int:
        return max(1, round(self.lease_seconds * 1000))

    async def start(self) -> None:
        await self._beat()
        self._heartbeat = asyncio.create_task(self._beat_forever(), name="parley-lease")

    async def _beat(self) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self._k("lease", self.node_id), b"1", px=self._lease_ms)
            pipe.sadd(self._k("nodes"), self.node_id)
            _, added = await pipe.execute()
        if added and self._calls:
            # We were reaped while alive (a long pause): claim our live calls again.
            log.warning("node %s was reaped while alive; re-registering its calls", self.node_id)
            for call_id in list(self._calls):
                await self.register(call_id)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self._beat()
            except (RedisError, OSError) as exc:  # Redis away: the next beat retries
                log.warning("lease heartbeat failed: %s", exc)

    async def register(self, call_id: str) -> None:
        self._calls.add(call_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self._k("call", call_id), self.node_id)
            pipe.sadd(self._k("node", self.node_id, "calls"), call_id)
            await pipe.execute()

    async def unregister(self, call_id: str) -> None:
        self._calls.discard(call_id)
        await self._forget(self.node_id, [call_id])

    async def _forget(self, node_id: str, call_ids: Sequence[str]) -> None:
        if not call_ids:
            return
        # Delete call → node only where it still names node_id (the call may have moved).
        owners = await self.client.mget([self._k("call", c) for c in call_ids])
        async with self.client.pipeline(transaction=True) as pipe:
            for call_id, owner in zip(call_ids, owners, strict=True):
                if owner is not None and _text(owner) == node_id:
                    pipe.delete(self._k("call", call_id))
            pipe.srem(self._k("node", node_id, "calls"), *call_ids)
            await pipe.execute()

    async def locate(self, call_id: str) -> str | None:
        """The node holding ``call_id`` while its lease holds; else None."""
        owner = await self.client.get(self._k("call", call_id))
        if owner is None:
            return None
        node = _text(owner)
        if node != self.node_id and not await self.client.exists(self._k("lease", node)):
            return None  # held by a dead node, not reaped yet
        return node

    async def reap(self, on_lost: LostCalls) -> list[str]:
        """Hand every dead node's calls to ``on_lost``, then forget them; the call ids."""
        lost: list[str] = []
        for raw in await self.client.smembers(self._k("nodes")):
            node = _text(raw)
            if node == self.node_id or await self.client.exists(self._k("lease", node)):
                continue
            if not await self.client.set(
                self._k("reap", node), self.node_id, nx=True, px=self._lease_ms
            ):
                continue  # another node is reaping it
            calls = sorted(
                _text(c) for c in await self.client.smembers(self._k("node", node, "calls"))
            )
            await on_lost(node, calls)
            await self._forget(node, calls)
            await self.client.srem(self._k("nodes"), node)
            lost += calls
        return lost

    def run_reaper(self, on_lost: LostCalls, *, every_seconds: float | None = None) -> None:
        """Reap in the background every ``every_seconds`` (default: half a lease)."""
        period = every_seconds or self.lease_seconds / 2

        async def loop() -> None:
            while True:
                await asyncio.sleep(period)
                try:
                    await self.reap(on_lost)
                except (RedisError, OSError) as exc:
                    log.warning("reaper: %s", exc)

        self._reaper = asyncio.create_task(loop(), name="parley-reaper")

    async def aclose(self, *, release: bool = True) -> None:
        """Stop the heartbeat; with ``release`` (a clean shutdown, its calls ended)
        drop the lease and this node's entries at once."""
        for task in (self._heartbeat, self._reaper):
            if task is not None:
                await cancel_and_wait(task)
        self._heartbeat = self._reaper = None
        if release:
            await self._forget(self.node_id, sorted(self._calls))
            self._calls.clear()
            await self.client.delete(self._k("lease", self.node_id))
            await self.client.srem(self._k("nodes"), self.node_id)


class NodeBus:
    """Request/response between nodes over Redis pub/sub."""

    def __init__(
        self, client: Redis, node_id: str, handler: CommandHandler, *, prefix: str = "parley"
    ) -> None:
        self.client = client
        self.node_id = node_id
        self.prefix = prefix
        self._handler = handler
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._running: set[asyncio.Task[None]] = set()

    def channel(self, node_id: str) -> str:
        return f"{self.prefix}:node:{node_id}"

    def _reply_channel(self, node_id: str) -> str:
        return f"{self.prefix}:reply:{node_id}"

    async def start(self) -> None:
        self._pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self.channel(self.node_id), self._reply_channel(self.node_id))
        self._reader = asyncio.create_task(self._read(self._pubsub), name="parley-bus")

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None or message.get("type") != "message":
                continue
            try:
                data = json.loads(message["data"])
            except ValueError:
                log.warning("bus: a message that is not JSON on %s", message.get("channel"))
                continue
            if data.get("t") == "rep":
                future = self._waiting.pop(str(data.get("id")), None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif data.get("t") == "req":
                task = asyncio.create_task(self._serve(data))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _serve(self, data: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"t": "rep", "id": data.get("id")}
        try:
            kind = data["kind"]
            if kind not in COMMAND_KINDS:
                raise CommandFailed(f"unknown command {kind!r}", code="unknown_command")
            result = await self._handler(Command(kind, str(data["call_id"]), dict(data["payload"])))
            reply |= {"ok": True, "result": result}
        except ParleyError as exc:
            code = exc.code
            reply |= {"ok": False, "code": code, "message": str(exc)}
        except Exception as exc:  # a handler's bug must still answer, typed
            log.exception("bus: command %s failed", data.get("kind"))
            reply |= {"ok": False, "code": "internal_error", "message": type(exc).__name__}
        sender = data.get("from")
        if isinstance(sender, str):
            try:
                await self.client.publish(self._reply_channel(sender), json.dumps(reply))
            except (RedisError, OSError) as exc:  # the asker times out; nothing else to do
                log.warning("bus: reply to %s lost: %s", sender, exc)

    async def request(
        self, node_id: str, command: Command, *, wait_seconds: float = 2.0
    ) -> dict[str, Any]:
        """Run ``command`` on ``node_id`` and return its result (or raise its error)."""
        request_id = secrets.token_hex(8)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        body = {
            "t": "req",
            "id": request_id,
            "from": self.node_id,
            "kind": command.kind,
            "call_id": command.call_id,
            "payload": command.payload,
        }
        try:
            receivers = await self.client.publish(self.channel(node_id), json.dumps(body))
            if not receivers:
                raise NodeUnreachable(f"node {node_id} is not listening")
            try:
                reply = await asyncio.wait_for(future, wait_seconds)
            except TimeoutError:
                raise CommandTimeout(
                    f"node {node_id} did not answer in {wait_seconds:g} s"
                ) from None
        finally:
            self._waiting.pop(request_id, None)
        if reply.get("ok"):
            result: dict[str, Any] = reply.get("result") or {}
            return result
        code, message = str(reply.get("code")), str(reply.get("message"))
        if code == CallNotFound.code:
            raise CallNotFound(message)
        raise CommandFailed(message, code=code)

    async def aclose(self) -> None:
        if self._reader is not None:
            await cancel_and_wait(self._reader)
            self._reader = None
        for task in list(self._running):
            await cancel_and_wait(task)
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe()
            await self._pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis 8
            self._pubsub = None


class ClusterRouter:
    """Where a command for a call goes: here, or to the node that holds it."""

    def __init__(self, directory: CallDirectory, bus: NodeBus, local: CommandHandler) -> None:
        self.directory = directory
        self.bus = bus
        self._local = local

    @property
    def node_id(self) -> str:
        return self.directory.node_id

    async def send(self, command: Command, *, wait_seconds: float = 2.0) -> dict[str, Any]:
        node = await self.directory.locate(command.call_id)
        if node is None:
            raise CallNotFound(f"no live call {command.call_id!r}")
        if node == self.node_id:
            return await self._local(command)
        return await self.bus.request(node, command, wait_seconds=wait_seconds)

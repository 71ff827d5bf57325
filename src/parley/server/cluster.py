"""This server as one node of many sharing Redis (``redis_url``).

:class:`ClusterNode` wires ``parley.store.cluster`` into the server: the node's lease
and its entries in the call directory (a call is registered when it starts and
unregistered when it ends), its command channel, and the reaper that marks a dead
node's calls ended in the session store (``reason="node_lost"``: their finished turns
stay, and a browser may resume them). REST hands a command for a call to
:meth:`ClusterNode.send`: it runs here if the call is here, else on the node that
holds its socket. What a command does is REST's (``parley.server.rest`` installs the
handler with :meth:`ClusterNode.handle_with`), so a command answers the same on any
node.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from parley.store.cluster import (
    CallDirectory,
    CallNotFound,
    ClusterRouter,
    Command,
    CommandHandler,
    NodeBus,
)
from parley.store.records import SessionStore

__all__ = ["ClusterNode"]

log = logging.getLogger("parley.cluster")


class ClusterNode:
    def __init__(
        self,
        client: Redis,
        node_id: str,
        store: SessionStore,
        *,
        lease_seconds: float = 10.0,
        prefix: str = "parley",
    ) -> None:
        self.node_id = node_id
        self.store = store
        self.directory = CallDirectory(client, node_id, lease_seconds=lease_seconds, prefix=prefix)
        self.bus = NodeBus(client, node_id, self._handle, prefix=prefix)
        self.router = ClusterRouter(self.directory, self.bus, self._handle)
        self._handler: CommandHandler | None = None
        self._started = False

    def handle_with(self, handler: CommandHandler) -> None:
        """What a command for a call held here does (REST's handler)."""
        self._handler = handler

    async def _handle(self, command: Command) -> dict[str, Any]:
        if self._handler is None:
            raise CallNotFound(f"node {self.node_id} serves no commands")
        return await self._handler(command)

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        await self.directory.start()
        await self.bus.start()
        self.directory.run_reaper(self._lost)
        log.info("cluster node %s: lease %.0f s", self.node_id, self.directory.lease_seconds)

    async def _lost(self, node_id: str, call_ids: Sequence[str]) -> None:
        now = time.time()
        for call_id in call_ids:
            await self.store.mark_ended(call_id, ended_at=now, reason="node_lost")
        if call_ids:
            log.warning(
                "node %s is gone: %d call(s) marked ended (node_lost)", node_id, len(call_ids)
            )

    async def register(self, call_id: str) -> None:
        await self.directory.register(call_id)

    async def unregister(self, call_id: str) -> None:
        await self.directory.unregister(call_id)

    async def send(self, command: Command, *, wait_seconds: float = 2.0) -> dict[str, Any]:
        """Run ``command`` where its call is (``CallNotFound`` if it is live nowhere)."""
        return await self.router.send(command, wait_seconds=wait_seconds)

    async def aclose(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.bus.aclose()
        await self.directory.aclose()

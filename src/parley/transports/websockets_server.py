"""A plain ``websockets`` server: Parley calls without an ASGI framework.

    import asyncio
    from parley import Parley
    from parley.transports.websockets_server import serve_websockets

    async def main() -> None:
        server = await serve_websockets(Parley(), "0.0.0.0", 8765)
        await server.serve_forever()

    asyncio.run(main())

Routes (the FastAPI app's WebSocket paths): ``/ws/audio/{conversation_id}`` and
``/ws/audio`` speak the browser protocol (docs/protocol.md), ``/twilio/stream``
speaks Twilio Media Streams; any other path is refused with HTTP 404 during the
opening handshake. There is no HTTP API here (no REST, no ``/twilio/voice``
webhook): when ``PARLEY_TWILIO_AUTH_TOKEN`` is set, the stream's one-time tokens
come from the webhook of a FastAPI app built on the same ``Parley`` object.

To embed the routes in a ``websockets`` server of your own, pass
:func:`websockets_handler` as its handler and :func:`refuse_unknown_paths` as its
``process_request``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from parley.transports.serve import serve_call
from parley.transports.socket import CLOSE_NORMAL, close_reason

if TYPE_CHECKING:
    from parley.app import Parley

__all__ = [
    "WebsocketsSocket",
    "refuse_unknown_paths",
    "route_of",
    "serve_websockets",
    "websockets_handler",
]

log = logging.getLogger("parley.server")

CallKind = Literal["twilio", "browser"]
_BROWSER_WITH_ID = re.compile(r"/ws/audio/([^/]+)/?")


class WebsocketsSocket:
    """A ``websockets`` server connection as a :class:`~parley.transports.socket.WireSocket`."""

    __slots__ = ("_closed", "_conn")

    def __init__(self, connection: ServerConnection) -> None:
        self._conn = connection
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def receive(self) -> str | bytes | None:
        if self._closed:
            return None
        try:
            return await self._conn.recv()
        except ConnectionClosed:  # includes our own library's 1009 for an oversized frame
            self._closed = True
            return None

    async def send_text(self, data: str) -> None:
        if self._closed:
            return
        try:
            await self._conn.send(data)
        except ConnectionClosed:
            self._closed = True

    async def send_bytes(self, data: bytes) -> None:
        if self._closed:
            return
        try:
            await self._conn.send(data)
        except ConnectionClosed:
            self._closed = True

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        await self._conn.close(code, close_reason(reason))  # no-op when already closed


def route_of(request_path: str) -> tuple[CallKind, str | None] | None:
    """``(kind, conversation_id)`` for a request path, or None if it is no Parley route."""
    path = urlsplit(request_path).path
    if path in ("/ws/audio", "/ws/audio/"):
        return "browser", None
    if path in ("/twilio/stream", "/twilio/stream/"):
        return "twilio", None
    match = _BROWSER_WITH_ID.fullmatch(path)
    if match is not None:
        return "browser", match.group(1)
    return None


def refuse_unknown_paths(connection: ServerConnection, request: Request) -> Response | None:
    """``process_request`` hook: 404 before the upgrade for a path that is no route."""
    if route_of(request.path) is None:
        return connection.respond(HTTPStatus.NOT_FOUND, "no such WebSocket route\n")
    return None


def websockets_handler(app: Parley) -> Callable[[ServerConnection], Awaitable[None]]:
    """The connection handler serving ``app``'s calls on the routes above."""

    async def handle(connection: ServerConnection) -> None:
        route = route_of(connection.request.path if connection.request else "")
        if route is None:  # only reachable without refuse_unknown_paths
            await connection.close(1008, "no such WebSocket route")
            return
        kind, conversation_id = route
        await serve_call(app, WebsocketsSocket(connection), kind, conversation_id)

    return handle


async def serve_websockets(
    app: Parley, host: str = "127.0.0.1", port: int = 8765, **options: Any
) -> Server:
    """Load the engine's models, then listen; returns the running ``websockets`` Server.

    ``options`` go to :func:`websockets.asyncio.server.serve`. Compression is off
    unless asked for: deflating audio costs CPU per frame and saves little.
    """
    await app.engines.warmup()
    log.info(app.engine_choice().banner())
    options.setdefault("compression", None)
    options.setdefault("process_request", refuse_unknown_paths)
    return await serve(websockets_handler(app), host, port, **options)

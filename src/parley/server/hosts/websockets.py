"""A plain ``websockets`` server: Parley calls without an ASGI framework.

    import asyncio
    from parley import Parley
    from parley.server.hosts.websockets import serve_websockets

    async def main() -> None:
        server = await serve_websockets(Parley(), "0.0.0.0", 8765)
        await server.serve_forever()

    asyncio.run(main())

Routes: every endpoint of the switchboard (the platform registry plus
``/v1/realtime``), the same paths as the FastAPI app's; a path that is no route,
or a connection an endpoint refuses (a missing API key), gets its HTTP answer
during the opening handshake. There is no HTTP API here (no REST, no
``/twilio/voice`` webhook): when ``PARLEY_TWILIO_AUTH_TOKEN`` is set, the stream's
one-time tokens come from the webhook of a FastAPI app built on the same ``Parley``.

To embed the routes in a ``websockets`` server of your own, pass
:func:`websockets_handler` as its handler and :func:`websockets_admission` as its
``process_request``.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from parley.server.switchboard import Endpoint, Switchboard
from parley.transports.platform import Accept, Connection, Refusal, match_route
from parley.transports.socket import CLOSE_NORMAL, CLOSE_POLICY, close_reason

__all__ = [
    "HasSwitchboard",
    "WebsocketsSocket",
    "route_of",
    "serve_websockets",
    "websockets_admission",
    "websockets_handler",
]

log = logging.getLogger("parley.server")


class HasSwitchboard(Protocol):
    """A ``Parley`` app (or anything else that carries a switchboard)."""

    @property
    def switchboard(self) -> Switchboard: ...


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
        await self._send(data)

    async def send_bytes(self, data: bytes) -> None:
        await self._send(data)

    async def _send(self, data: str | bytes) -> None:
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


def route_of(board: Switchboard, request_path: str) -> tuple[Endpoint, dict[str, str]] | None:
    """The endpoint serving ``request_path`` and its path parameters, or None."""
    path = urlsplit(request_path).path
    for endpoint in board.endpoints():
        for template in endpoint.routes:
            params = match_route(template, path)
            if params is not None:
                return endpoint, params
    return None


def _connection(request: Request, params: dict[str, str], peer: str) -> Connection:
    headers: Headers = request.headers
    offered = [p.strip() for h in headers.get_all("Sec-WebSocket-Protocol") for p in h.split(",")]
    return Connection(
        path=urlsplit(request.path).path,
        params=params,
        query=dict(parse_qsl(urlsplit(request.path).query)),
        headers={k.lower(): v for k, v in headers.raw_items()},
        subprotocols=tuple(p for p in offered if p),
        client=peer,
    )


def _peer(connection: ServerConnection) -> str:
    address: Any = connection.remote_address
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else ""


def websockets_admission(
    app: HasSwitchboard,
) -> Callable[[ServerConnection, Request], Awaitable[Response | None]]:
    """``process_request`` hook: HTTP 404 for a path that is no route, the endpoint's
    refusal (e.g. 401, 429) for a connection it does not admit. What it admitted is
    kept for the handler and the subprotocol choice of the same connection."""
    board = app.switchboard

    async def admit(connection: ServerConnection, request: Request) -> Response | None:
        route = route_of(board, request.path)
        if route is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "no such WebSocket route\n")
        endpoint, params = route
        conn = _connection(request, params, _peer(connection))
        verdict = await endpoint.admit(conn)
        if isinstance(verdict, Refusal):
            body = dict(verdict.body) if verdict.body is not None else {"error": verdict.reason}
            response = connection.respond(HTTPStatus(verdict.status), json.dumps(body) + "\n")
            response.headers["Content-Type"] = "application/json"
            return response
        _admitted[connection] = (endpoint, conn, verdict)
        return None

    return admit


#: What ``process_request`` admitted, per connection, until its handler runs.
_admitted: weakref.WeakKeyDictionary[ServerConnection, tuple[Endpoint, Connection, Accept]] = (
    weakref.WeakKeyDictionary()
)


def websockets_handler(app: HasSwitchboard) -> Callable[[ServerConnection], Awaitable[None]]:
    """The connection handler serving ``app``'s calls on the switchboard's routes."""
    board = app.switchboard

    async def handle(connection: ServerConnection) -> None:
        admitted = _admitted.pop(connection, None)
        if admitted is not None:
            endpoint, conn, _ = admitted
            await endpoint.serve(WebsocketsSocket(connection), conn)
            return
        request = connection.request
        route = route_of(board, request.path) if request is not None else None
        if request is None or route is None:  # only reachable without the admission hook
            await connection.close(CLOSE_POLICY, "no such WebSocket route")
            return
        endpoint, params = route
        # Without the admission hook: ``serve`` admits (and refuses with a close code).
        await endpoint.serve(
            WebsocketsSocket(connection), _connection(request, params, _peer(connection))
        )

    return handle


def _select_subprotocol(app: HasSwitchboard) -> Callable[[ServerConnection, list[str]], str | None]:
    def select(connection: ServerConnection, offered: list[str]) -> str | None:
        admitted = _admitted.get(connection)
        return admitted[2].subprotocol if admitted is not None else None

    return select


async def serve_websockets(
    app: HasSwitchboard, host: str = "127.0.0.1", port: int = 8765, **options: Any
) -> Server:
    """Load the engine's models, then listen; returns the running ``websockets`` Server.

    ``options`` go to :func:`websockets.asyncio.server.serve`. Compression is off
    unless asked for: deflating audio costs CPU per frame and saves little.
    """
    board = app.switchboard
    await board.warmup()
    await board.start()
    for level, message in board.startup_messages():
        log.log(level, message)
    options.setdefault("compression", None)
    options.setdefault("process_request", websockets_admission(app))
    options.setdefault("select_subprotocol", _select_subprotocol(app))
    return await serve(websockets_handler(app), host, port, **options)

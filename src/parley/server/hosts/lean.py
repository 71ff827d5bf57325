"""The lean WebSocket host: the switchboard's endpoints served below ASGI, framed in C.

``parley serve`` runs uvicorn with ``ws="parley.server.hosts.lean:LeanWebSocketProtocol"``.
uvicorn still parses every HTTP request (REST, the webhooks, the talk page go to
FastAPI as before); when a request asks to upgrade to a WebSocket on a path of one
of the switchboard's endpoints (``/twilio/stream``, ``/ws/audio``, ``/v1/realtime``,
any platform's), this protocol takes the socket over and hands it to picows, whose
WebSocket framing (parse, unmask, frame) is Cython. The endpoint's ``admit``
answers the upgrade (its refusal is the HTTP status and JSON body, as on the
FastAPI route) and its ``serve`` runs the call over a :class:`PicowsSocket` — the
same :class:`~parley.transports.socket.WireSocket` contract every host fills, so
authentication in ``admit`` applies here too. A path that is no endpoint (a
WebSocket route the app added to FastAPI itself) goes to uvicorn's own
websockets-sansio protocol and the ASGI app, unchanged.

Why: at 100 loopback calls, uvicorn's websockets-sansio ``send`` and the loop under
it took ~40 % of the server and Starlette's WebSocket wrappers ~10 % more, per
message. ``python bench/ws_hosts.py`` measures the candidates (uvicorn with
websockets-sansio, wsproto and websockets under FastAPI, the ``websockets``
library's own server, this host) on the same calls; see the README's performance
table for the figures that chose it.

How the endpoints are found: the app's lifespan yields ``{"parley.endpoints":
(the endpoints it mounts)}`` (``create_app``), and uvicorn hands the lifespan state
to every WebSocket protocol it creates (``app_state``). Under another app, or before
the lifespan ran, every upgrade goes to the fallback.

Per frame: picows parses it in C and calls :meth:`_Listener.on_ws_frame`, which
puts the payload on the socket's deque and wakes the one receiver; ``send_text``
writes through at once (no queue, no task). Shutdown: uvicorn's ``shutdown()`` of
a connection closes it with 1012, as its own protocols do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from typing import Any, Final, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)
from picows.picows import WSProtocol  # type: ignore[attr-defined]  # not in picows' stubs

from parley.server.switchboard import Endpoint
from parley.server.uvicorn_ws import BAD_UTF8_REASON, ParleyWebSocketProtocol
from parley.transports.platform import Connection, Refusal, match_route
from parley.transports.socket import CLOSE_NORMAL, close_reason

__all__ = ["ENDPOINTS_STATE_KEY", "LeanWebSocketProtocol", "PicowsSocket"]

log = logging.getLogger("parley.server")
# picows logs every accepted connection at INFO: one line per call is the switchboard's.
logging.getLogger("picows").setLevel(logging.WARNING)
_PICOWS_LOG: Final = logging.getLogger("picows.server")

#: The lifespan-state key under which ``create_app`` publishes the endpoints it mounts.
ENDPOINTS_STATE_KEY: Final = "parley.endpoints"
_CLOSE_SERVICE_RESTART: Final = 1012  # what uvicorn's own protocols send at shutdown
_CLOSE_WAIT_S: Final = 2.0  # how long a close waits for the peer's close frame
_TEXT, _BINARY, _CONT, _CLOSE = (
    WSMsgType.TEXT,
    WSMsgType.BINARY,
    WSMsgType.CONTINUATION,
    WSMsgType.CLOSE,
)


def _code(code: int) -> WSCloseCode:
    # picows' close code is a Cython enum that takes any int (4000-4999 included);
    # its Python stub names only the RFC's codes.
    return cast(WSCloseCode, code)


class PicowsSocket:
    """A picows server connection as a :class:`~parley.transports.socket.WireSocket`.

    Frames arrive by callback (:class:`_Listener`) and wait in a deque for the one
    task that calls ``receive()``; sends are written to the transport at once and
    wait only while the transport's buffer is over its high-water mark.
    """

    __slots__ = (
        "_closed",
        "_done",
        "_frames",
        "_loop",
        "_peer_closed",
        "_transport",
        "_waiter",
        "_writable",
    )

    def __init__(self, transport: WSTransport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._frames: deque[str | bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._closed = False  # we sent a close (or the peer is gone): send nothing more
        self._peer_closed = False  # the peer's close frame came, or the TCP connection ended
        self._done: asyncio.Future[None] = loop.create_future()  # disconnected

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the listener's side ------------------------------------------------------------

    def _deliver(self, message: str | bytes) -> None:
        self._frames.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _peer_gone(self) -> None:
        self._peer_closed = True
        self._wake()

    def _disconnected(self) -> None:
        self._peer_closed = self._closed = True
        self._wake()
        if not self._done.done():
            self._done.set_result(None)

    def _wake(self) -> None:
        for future in (self._waiter, self._writable):
            if future is not None and not future.done():
                future.set_result(None)

    def _pause(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = self._loop.create_future()

    def _resume(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    # -- WireSocket ---------------------------------------------------------------------

    async def receive(self) -> str | bytes | None:
        frames = self._frames
        while not frames:
            if self._peer_closed:
                return None
            waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return frames.popleft()

    async def send_text(self, data: str) -> None:
        if self._closed:
            return
        if self._writable is not None:
            await self._writable  # back-pressure: the peer reads slower than we write
            if self._closed:
                return
        self._transport.send(_TEXT, data)

    async def send_bytes(self, data: bytes) -> None:
        if self._closed:
            return
        if self._writable is not None:
            await self._writable
            if self._closed:
                return
        self._transport.send(_BINARY, data)

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Send a close frame, wait (bounded) for the peer's, then end the connection."""
        if self._closed:
            return
        self._closed = True
        self._transport.send_close(_code(code), close_reason(reason).encode())
        if not self._peer_closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLOSE_WAIT_S):
                    while not self._peer_closed:
                        waiter = self._waiter = self._loop.create_future()
                        try:
                            await waiter
                        finally:
                            self._waiter = None
        self._transport.disconnect()


class _Listener(WSListener):
    """picows' callbacks for one connection: frames to the socket, the call as a task."""

    def __init__(self, endpoint: Endpoint, connection: Connection, host: _Host) -> None:
        super().__init__()
        self._endpoint = endpoint
        self._connection = connection
        self._host = host
        self.socket: PicowsSocket | None = None
        self._parts: list[bytes] = []
        self._parts_type = _TEXT

    def on_ws_connected(self, transport: WSTransport) -> None:
        loop = asyncio.get_running_loop()
        self.socket = socket = PicowsSocket(transport, loop)
        self._host.serve(self._endpoint.serve(socket, self._connection), self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        socket = self.socket
        if socket is None:  # pragma: no cover - picows calls on_ws_connected first
            return
        kind = frame.msg_type
        if frame.fin and kind is _TEXT:  # the hot path: one whole text message
            try:
                socket._deliver(frame.get_payload_as_utf8_text())
            except UnicodeDecodeError:
                self._fail(transport, socket, WSCloseCode.INVALID_TEXT, BAD_UTF8_REASON)
        elif frame.fin and kind is _BINARY:
            socket._deliver(frame.get_payload_as_bytes())
        elif kind is _TEXT or kind is _BINARY:  # the first fragment of a message
            self._parts = [frame.get_payload_as_bytes()]
            self._parts_type = kind
        elif kind is _CONT:
            self._parts.append(frame.get_payload_as_bytes())
            if frame.fin:
                data, self._parts = b"".join(self._parts), []
                if self._parts_type is _BINARY:
                    socket._deliver(data)
                    return
                try:
                    socket._deliver(data.decode())
                except UnicodeDecodeError:
                    self._fail(transport, socket, WSCloseCode.INVALID_TEXT, BAD_UTF8_REASON)
        elif kind is _CLOSE:
            if not socket._closed:  # the peer closes first: answer with its code, then end
                socket._closed = True
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            socket._peer_gone()
        # PING is answered by picows itself (auto-pong); PONG needs nothing.

    def _fail(
        self, transport: WSTransport, socket: PicowsSocket, code: WSCloseCode, reason: str
    ) -> None:
        socket._closed = True
        transport.send_close(code, reason.encode())
        transport.disconnect()
        socket._peer_gone()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.socket is not None:
            self.socket._disconnected()
        self._host.forget(self)

    def pause_writing(self) -> None:
        if self.socket is not None:
            self.socket._pause()

    def resume_writing(self) -> None:
        if self.socket is not None:
            self.socket._resume()

    def shutdown(self) -> None:
        """uvicorn's server shutdown: close this connection (1012), as its protocols do."""
        socket = self.socket
        if socket is not None and not socket._closed:
            socket._closed = True
            socket._transport.send_close(_code(_CLOSE_SERVICE_RESTART), b"")
            socket._transport.disconnect()


class _Host:
    """What the listeners share: uvicorn's server state (connections, tasks)."""

    def __init__(self, server_state: Any) -> None:
        self._state = server_state

    def serve(self, call: Any, listener: _Listener) -> None:
        self._state.connections.add(listener)
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(call)
        self._state.tasks.add(task)
        task.add_done_callback(lambda t: self._ended(t, listener))

    def _ended(self, task: asyncio.Task[None], listener: _Listener) -> None:
        self._state.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("WebSocket endpoint failed", exc_info=task.exception())
        socket = listener.socket
        if socket is not None and not socket._closed:  # serve() returned without closing
            socket._closed = True
            socket._transport.send_close(_code(CLOSE_NORMAL), b"")
            socket._transport.disconnect()

    def forget(self, listener: _Listener) -> None:
        self._state.connections.discard(listener)


def _raw_connection(data: bytes, params: dict[str, str], peer: str) -> Connection:
    """The ``Connection`` of the upgrade request uvicorn hands over (raw HTTP/1.1)."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    target = urlsplit(head[0].split(" ")[1] if len(head[0].split(" ")) == 3 else "/")
    headers: dict[str, str] = {}
    offered: list[str] = []
    for line in head[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name, value = name.strip().lower(), value.strip()
        if name == "sec-websocket-protocol":
            offered += [p.strip() for p in value.split(",")]
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return Connection(
        path=unquote(target.path),
        params=params,
        query=dict(parse_qsl(target.query)),
        headers={k.lower(): v for k, v in headers.items()},
        subprotocols=tuple(p for p in offered if p),
        client=peer,
    )


def _route(endpoints: tuple[Endpoint, ...], path: str) -> tuple[Endpoint, dict[str, str]] | None:
    for endpoint in endpoints:
        for template in endpoint.routes:
            params = match_route(template, path)
            if params is not None:
                return endpoint, params
    return None


def _request_path(data: bytes) -> str | None:
    """The path of the upgrade request uvicorn hands over (``GET /path?query HTTP/1.1``)."""
    line = data.split(b"\r\n", 1)[0].split(b" ")
    if len(line) != 3:
        return None
    return unquote(urlsplit(line[1].decode("latin-1")).path)


class LeanWebSocketProtocol(asyncio.Protocol):
    """uvicorn's WebSocket protocol class for Parley apps (see the module docstring).

    uvicorn creates one per upgrade request, calls ``connection_made`` and then
    ``data_received`` with the request it already parsed; this hands the transport
    to picows (an endpoint's path) or to uvicorn's websockets-sansio protocol
    (anything else) and is out of the way from then on.
    """

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any]) -> None:
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        endpoints = self._app_state.get(ENDPOINTS_STATE_KEY)
        path = _request_path(data)
        route = _route(endpoints, path) if isinstance(endpoints, tuple) and path else None
        if route is None:
            self._fallback(transport, data)
            return
        endpoint, params = route
        peername = transport.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else ""
        # Admission is asynchronous (authentication, limits): decide it first, from the
        # request uvicorn parsed, then let picows answer the upgrade with the verdict.
        connection = _raw_connection(data, params, peer)
        transport.pause_reading()
        task = asyncio.get_running_loop().create_task(
            self._admit_then_hand_over(transport, data, endpoint, connection)
        )
        self._server_state.tasks.add(task)
        task.add_done_callback(self._server_state.tasks.discard)

    async def _admit_then_hand_over(
        self,
        transport: asyncio.Transport,
        data: bytes,
        endpoint: Endpoint,
        connection: Connection,
    ) -> None:
        verdict = await endpoint.admit(connection)
        if transport.is_closing():  # the peer left while it was being admitted
            return
        host = _Host(self._server_state)

        def listener_factory(request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
            if isinstance(verdict, Refusal):
                body = dict(verdict.body) if verdict.body is not None else {"error": verdict.reason}
                refusal = WSUpgradeResponse.create_error_response(
                    verdict.status,
                    json.dumps(body).encode(),
                    {"Content-Type": "application/json"},
                )
                return WSUpgradeResponseWithListener(refusal, None)
            extra = (
                {"Sec-WebSocket-Protocol": verdict.subprotocol}
                if verdict.subprotocol is not None
                else None
            )
            return WSUpgradeResponseWithListener(
                WSUpgradeResponse.create_101_response(extra),
                _Listener(endpoint, connection, host),
            )

        protocol = WSProtocol(
            None,  # host:port (client side only)
            None,  # path (client side only)
            False,  # server side
            listener_factory,
            _PICOWS_LOG,
            True,  # disconnect on an exception in a callback
            None,  # handshake timeout: uvicorn has read the request already
            False,  # auto-ping: Parley's endpoints time their own peers out
            10.0,
            10.0,
            WSAutoPingStrategy.PING_WHEN_IDLE,
            True,  # auto-pong
            int(self._config.ws_max_size),
            None,  # extra headers
            16 * 1024,  # initial read buffer
        )
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        buffer = protocol.get_buffer(len(data))
        while len(buffer) < len(data):  # pragma: no cover - picows grows on request
            buffer = protocol.get_buffer(len(data))
        buffer[: len(data)] = data
        protocol.buffer_updated(len(data))
        transport.resume_reading()

    def _fallback(self, transport: asyncio.Transport, data: bytes) -> None:
        protocol = ParleyWebSocketProtocol(
            config=self._config, server_state=self._server_state, app_state=self._app_state
        )
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        protocol.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        return  # only before the hand-over, which happens in the first data_received

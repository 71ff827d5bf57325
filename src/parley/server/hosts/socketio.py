"""python-socketio: Parley's endpoints as Socket.IO namespaces.

    import socketio
    from parley.server.hosts.socketio import parley_socketio_server

    sio = parley_socketio_server(voice)          # an AsyncServer with the namespaces
    asgi = socketio.ASGIApp(sio)                  # uvicorn module:asgi

Every endpoint of the switchboard (the platform registry plus ``/v1/realtime``) is a
namespace ``/parley/<name>`` (``/parley/browser``, ``/parley/twilio``,
``/parley/realtime``), and ``/parley`` itself is the browser protocol. One
Socket.IO connection (one ``sid``) is one call. A text frame of the protocol is a
``control`` event, a binary frame an ``audio`` event. For the browser protocol of
docs/protocol.md:

client → server
    ``audio``    one binary argument: PCM16 LE mono at the session's rate (a binary frame)
    ``control``  one argument, a control message as an object or as JSON text:
                 ``{"type": "start", ...}`` first, then ``playback``, ``text``,
                 ``ping``, ``stop``
server → client
    ``audio``    one binary argument: reply audio, PCM16 LE mono
    ``control``  one object: ``ready``, ``transcript``, ``response_*``,
                 ``interrupted``, ``metrics``, ``state``, ``pong``, ``error``
    ``close``    ``{"code": int, "reason": str}`` — the WebSocket close code and
                 reason the other transports would send — just before the server
                 disconnects the client

The call starts with the client's first event (its ``start``): Socket.IO only
finishes connecting after the connect handler returns, so nothing may be sent
before. A connect's ``auth`` may carry the route's parameters
(``{"conversation_id": "..."}`` claims a conversation created over REST) and
``headers`` (e.g. ``{"authorization": "Bearer …"}`` for ``/v1/realtime``). A
malformed message, an event of another name, or an argument of the wrong kind
(text on ``audio``, binary on ``control``) gets a fatal ``error`` control
message, a ``close`` and a disconnect — for that client only. While the app
refuses new calls (draining, full), connecting fails with a ``connect_error``
saying why.

The server must run with ``async_handlers=False`` (``parley_socketio_server`` does):
otherwise python-socketio runs every event in a task of its own and audio frames
may be handled out of order; a namespace on such a server refuses connections.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
import socketio  # type: ignore[import-untyped]

from parley.errors import RemoteProtocolError
from parley.protocols.browser import ErrorMessage
from parley.server.hosts.inbox import FrameInbox
from parley.server.hosts.websockets import HasSwitchboard
from parley.server.switchboard import Endpoint
from parley.transports.platform import Connection, Refusal
from parley.transports.socket import CLOSE_NORMAL, close_code_for, close_reason

__all__ = [
    "DEFAULT_NAMESPACE",
    "ParleyNamespace",
    "SocketIOSocket",
    "parley_socketio_server",
]

DEFAULT_NAMESPACE = "/parley"

_AUDIO = "audio"
_CONTROL = "control"
_CLOSE = "close"


class SocketIOSocket:
    """One ``sid`` of a :class:`ParleyNamespace` as a ``WireSocket``."""

    __slots__ = ("_closed", "_namespace", "_peer_gone", "_violation", "inbox", "sid")

    def __init__(self, namespace: ParleyNamespace, sid: str) -> None:
        self._namespace = namespace
        self.sid = sid
        self.inbox = FrameInbox()
        self._closed = False
        self._peer_gone = False
        self._violation: RemoteProtocolError | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    async def push(self, event: str, args: tuple[Any, ...]) -> None:
        """One client event, from the namespace's dispatch."""
        if event == _AUDIO and len(args) == 1 and type(args[0]) is bytes:  # the hot path
            await self.inbox.put(args[0])
        elif event == _CONTROL and len(args) == 1 and not isinstance(args[0], bytes):
            data = args[0]
            # Any JSON value: the browser protocol's decoder says what is wrong with it.
            await self.inbox.put(data if isinstance(data, str) else json.dumps(data))
        elif event in (_AUDIO, _CONTROL):
            self.violate(
                RemoteProtocolError(
                    f"{event!r} takes one {'binary' if event == _AUDIO else 'JSON'} argument",
                    code="invalid_message",
                )
            )
        else:
            self.violate(
                RemoteProtocolError(
                    f"unknown event {event!r} (expected 'audio' or 'control')",
                    code="unknown_event",
                )
            )

    def violate(self, error: RemoteProtocolError) -> None:
        """A message the frame decoder never sees was bad: end the call with ``error``
        once the frames queued before it are read."""
        if self._violation is None and not self.inbox.ended:
            self._violation = error
            self.inbox.end()

    def peer_closed(self) -> None:
        self._peer_gone = True
        self.inbox.end()

    async def receive(self) -> str | bytes | None:
        if self._closed:
            return None
        frame = await self.inbox.get()
        if frame is None:
            error = self._violation
            if error is not None and not self._peer_gone:
                fatal = ErrorMessage(code=error.code, message=error.message, fatal=True)
                await self.send_text(msgspec.json.encode(fatal).decode())
                await self.close(close_code_for(error), f"{error.code}: {error.message}")
            self._closed = True
        return frame

    async def send_text(self, data: str) -> None:
        if not self._closed:
            # Control messages are few (not per audio frame): decoding them again to
            # send Socket.IO objects costs little.
            await self._namespace.emit(_CONTROL, json.loads(data), to=self.sid)

    async def send_bytes(self, data: bytes) -> None:
        if not self._closed:
            await self._namespace.emit(_AUDIO, data, to=self.sid)

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        self.inbox.discard()
        if not self._peer_gone:
            await self._namespace.emit(
                _CLOSE, {"code": code, "reason": close_reason(reason)}, to=self.sid
            )
            await self._namespace.disconnect(self.sid)


class _Call:
    __slots__ = ("connection", "task", "wire")

    def __init__(self, wire: SocketIOSocket, connection: Connection) -> None:
        self.wire = wire
        self.connection = connection
        self.task: asyncio.Task[None] | None = None


def _connection(endpoint: Endpoint, environ: Any, auth: Any) -> Connection:
    params: dict[str, str] = {}
    headers: dict[str, str] = {}
    if isinstance(auth, dict):
        params = {k: str(v) for k, v in auth.items() if k != "headers" and v is not None}
        extra = auth.get("headers")
        if isinstance(extra, dict):
            headers = {str(k).lower(): str(v) for k, v in extra.items()}
    scope = environ.get("asgi.scope", {}) if isinstance(environ, dict) else {}
    client = scope.get("client") if isinstance(scope, dict) else None
    return Connection(
        path=endpoint.routes[0],
        params=params,
        headers=headers,
        client=f"{client[0]}:{client[1]}" if client else "",
    )


class ParleyNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """Serves one Parley call of ``endpoint`` per connected ``sid`` (events above)."""

    def __init__(self, endpoint: Endpoint, namespace: str = DEFAULT_NAMESPACE) -> None:
        super().__init__(namespace)
        self.endpoint = endpoint
        self._calls: dict[str, _Call] = {}
        # Calls outlive their sid's disconnect until they finish: keep them referenced.
        self._tasks: set[asyncio.Task[None]] = set()

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event == "connect":
            return await self._connect(*args)
        if event == "disconnect":
            self._disconnect(args[0])
            return None
        call = self._calls.get(args[0])
        if call is None:
            return None
        if call.task is None:
            call.task = asyncio.create_task(self._serve(call))
            self._tasks.add(call.task)
            call.task.add_done_callback(self._tasks.discard)
        await call.wire.push(event, args[1:])
        return None

    async def _connect(self, sid: str, environ: Any = None, auth: Any = None) -> None:
        if self.server.async_handlers:
            raise socketio.exceptions.ConnectionRefusedError(
                "the Socket.IO server must run with async_handlers=False"
            )
        refusal = self.endpoint.refusal()
        if refusal is not None:
            raise socketio.exceptions.ConnectionRefusedError(refusal)
        connection = _connection(self.endpoint, environ, auth)
        verdict = await self.endpoint.admit(connection)
        if isinstance(verdict, Refusal):
            raise socketio.exceptions.ConnectionRefusedError(verdict.reason)
        self._calls[sid] = _Call(SocketIOSocket(self, sid), connection)

    def _disconnect(self, sid: str) -> None:
        call = self._calls.pop(sid, None)
        if call is not None:
            call.wire.peer_closed()  # the call, if it started, ends on its own

    async def _serve(self, call: _Call) -> None:
        try:
            await self.endpoint.serve(call.wire, call.connection)
        finally:
            await call.wire.close()

    async def wait_calls(self) -> None:
        """Wait until every call this namespace started has finished."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))


def parley_socketio_server(
    app: HasSwitchboard, namespace: str = DEFAULT_NAMESPACE, **options: Any
) -> Any:
    """A ``socketio.AsyncServer`` (ASGI mode, ``async_handlers=False``) serving every
    endpoint of ``app`` at ``{namespace}/<name>``, and the browser protocol at
    ``namespace`` itself; ``options`` go to the server (e.g. ``cors_allowed_origins``)."""
    options.setdefault("async_mode", "asgi")
    options["async_handlers"] = False
    server = socketio.AsyncServer(**options)
    for endpoint in app.switchboard.endpoints():
        server.register_namespace(ParleyNamespace(endpoint, f"{namespace}/{endpoint.name}"))
        if endpoint.name == "browser":
            server.register_namespace(ParleyNamespace(endpoint, namespace))
    return server

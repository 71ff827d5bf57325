"""python-socketio: Parley's browser protocol as a Socket.IO namespace.

    import socketio
    from parley.transports.socketio import parley_socketio_server

    sio = parley_socketio_server(voice)          # an AsyncServer with the namespace
    asgi = socketio.ASGIApp(sio)                  # uvicorn module:asgi

One Socket.IO connection (one ``sid``) on the namespace (``/parley`` by default) is
one conversation. The events carry the browser protocol of docs/protocol.md:

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
before. A connect's ``auth`` may carry ``{"conversation_id": "..."}`` to claim a
conversation created over REST. A malformed message, an event of another name, or
an argument of the wrong kind (text on ``audio``, binary on ``control``) gets a
fatal ``error`` control message, a ``close`` and a disconnect — for that client
only. While the app refuses new calls (draining, full), connecting fails with a
``connect_error`` saying why.

The server must run with ``async_handlers=False`` (``parley_socketio_server`` does):
otherwise python-socketio runs every event in a task of its own and audio frames
may be handled out of order; a namespace on such a server refuses connections.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import msgspec
import socketio  # type: ignore[import-untyped]

from parley.errors import RemoteProtocolError
from parley.protocols.browser import ErrorMessage
from parley.transports.inbox import FrameInbox
from parley.transports.serve import serve_call
from parley.transports.socket import CLOSE_NORMAL, close_code_for, close_reason

if TYPE_CHECKING:
    from parley.app import Parley

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
    __slots__ = ("conversation_id", "task", "wire")

    def __init__(self, wire: SocketIOSocket, conversation_id: str | None) -> None:
        self.wire = wire
        self.conversation_id = conversation_id
        self.task: asyncio.Task[None] | None = None


class ParleyNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """Serves one Parley conversation per connected ``sid`` (event names above)."""

    def __init__(self, parley: Parley, namespace: str = DEFAULT_NAMESPACE) -> None:
        super().__init__(namespace)
        self.parley = parley
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
        refusal = self.parley.refusal()
        if refusal is not None:
            raise socketio.exceptions.ConnectionRefusedError(refusal)
        conversation_id = auth.get("conversation_id") if isinstance(auth, dict) else None
        self._calls[sid] = _Call(
            SocketIOSocket(self, sid), str(conversation_id) if conversation_id else None
        )

    def _disconnect(self, sid: str) -> None:
        call = self._calls.pop(sid, None)
        if call is not None:
            call.wire.peer_closed()  # the call, if it started, ends on its own

    async def _serve(self, call: _Call) -> None:
        try:
            await serve_call(self.parley, call.wire, "browser", call.conversation_id)
        finally:
            await call.wire.close()

    async def wait_calls(self) -> None:
        """Wait until every call this namespace started has finished."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))


def parley_socketio_server(app: Parley, namespace: str = DEFAULT_NAMESPACE, **options: Any) -> Any:
    """A ``socketio.AsyncServer`` (ASGI mode, ``async_handlers=False``) serving ``app``
    on ``namespace``; ``options`` go to the server (e.g. ``cors_allowed_origins``)."""
    options.setdefault("async_mode", "asgi")
    options["async_handlers"] = False
    server = socketio.AsyncServer(**options)
    server.register_namespace(ParleyNamespace(app, namespace))
    return server

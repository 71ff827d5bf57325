"""Every WebSocket host over a real socket on 127.0.0.1: one contract, written once.

The hosts mount the same switchboard endpoints (``Switchboard.endpoints``):

- ``fastapi``: the default ASGI app (``app.asgi``) under uvicorn, websockets-sansio;
- ``websockets``: the ``websockets`` library's server (``server/hosts/websockets.py``);
- ``django``: Channels' ``URLRouter`` of ``ParleyConsumer`` routes under uvicorn;
- ``socketio``: ``socketio.ASGIApp`` under uvicorn, driven by python-socketio's
  ``AsyncClient`` over a WebSocket (one namespace per endpoint);
- ``picows``: the lean host, ``app.asgi`` under uvicorn with picows framing the
  endpoints' sockets (``server/hosts/lean.py``).

The ``host`` fixture starts one of them for a loopback app and yields a
:class:`Host`: how to open a call on an endpoint and how the host refuses one. A
:class:`Call` is the client's side of it, whatever carries the frames: send a text
or binary frame, read the next one, read the close. Each contract test runs against
every host; what only one host does is a plainly named test of that host at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final, Protocol

import pytest
import socketio  # type: ignore[import-untyped]
import websockets
from fastapi import WebSocket

from parley.app import Parley
from parley.config import EngineKind, ParleySettings
from parley.protocols.browser import (
    AudioFrame,
    ErrorMessage,
    ReadyMessage,
    ServerEvent,
    StartMessage,
    encode_client_message,
    parse_server_frame,
)
from parley.server.hosts.lean import PicowsSocket
from parley.server.hosts.socketio import DEFAULT_NAMESPACE, ParleyNamespace, parley_socketio_server
from parley.server.hosts.websockets import route_of, serve_websockets
from parley.server.run import LEAN_WS
from parley.transports.socket import CLOSE_TRY_AGAIN
from servers import TwilioPhone, serve_app, serve_asgi

BROWSER: Final = "browser"
TWILIO: Final = "twilio"
START: Final = encode_client_message(StartMessage())
WAIT_S: Final = 5.0


def loopback_app(**settings: Any) -> Parley:
    return Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK, **settings))


# -- the client's side of a call ------------------------------------------------------------


class Call(Protocol):
    """The client's side of one call (what :class:`~servers.TwilioPhone` drives too)."""

    async def send(self, frame: str | bytes) -> None:
        """A text or a binary frame of the endpoint's protocol."""

    async def recv(self) -> str | bytes:
        """The server's next frame, within ``WAIT_S``."""

    async def closed(self) -> tuple[int, str]:
        """The server's frames up to its close (skipped); the close's code and reason."""


class WebSocketCall:
    """A call over a plain WebSocket (every host but Socket.IO)."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws

    async def send(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def recv(self) -> str | bytes:
        return await asyncio.wait_for(self.ws.recv(), WAIT_S)

    async def closed(self) -> tuple[int, str]:
        with pytest.raises(websockets.ConnectionClosed) as info:
            while True:
                await asyncio.wait_for(self.ws.recv(), WAIT_S)
        assert info.value.rcvd is not None
        return info.value.rcvd.code, info.value.rcvd.reason


class SocketIOCall:
    """A Socket.IO client of one namespace: a binary frame is an ``audio`` event, a
    text frame a ``control`` event (an object the server emits comes back as its JSON
    text), the server's ``close`` event its close. Every event lands in one queue."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        for name in ("audio", "control", "close", "disconnect", "connect_error"):
            self.sio.on(name, self._recorder(name), namespace=namespace)

    def _recorder(self, name: str) -> Any:
        async def record(*args: Any) -> None:
            await self.events.put((name, args[0] if args else None))

        return record

    async def connect(self, url: str, auth: dict[str, str] | None = None) -> SocketIOCall:
        await self.sio.connect(
            url, namespaces=[self.namespace], transports=["websocket"], auth=auth, wait_timeout=5
        )
        return self

    async def emit(self, event: str, data: Any) -> None:
        await self.sio.emit(event, data, namespace=self.namespace)

    async def next(self) -> tuple[str, Any]:
        return await asyncio.wait_for(self.events.get(), WAIT_S)

    async def send(self, frame: str | bytes) -> None:
        await self.emit("audio" if isinstance(frame, bytes) else "control", frame)

    async def recv(self) -> str | bytes:
        name, data = await self.next()
        if name == "audio":
            assert isinstance(data, bytes), data
            return data
        assert name == "control", (name, data)
        return json.dumps(data)

    async def closed(self) -> tuple[int, str]:
        """Events up to the server's ``close``, which its disconnect follows."""
        while (event := await self.next())[0] != "close":
            pass
        assert (await self.next())[0] == "disconnect"
        close = event[1]
        assert set(close) == {"code", "reason"}, close
        return close["code"], close["reason"]


# -- the hosts ------------------------------------------------------------------------------


class Host(Protocol):
    name: str
    app: Parley
    #: False on Socket.IO: a call begins with the client's first event (nothing may be
    #: emitted before the connect handler returned), so even a refusal waits for it.
    speaks_first: bool

    def call(
        self, endpoint: str, conversation_id: str | None = None
    ) -> AbstractAsyncContextManager[Call]:
        """A call on ``endpoint`` (``BROWSER``, ``TWILIO``), claiming ``conversation_id``."""

    async def refusal(self, endpoint: str) -> str:
        """Why a new call on ``endpoint`` is refused, told the host's way."""


@dataclass(frozen=True)
class WebSocketHost:
    name: str
    app: Parley
    port: int
    speaks_first: bool = True

    def url(self, endpoint: str, conversation_id: str | None = None) -> str:
        path = {BROWSER: "/ws/audio", TWILIO: "/twilio/stream"}[endpoint]
        if conversation_id is not None:
            assert endpoint == BROWSER
            path += f"/{conversation_id}"
        return f"ws://127.0.0.1:{self.port}{path}"

    @contextlib.asynccontextmanager
    async def call(self, endpoint: str, conversation_id: str | None = None) -> AsyncIterator[Call]:
        async with websockets.connect(self.url(endpoint, conversation_id)) as ws:
            yield WebSocketCall(ws)

    async def refusal(self, endpoint: str) -> str:
        """The socket is accepted, then closed with 1013 (try again later) and the reason."""
        async with self.call(endpoint) as call:
            code, reason = await call.closed()
        assert code == CLOSE_TRY_AGAIN
        return reason


def namespace_of(endpoint: str) -> str:
    """The default namespace is the browser protocol (``/parley/browser`` is too)."""
    return DEFAULT_NAMESPACE if endpoint == BROWSER else f"{DEFAULT_NAMESPACE}/{endpoint}"


@dataclass(frozen=True)
class SocketIOHost:
    name: str
    app: Parley
    port: int
    speaks_first: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextlib.asynccontextmanager
    async def call(
        self, endpoint: str, conversation_id: str | None = None
    ) -> AsyncIterator[SocketIOCall]:
        auth = None if conversation_id is None else {"conversation_id": conversation_id}
        client = await SocketIOCall(namespace_of(endpoint)).connect(self.url, auth)
        try:
            yield client
        finally:
            await client.sio.disconnect()

    async def refusal(self, endpoint: str) -> str:
        """Connecting fails with a ``connect_error`` whose message is the reason."""
        client = SocketIOCall(namespace_of(endpoint))
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(self.url)
        name, data = await client.next()
        assert name == "connect_error" and set(data) == {"message"}, (name, data)
        return str(data["message"])


@contextlib.asynccontextmanager
async def fastapi_host(app: Parley) -> AsyncIterator[WebSocketHost]:
    async with serve_app(app) as server:
        yield WebSocketHost("fastapi", app, server.port)


@contextlib.asynccontextmanager
async def websockets_host(app: Parley) -> AsyncIterator[WebSocketHost]:
    server = await serve_websockets(app, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    async with server:
        yield WebSocketHost("websockets", app, port)


def _configure_django() -> None:
    """Configure Django once per process, with nothing installed: no model, no
    database, no channel layer — only what Channels' routing needs."""
    import django  # type: ignore[import-untyped]
    from django.conf import settings  # type: ignore[import-untyped]

    if not settings.configured:
        settings.configure(INSTALLED_APPS=[], DATABASES={}, USE_TZ=True)
        django.setup()


@contextlib.asynccontextmanager
async def django_host(app: Parley) -> AsyncIterator[WebSocketHost]:
    _configure_django()
    from channels.routing import ProtocolTypeRouter, URLRouter  # type: ignore[import-untyped]

    from parley.server.hosts.django import parley_urlpatterns

    asgi = ProtocolTypeRouter({"websocket": URLRouter(parley_urlpatterns(app))})
    async with serve_asgi(asgi) as port:
        yield WebSocketHost("django", app, port)


@contextlib.asynccontextmanager
async def socketio_host(app: Parley) -> AsyncIterator[SocketIOHost]:
    sio = parley_socketio_server(app)
    async with serve_asgi(socketio.ASGIApp(sio)) as port:
        yield SocketIOHost("socketio", app, port)
    for namespace in sio.namespace_handlers.values():  # no call outlives the server
        assert isinstance(namespace, ParleyNamespace)
        await asyncio.wait_for(namespace.wait_calls(), WAIT_S)


@contextlib.asynccontextmanager
async def picows_host(app: Parley) -> AsyncIterator[WebSocketHost]:
    async with serve_asgi(app.asgi, lifespan="on", ws=LEAN_WS) as port:
        yield WebSocketHost("picows", app, port)


HOSTS: Final[dict[str, Callable[[Parley], AbstractAsyncContextManager[Host]]]] = {
    "fastapi": fastapi_host,
    "websockets": websockets_host,
    "django": django_host,
    "socketio": socketio_host,
    "picows": picows_host,
}


@pytest.fixture(params=list(HOSTS))
async def host(request: pytest.FixtureRequest) -> AsyncIterator[Host]:
    async with HOSTS[request.param](loopback_app()) as running:
        yield running


# -- the browser protocol over any call ------------------------------------------------------


async def message(call: Call) -> ServerEvent:
    return parse_server_frame(await call.recv())


async def start(call: Call) -> ReadyMessage:
    await call.send(START)
    ready = await message(call)
    assert isinstance(ready, ReadyMessage)
    return ready


async def echo(call: Call, pcm: bytes) -> bytes:
    await call.send(pcm)
    back = b""
    while len(back) < len(pcm):
        msg = await message(call)
        assert isinstance(msg, AudioFrame)
        back += msg.pcm
    return back


async def until(condition: Callable[[], bool]) -> None:
    """Wait, bounded, for state no event announces (the switchboard's socket count)."""
    async with asyncio.timeout(WAIT_S):
        while not condition():  # noqa: ASYNC110 - a counter, no event announces it
            await asyncio.sleep(0.005)


# -- the contract ------------------------------------------------------------------------


async def test_browser_session_streams_audio_back(host: Host) -> None:
    app = host.app
    async with host.call(BROWSER) as call:
        ready = await start(call)
        assert ready.format.sample_rate == 24000
        record = app.calls.get(ready.session_id)
        assert record is not None and record.kind == "browser"
        assert record.status == "live"
        pcm = bytes(range(256)) * 8
        for _ in range(3):
            assert await echo(call, pcm) == pcm  # loopback, pcm16 24 kHz: bit-exact
        await call.send(json.dumps({"type": "ping", "id": 3}))
        assert json.loads(await call.recv()) == {"type": "pong", "id": 3}
    await asyncio.wait_for(record.finished.wait(), WAIT_S)
    assert record.status == "ended"
    await until(lambda: app.calls.connections == 0)


async def test_stop_ends_the_call_with_a_normal_close(host: Host) -> None:
    async with host.call(BROWSER) as call:
        await start(call)
        await call.send(json.dumps({"type": "stop"}))
        assert await call.closed() == (1000, "")


async def test_a_conversation_created_ahead_is_claimed_by_id(host: Host) -> None:
    app = host.app
    record = app.new_record(user_id="u-7")
    async with host.call(BROWSER, record.id) as call:
        ready = await start(call)
        assert ready.session_id == record.id and record.status == "live"
        assert await echo(call, b"\x01\x02" * 480) == b"\x01\x02" * 480
    async with host.call(BROWSER, "conv_nope") as call:
        if not host.speaks_first:
            await call.send(START)
        err = await message(call)
        assert isinstance(err, ErrorMessage) and err.code == "unknown_conversation"
        assert (await call.closed())[0] == 1008


async def test_twilio_media_stream_is_echoed_with_marks(host: Host) -> None:
    async with host.call(TWILIO) as call:
        phone = TwilioPhone(call)
        await phone.start()
        for i in range(6):
            await phone.send_media(b"\x10" * 160)
            assert await phone.receive() == ("media", b"\x10" * 160)
            if i == 4:  # one mark per 100 ms of audio
                assert (await phone.receive())[0] == "mark"
        (record,) = host.app.calls.active()
        assert record.kind == "twilio"
        await phone.stop()
        assert (await call.closed())[0] == 1000
    await asyncio.wait_for(record.finished.wait(), WAIT_S)


@pytest.mark.parametrize(
    ("frame", "code", "close_code"),
    [
        pytest.param("{not json", "bad_json", 1007, id="bad_json"),
        pytest.param("[1, 2]", "not_an_object", 1007, id="not_an_object"),
        pytest.param('{"type":"dance"}', "unknown_type", 1008, id="unknown_type"),
        pytest.param('{"type":"start"}', "duplicate_start", 1008, id="duplicate_start"),
        pytest.param(b"\x00\x01\x02", "odd_audio_length", 1007, id="odd_audio_length"),
        pytest.param(b"\x00" * 70_000, "frame_too_large", 1009, id="frame_too_large"),
    ],
)
async def test_malformed_frame_closes_only_that_call(
    host: Host, frame: str | bytes, code: str, close_code: int
) -> None:
    async with host.call(BROWSER) as good, host.call(BROWSER) as bad:
        await start(good)
        await start(bad)
        await bad.send(frame)
        err = await message(bad)
        assert isinstance(err, ErrorMessage) and err.code == code and err.fatal
        closed_code, reason = await bad.closed()
        assert closed_code == close_code and reason.startswith(code)
        for _ in range(3):  # the other call goes on
            assert await echo(good, b"\x01\x00" * 240) == b"\x01\x00" * 240


async def test_malformed_twilio_frame_closes_with_a_reason(host: Host) -> None:
    async with host.call(TWILIO) as call:
        await TwilioPhone(call).start()
        await call.send("[1, 2]")
        code, reason = await call.closed()
        assert code == 1007 and reason.startswith("not_an_object")


async def test_ending_a_call_from_the_server_closes_the_socket(host: Host) -> None:
    app = host.app
    async with host.call(BROWSER) as call:
        ready = await start(call)
        assert await app.end_call(ready.session_id)  # what DELETE /conversations/{id} does
        assert (await call.closed())[0] == 1000
    stored = await app.session(ready.session_id)  # ended calls live in the session store
    assert stored is not None and stored.record.status == "ended"
    assert stored.record.end_reason == "requested"


async def test_a_draining_app_refuses_new_calls(host: Host) -> None:
    app = host.app
    app.draining = True
    for endpoint in (BROWSER, TWILIO):
        assert await host.refusal(endpoint) == "server is shutting down", endpoint
    assert app.calls.records() == []
    await until(lambda: app.calls.connections == 0)


# -- the websockets host -------------------------------------------------------------------


def test_websockets_host_routes_come_from_the_platform_registry() -> None:
    board = loopback_app().switchboard

    def route(path: str) -> tuple[str, dict[str, str]] | None:
        found = route_of(board, path)
        return None if found is None else (found[0].name, found[1])

    assert route("/ws/audio") == ("browser", {})
    assert route("/ws/audio?x=1") == ("browser", {})
    assert route("/ws/audio/conv_1") == ("browser", {"conversation_id": "conv_1"})
    assert route("/twilio/stream") == ("twilio", {})
    assert route("/v1/realtime") == ("realtime", {})
    assert route("/realtime/conv_1") == ("realtime", {"conversation_id": "conv_1"})
    assert route("/ws/audio/a/b") is None
    assert route("/") is None


async def test_websockets_host_refuses_an_unknown_path_before_the_upgrade() -> None:
    async with websockets_host(loopback_app()) as host:
        with pytest.raises(websockets.InvalidStatus) as info:
            async with websockets.connect(f"ws://127.0.0.1:{host.port}/elsewhere"):
                pass
        assert info.value.response.status_code == 404


# -- the Socket.IO host --------------------------------------------------------------------


async def test_socketio_control_messages_may_be_objects() -> None:
    async with socketio_host(loopback_app()) as host:
        client = await SocketIOCall(f"{DEFAULT_NAMESPACE}/browser").connect(host.url)
        try:
            await client.emit("control", {"type": "start"})
            assert isinstance(await message(client), ReadyMessage)
            await client.emit("control", {"type": "ping", "id": 3})
            assert await client.next() == ("control", {"type": "pong", "id": 3})
            await client.emit("control", {"type": "stop"})
            assert await client.closed() == (1000, "")
        finally:
            await client.sio.disconnect()


@pytest.mark.parametrize(
    ("event", "data", "code", "close_code"),
    [
        # Text and binary frames (JSON text on ``control``, bytes on ``audio``) are the
        # contract's malformed frames above; these are Socket.IO's own shapes.
        ("control", [1, 2], "not_an_object", 1007),
        ("control", {"type": "dance"}, "unknown_type", 1008),
        ("audio", "not audio", "invalid_message", 1007),
        ("control", b"\x00\x00", "invalid_message", 1007),
        ("dance", {"type": "start"}, "unknown_event", 1008),
    ],
)
async def test_socketio_malformed_event_closes_only_that_call(
    event: str, data: Any, code: str, close_code: int
) -> None:
    async with (
        socketio_host(loopback_app()) as host,
        host.call(BROWSER) as good,
        host.call(BROWSER) as bad,
    ):
        await start(good)
        await start(bad)
        await bad.emit(event, data)
        err = await message(bad)
        assert isinstance(err, ErrorMessage) and err.code == code and err.fatal
        closed_code, reason = await bad.closed()
        assert closed_code == close_code and reason.startswith(code)
        for _ in range(3):  # the other call goes on
            assert await echo(good, b"\x01\x00" * 240) == b"\x01\x00" * 240


async def test_socketio_refuses_a_server_with_async_handlers() -> None:
    app = loopback_app()
    sio = socketio.AsyncServer(async_mode="asgi")  # async_handlers=True: frames may reorder
    (browser,) = (e for e in app.switchboard.endpoints() if e.name == BROWSER)
    sio.register_namespace(ParleyNamespace(browser))
    async with serve_asgi(socketio.ASGIApp(sio)) as port:
        client = SocketIOCall(DEFAULT_NAMESPACE)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(f"http://127.0.0.1:{port}")
        name, data = await client.next()
        assert name == "connect_error" and "async_handlers=False" in data["message"]


# -- the lean (picows) host ------------------------------------------------------------------


async def test_picows_serves_a_twilio_call_with_the_default_mark_cadence() -> None:
    app = loopback_app()
    async with picows_host(app) as host, websockets.connect(host.url(TWILIO)) as ws:
        phone = TwilioPhone(ws)
        await phone.start()
        for i in range(6):
            await phone.send_media(bytes([i + 1]) * 160)
            assert await phone.receive() == ("media", bytes([i + 1]) * 160)
            if i == 4:
                kind, _ = await phone.receive()
                assert kind == "mark"
        (record,) = app.calls.active()
        assert record.stream is not None
        assert isinstance(record.stream.socket, PicowsSocket)  # type: ignore[attr-defined]
        await phone.stop()
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), WAIT_S)  # the very next frame is the close
        assert info.value.rcvd is not None and info.value.rcvd.code == 1000
        await asyncio.wait_for(record.finished.wait(), WAIT_S)


async def test_picows_endpoint_admission_answers_the_upgrade() -> None:
    async with picows_host(loopback_app(realtime_server_api_key="sk-right")) as host:
        with pytest.raises(websockets.InvalidStatus) as info:
            async with websockets.connect(f"ws://127.0.0.1:{host.port}/v1/realtime"):
                pass
        assert info.value.response.status_code == 401
        assert b"error" in info.value.response.body


async def test_picows_host_sends_other_websocket_routes_to_the_asgi_app() -> None:
    app = loopback_app()
    api = app.asgi

    async def custom(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello from FastAPI")
        await websocket.close()

    api.add_api_websocket_route("/custom", custom)
    api.router.routes.insert(0, api.router.routes.pop())  # before the talk page's "/" mount

    async with picows_host(app) as host:
        async with websockets.connect(f"ws://127.0.0.1:{host.port}/custom") as ws:
            assert await ws.recv() == "hello from FastAPI"
        with pytest.raises(websockets.InvalidStatus) as info:
            async with websockets.connect(f"ws://127.0.0.1:{host.port}/nowhere"):
                pass
        assert info.value.response.status_code == 403  # Starlette's answer, as before

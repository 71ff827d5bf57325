"""The python-socketio adapter over a real socket: ``socketio.ASGIApp`` under uvicorn
on 127.0.0.1, driven by python-socketio's ``AsyncClient`` over a WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio  # type: ignore[import-untyped]

from parley.app import Parley
from parley.config import EngineKind, ParleySettings
from parley.protocols.browser import (
    AudioFrame,
    ErrorMessage,
    ReadyMessage,
    ServerEvent,
    parse_server_frame,
)
from parley.server.hosts.socketio import DEFAULT_NAMESPACE, ParleyNamespace, parley_socketio_server
from servers import serve_asgi

NS = DEFAULT_NAMESPACE


class Client:
    """A Socket.IO client of the namespace; every server event lands in one queue."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        for name in ("audio", "control", "close"):
            self.sio.on(name, self._recorder(name), namespace=NS)
        self.sio.on("disconnect", self._recorder("disconnect"), namespace=NS)
        self.sio.on("connect_error", self._recorder("connect_error"), namespace=NS)

    def _recorder(self, name: str) -> Any:
        async def record(*args: Any) -> None:
            await self.events.put((name, args[0] if args else None))

        return record

    async def connect(self, url: str, auth: dict[str, str] | None = None) -> Client:
        await self.sio.connect(
            url, namespaces=[NS], transports=["websocket"], auth=auth, wait_timeout=5
        )
        return self

    async def emit(self, event: str, data: Any) -> None:
        await self.sio.emit(event, data, namespace=NS)

    async def next(self) -> tuple[str, Any]:
        return await asyncio.wait_for(self.events.get(), 5)

    async def message(self) -> ServerEvent:
        """The next ``audio``/``control`` event, parsed as the browser protocol's frame."""
        name, data = await self.next()
        assert name in ("audio", "control"), (name, data)
        return parse_server_frame(data if name == "audio" else json.dumps(data))

    async def start(self) -> ReadyMessage:
        await self.emit("control", {"type": "start"})
        ready = await self.message()
        assert isinstance(ready, ReadyMessage)
        return ready

    async def echo(self, pcm: bytes) -> bytes:
        await self.emit("audio", pcm)
        back = b""
        while len(back) < len(pcm):
            msg = await self.message()
            assert isinstance(msg, AudioFrame)
            back += msg.pcm
        return back

    async def closed(self) -> dict[str, Any]:
        """Events up to the server's ``close`` (returned), then its disconnect."""
        while (event := await self.next())[0] != "close":
            pass
        assert (await self.next())[0] == "disconnect"
        return dict(event[1])


@pytest.fixture
async def served() -> AsyncIterator[tuple[Parley, str]]:
    app = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK))
    sio = parley_socketio_server(app)
    async with serve_asgi(socketio.ASGIApp(sio)) as port:
        yield app, f"http://127.0.0.1:{port}"
    ns = sio.namespace_handlers[NS]
    assert isinstance(ns, ParleyNamespace)
    await asyncio.wait_for(ns.wait_calls(), 5)


@contextlib.asynccontextmanager
async def connected(url: str, auth: dict[str, str] | None = None) -> AsyncIterator[Client]:
    client = await Client().connect(url, auth)
    try:
        yield client
    finally:
        await client.sio.disconnect()


async def test_browser_session_streams_audio_back(served: tuple[Parley, str]) -> None:
    app, url = served
    async with connected(url) as client:
        ready = await client.start()
        assert ready.format.sample_rate == 24000
        record = app.calls.get(ready.session_id)
        assert record is not None and record.kind == "browser"
        status = record.status
        assert status == "live"
        pcm = bytes(range(256)) * 8
        for _ in range(3):
            assert await client.echo(pcm) == pcm  # loopback, pcm16 24 kHz: bit-exact
        await client.emit("control", json.dumps({"type": "ping", "id": 3}))  # JSON text too
        assert (await client.next()) == ("control", {"type": "pong", "id": 3})
    for _ in range(100):
        if record.status == "ended":
            break
        await asyncio.sleep(0.01)
    assert record.status == "ended"
    assert app.calls.connections == 0


async def test_stop_ends_the_call_with_a_normal_close(served: tuple[Parley, str]) -> None:
    _, url = served
    async with connected(url) as client:
        await client.start()
        await client.emit("control", {"type": "stop"})
        assert await client.closed() == {"code": 1000, "reason": ""}


async def test_a_conversation_created_ahead_is_claimed_by_id(
    served: tuple[Parley, str],
) -> None:
    app, url = served
    record = app.new_record()
    async with connected(url, {"conversation_id": record.id}) as client:
        ready = await client.start()
        assert ready.session_id == record.id and record.status == "live"
        assert await client.echo(b"\x01\x02" * 480) == b"\x01\x02" * 480
    async with connected(url, {"conversation_id": "conv_nope"}) as client:
        await client.emit("control", {"type": "start"})
        err = await client.message()
        assert isinstance(err, ErrorMessage) and err.code == "unknown_conversation"
        assert (await client.closed())["code"] == 1008


@pytest.mark.parametrize(
    ("event", "data", "code", "close_code"),
    [
        ("control", "{not json", "bad_json", 1007),
        ("control", [1, 2], "not_an_object", 1007),
        ("control", {"type": "dance"}, "unknown_type", 1008),
        ("audio", b"\x00\x01\x02", "odd_audio_length", 1007),
        ("audio", "not audio", "invalid_message", 1007),
        ("control", b"\x00\x00", "invalid_message", 1007),
        ("dance", {"type": "start"}, "unknown_event", 1008),
    ],
)
async def test_malformed_event_closes_only_that_call(
    served: tuple[Parley, str], event: str, data: Any, code: str, close_code: int
) -> None:
    _, url = served
    async with connected(url) as good, connected(url) as bad:
        await good.start()
        await bad.start()
        await bad.emit(event, data)
        err = await bad.message()
        assert isinstance(err, ErrorMessage) and err.code == code and err.fatal
        close = await bad.closed()
        assert close["code"] == close_code and close["reason"].startswith(code)
        for _ in range(3):  # the other call goes on
            assert await good.echo(b"\x01\x00" * 240) == b"\x01\x00" * 240


async def test_a_draining_app_refuses_to_connect(served: tuple[Parley, str]) -> None:
    app, url = served
    app.draining = True
    client = Client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(url)
    assert await client.next() == ("connect_error", {"message": "server is shutting down"})


async def test_a_server_with_async_handlers_is_refused() -> None:
    app = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK))
    sio = socketio.AsyncServer(async_mode="asgi")  # async_handlers=True: frames may reorder
    sio.register_namespace(ParleyNamespace(app))
    async with serve_asgi(socketio.ASGIApp(sio)) as port:
        client = Client()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(f"http://127.0.0.1:{port}")
        name, data = await client.next()
        assert name == "connect_error" and "async_handlers=False" in data["message"]


async def test_ending_a_call_from_the_server_closes_the_socket(
    served: tuple[Parley, str],
) -> None:
    app, url = served
    async with connected(url) as client:
        ready = await client.start()
        assert await app.end_call(ready.session_id)  # what DELETE /conversations/{id} does
        assert (await client.closed())["code"] == 1000
    stored = await app.session(ready.session_id)  # ended calls live in the session store
    assert stored is not None and stored.record.status == "ended"
    assert stored.record.end_reason == "requested"

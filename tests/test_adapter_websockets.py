"""The plain ``websockets`` server adapter over a real socket on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import websockets

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
from parley.server.hosts.websockets import route_of, serve_websockets
from servers import TwilioPhone


@pytest.fixture
async def served() -> AsyncIterator[tuple[Parley, str]]:
    app = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK))
    server = await serve_websockets(app, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    async with server:
        yield app, f"ws://127.0.0.1:{port}"


async def recv(ws: websockets.ClientConnection) -> ServerEvent:
    return parse_server_frame(await asyncio.wait_for(ws.recv(), 5))


async def start(ws: websockets.ClientConnection) -> ReadyMessage:
    await ws.send(encode_client_message(StartMessage()))
    ready = await recv(ws)
    assert isinstance(ready, ReadyMessage)
    return ready


async def closed(ws: websockets.ClientConnection) -> websockets.frames.Close:
    with pytest.raises(websockets.ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None
    return info.value.rcvd


async def echo(ws: websockets.ClientConnection, pcm: bytes) -> bytes:
    await ws.send(pcm)
    back = b""
    while len(back) < len(pcm):
        msg = await recv(ws)
        assert isinstance(msg, AudioFrame)
        back += msg.pcm
    return back


def test_routes_come_from_the_platform_registry() -> None:
    board = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK)).switchboard

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


async def test_browser_session_streams_audio_back(served: tuple[Parley, str]) -> None:
    app, base = served
    async with websockets.connect(base + "/ws/audio") as ws:
        ready = await start(ws)
        assert ready.format.sample_rate == 24000
        record = app.calls.get(ready.session_id)
        assert record is not None and record.kind == "browser"
        pcm = bytes(range(256)) * 8
        for _ in range(3):
            assert await echo(ws, pcm) == pcm  # loopback, pcm16 24 kHz: bit-exact
    await asyncio.sleep(0.1)
    assert record.status == "ended"
    assert app.calls.connections == 0


async def test_a_conversation_created_ahead_is_claimed_by_id(
    served: tuple[Parley, str],
) -> None:
    app, base = served
    record = app.new_record()
    async with websockets.connect(f"{base}/ws/audio/{record.id}") as ws:
        ready = await start(ws)
        assert ready.session_id == record.id and record.status == "live"
        assert await echo(ws, b"\x01\x02" * 480) == b"\x01\x02" * 480
    async with websockets.connect(base + "/ws/audio/conv_nope") as ws:
        err = await recv(ws)
        assert isinstance(err, ErrorMessage) and err.code == "unknown_conversation"
        assert (await closed(ws)).code == 1008


async def test_twilio_media_stream_is_echoed_with_marks(served: tuple[Parley, str]) -> None:
    _, base = served
    async with websockets.connect(base + "/twilio/stream") as ws:
        phone = TwilioPhone(ws)
        await phone.start()
        for i in range(6):
            await phone.send_media(b"\x10" * 160)
            assert await phone.receive() == ("media", b"\x10" * 160)
            if i == 4:  # one mark per 100 ms of audio
                assert (await phone.receive())[0] == "mark"
        await phone.stop()


async def test_unknown_path_is_refused_before_the_upgrade(served: tuple[Parley, str]) -> None:
    _, base = served
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(base + "/elsewhere"):
            pass
    assert info.value.response.status_code == 404


@pytest.mark.parametrize(
    ("frame", "code", "close_code"),
    [
        ("{not json", "bad_json", 1007),
        (b"\x00\x01\x02", "odd_audio_length", 1007),
        ('{"type":"start"}', "duplicate_start", 1008),
        (b"\x00" * 70_000, "frame_too_large", 1009),
    ],
)
async def test_malformed_frame_closes_only_that_call(
    served: tuple[Parley, str], frame: str | bytes, code: str, close_code: int
) -> None:
    _, base = served
    url = base + "/ws/audio"
    async with websockets.connect(url) as good, websockets.connect(url) as bad:
        await start(good)
        await start(bad)
        await bad.send(frame)
        err = await recv(bad)
        assert isinstance(err, ErrorMessage) and err.code == code and err.fatal
        close = await closed(bad)
        assert close.code == close_code and close.reason.startswith(code)
        for _ in range(3):  # the other call goes on
            assert await echo(good, b"\x01\x00" * 240) == b"\x01\x00" * 240


async def test_malformed_twilio_frame_closes_with_a_reason(served: tuple[Parley, str]) -> None:
    _, base = served
    async with websockets.connect(base + "/twilio/stream") as ws:
        await TwilioPhone(ws).start()
        await ws.send("[1, 2]")
        close = await closed(ws)
        assert close.code == 1007 and close.reason.startswith("not_an_object")


async def test_ending_a_call_from_the_server_closes_the_socket(
    served: tuple[Parley, str],
) -> None:
    app, base = served
    async with websockets.connect(base + "/ws/audio") as ws:
        ready = await start(ws)
        assert await app.end_call(ready.session_id)  # what DELETE /conversations/{id} does
        assert (await closed(ws)).code == 1000
    stored = await app.session(ready.session_id)  # ended calls live in the session store
    assert stored is not None and stored.record.status == "ended"
    assert stored.record.end_reason == "requested"

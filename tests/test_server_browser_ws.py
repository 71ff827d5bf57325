"""The browser protocol (docs/protocol.md §1) on /ws/audio over a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets

from parley.app import EngineRequest, Parley
from parley.config import EngineKind, ParleySettings
from parley.engines.cascade import CascadeEngine
from parley.engines.seams import Engine
from parley.protocols.browser import (
    AudioFrame,
    ErrorMessage,
    PingMessage,
    PongMessage,
    ReadyMessage,
    ResponseDoneMessage,
    ResponseStartedMessage,
    ServerEvent,
    StartMessage,
    TranscriptMessage,
    UserTextMessage,
    encode_client_message,
    parse_server_frame,
)
from parley.testing.fakes import FakeLLM, FakeSTT, FakeTTS, FakeVAD
from servers import RunningServer, serve_app


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with serve_app(Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK))) as s:
        yield s


async def recv(ws: websockets.ClientConnection) -> ServerEvent:
    return parse_server_frame(await asyncio.wait_for(ws.recv(), 5))


async def closed(ws: websockets.ClientConnection) -> websockets.frames.Close:
    with pytest.raises(websockets.ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None
    return info.value.rcvd


async def start(ws: websockets.ClientConnection, **kw: object) -> ReadyMessage:
    await ws.send(encode_client_message(StartMessage(**kw)))  # type: ignore[arg-type]
    ready = await recv(ws)
    assert isinstance(ready, ReadyMessage)
    return ready


async def test_rest_created_conversation_streams_audio_both_ways(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        created = (await client.post("/conversations", json={"user_id": "u-1"})).json()
        async with websockets.connect(created["websocket_url"]) as ws:
            await ws.send(encode_client_message(PingMessage(id=7)))  # allowed before start
            assert await recv(ws) == PongMessage(id=7)
            ready = await start(ws, metadata={"page": "/t"})
            assert ready.session_id == created["id"] and ready.format.sample_rate == 24000
            pcm = bytes(range(256)) * 8  # 1 024 bytes of PCM16 at 24 kHz
            await ws.send(pcm)
            echoed = b""
            while len(echoed) < len(pcm):
                msg = await recv(ws)
                assert isinstance(msg, AudioFrame)
                echoed += msg.pcm
            assert echoed == pcm  # pcm16 24 kHz in and out: a bit-exact loopback
            info = (await client.get(f"/conversations/{created['id']}")).json()
            assert (info["status"], info["kind"], info["user_id"]) == ("live", "browser", "u-1")
            assert info["metadata"] == {"page": "/t"}
            assert server.app is not None
            record = server.app.calls.get(created["id"])
            assert record is not None
        assert await server.app.calls.wait_finished([record], 5)  # the registry's own event
        info = (await client.get(f"/conversations/{created['id']}")).json()
        assert info["status"] == "ended"


async def test_page_may_announce_another_rate(server: RunningServer) -> None:
    async with websockets.connect(server.ws_url("/ws/audio")) as ws:
        ready = await start(ws, format={"sample_rate": 48000})
        assert ready.format.sample_rate == 48000
        await ws.send(b"\x00\x10" * 960)
        msg = await recv(ws)
        assert isinstance(msg, AudioFrame) and len(msg.pcm) == 1920


async def test_unknown_and_taken_conversations_are_refused(server: RunningServer) -> None:
    async with websockets.connect(server.ws_url("/ws/audio/conv_nope")) as ws:
        err = await recv(ws)
        assert isinstance(err, ErrorMessage) and err.code == "unknown_conversation" and err.fatal
        assert (await closed(ws)).code == 1008
    async with httpx.AsyncClient(base_url=server.url) as client:
        created = (await client.post("/conversations", json={})).json()
    async with websockets.connect(created["websocket_url"]) as first:
        await start(first)
        async with websockets.connect(created["websocket_url"]) as second:
            err = await recv(second)
            assert isinstance(err, ErrorMessage) and err.code == "conversation_taken"
            assert (await closed(second)).code == 1008


@pytest.mark.parametrize(
    ("frame", "code", "close_code"),
    [
        ("{not json", "bad_json", 1007),
        ('{"type":"dance"}', "unknown_type", 1008),
        ('{"type":"playback","response_id":"r1","played_ms":-5}', "invalid_message", 1007),
        ('{"type":"start"}', "duplicate_start", 1008),
        (b"\x00\x01\x02", "odd_audio_length", 1007),
        (b"\x00" * 70_000, "frame_too_large", 1009),
    ],
)
async def test_malformed_frames_get_an_error_and_a_close_other_calls_go_on(
    server: RunningServer, frame: str | bytes, code: str, close_code: int
) -> None:
    url = server.ws_url("/ws/audio")
    async with websockets.connect(url) as good, websockets.connect(url, max_size=None) as bad:
        await start(good)
        await start(bad)
        await bad.send(frame)
        err = await recv(bad)
        assert isinstance(err, ErrorMessage) and err.code == code and err.fatal
        close = await closed(bad)
        assert close.code == close_code and close.reason.startswith(code)
        for _ in range(3):
            await good.send(b"\x01\x00" * 240)
            assert isinstance(await recv(good), AudioFrame)


async def test_garbage_before_start_is_refused(server: RunningServer) -> None:
    async with websockets.connect(server.ws_url("/ws/audio")) as ws:
        await ws.send(b"\x00\x00")
        err = await recv(ws)
        assert isinstance(err, ErrorMessage) and err.code == "audio_before_start"
        assert (await closed(ws)).code == 1008


def scripted(request: EngineRequest) -> Engine:
    return CascadeEngine(
        FakeVAD(16000), FakeSTT(""), FakeLLM(["Your order ships today."]), FakeTTS(16000)
    )


async def test_typed_text_gets_the_reply_messages_and_audio() -> None:
    app = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK), engine_factory=scripted)
    async with serve_app(app) as server, websockets.connect(server.ws_url("/ws/audio")) as ws:
        await start(ws)
        await ws.send(encode_client_message(UserTextMessage("Where is my order?")))
        seen: list[ServerEvent] = []
        while not any(isinstance(m, ResponseDoneMessage) for m in seen):
            seen.append(await recv(ws))
        kinds = [type(m).__name__ for m in seen]
        started = kinds.index("ResponseStartedMessage")
        assert kinds.index("AudioFrame") > started
        assert isinstance(seen[started], ResponseStartedMessage)
        done = seen[-1]
        assert isinstance(done, ResponseDoneMessage)
        assert done.text == "Your order ships today." and done.status == "completed"
        user = [m for m in seen if isinstance(m, TranscriptMessage) and m.role == "user"]
        assert [m.text for m in user] == ["Where is my order?"]
        audio = sum(len(m.pcm) for m in seen if isinstance(m, AudioFrame))
        assert audio > 24000  # FakeTTS: 60 ms a character, at 24 kHz for the page

"""The local Realtime server on an engine given from outside (what the switchboard
does): ``serve_realtime(socket, backend, engine, on_event=...)`` mounted by the test
itself, over real uvicorn and real WebSocket clients, including ``VoiceClient``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect

from parley.client.devices import BufferSpeaker
from parley.client.voice import VoiceClient, VoiceEngineConfig
from parley.engines.realtime import RealtimeEngine
from parley.engines.seams import CallEngine, missing_capabilities
from parley.events import AudioDelta, Event, ResponseDone, ResponseStarted
from parley.realtime_server import (
    RealtimeBackend,
    RealtimeSessionEngine,
    cascade_maker,
    serve_realtime,
)
from parley.testing.fakes import FakeLLM, FakeSTT, FakeTTS, FakeVAD
from parley.transports.socket import StarletteSocket
from servers import serve_asgi
from test_realtime_server import recv, send, until
from waits import Watch


class RecordingSocket:
    """A real Starlette socket that also keeps every frame the server sends."""

    def __init__(self, inner: StarletteSocket, board: Switchboard) -> None:
        self._inner = inner
        self._board = board

    async def receive(self) -> str | bytes | None:
        return await self._inner.receive()

    async def send_text(self, data: str) -> None:
        self._board.frames.append(json.loads(data))
        self._board.watch.notify()
        await self._inner.send_text(data)

    async def send_bytes(self, data: bytes) -> None:
        await self._inner.send_bytes(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._inner.close(code, reason)


@dataclass
class Switchboard:
    """What the test's route did per connection: the engines it built, every engine
    event ``on_event`` saw, every frame sent; ``watch`` is notified of each of those."""

    engines: list[RealtimeSessionEngine] = field(default_factory=list)
    seen: list[Event] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    watch: Watch = field(default_factory=Watch)

    def sent(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == kind]


@asynccontextmanager
async def switchboard(*, tts_delay_s: float = 0.0) -> AsyncIterator[Switchboard]:
    vad = FakeVAD(16000)
    backend = RealtimeBackend(vad=vad, stt=FakeSTT(["hello there"]), voices=("tone",))
    brain = FakeLLM(reply=lambda msgs: f"You said: {msgs[-1].content}")
    tts = FakeTTS(16000, ms_per_char=20.0, chunk_ms=100.0, delay_s=tts_delay_s)
    make_engine = cascade_maker(vad, FakeSTT(), brain, tts)
    board = Switchboard()

    async def on_event(event: Event) -> None:
        board.seen.append(event)
        board.watch.notify()

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        engine = make_engine()  # the switchboard's own engine for this call
        board.engines.append(engine)
        socket = RecordingSocket(StarletteSocket(websocket), board)
        await serve_realtime(socket, backend, engine, model="custom-model", on_event=on_event)

    app = Starlette(routes=[WebSocketRoute("/v1/realtime", endpoint)])
    async with serve_asgi(app) as port:
        board.url = f"ws://127.0.0.1:{port}/v1/realtime"
        yield board


async def test_the_session_runs_the_given_engine_and_shows_every_event_first() -> None:
    async with switchboard() as board, connect(board.url) as ws:
        created = await recv(ws)
        assert created["session"]["model"] == "custom-model"
        await send(
            ws,
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
            },
        )
        await recv(ws)
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "good day"}],
        }
        await send(ws, {"type": "conversation.item.create", "item": item})
        await send(ws, {"type": "response.create"})
        events = await until(ws, "response.done")
    assert len(board.engines) == 1
    # on_event saw the engine's own events, the reply from start to end ...
    kinds = [type(e) for e in board.seen]
    assert ResponseStarted in kinds and kinds.index(ResponseStarted) < kinds.index(ResponseDone)
    assert any(isinstance(e, AudioDelta) for e in board.seen)
    engine_done = next(e for e in board.seen if isinstance(e, ResponseDone))
    assert engine_done.text == "You said: good day"
    # ... and the client got them as server events of the response.
    assert events[-1]["response"]["output"][0]["content"][0]["transcript"] == "You said: good day"


async def test_response_cancel_cancels_at_the_engine() -> None:
    async with switchboard(tts_delay_s=0.05) as board, connect(board.url) as ws:
        await recv(ws)
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "one two three four five six"}],
        }
        await send(ws, {"type": "conversation.item.create", "item": item})
        await send(ws, {"type": "response.create"})
        await until(ws, "response.output_audio.delta")
        await send(ws, {"type": "response.cancel"})
        events = await until(ws, "response.done")
        assert events[-1]["response"]["status"] == "cancelled"
        # The engine itself ends the reply, cancelled (on_event shows it).
        await board.watch.until(
            lambda: any(isinstance(e, ResponseDone) and e.status == "cancelled" for e in board.seen)
        )
        n = len(board.sent("response.output_audio.delta"))
        # A window on the TTS's clock, not a wait: it would still be speaking, and
        # nothing more comes.
        await asyncio.sleep(0.3)
        assert len(board.sent("response.output_audio.delta")) == n


async def test_voice_client_interrupt_truncates_the_live_reply_without_an_error() -> None:
    """The user's report: interrupt() mid-reply got ``audio_end_ms 637 is longer than
    the item's audio (0 ms)`` every time. The reply here is still being made (the TTS
    speaks in real time) when the client interrupts."""
    async with switchboard(tts_delay_s=0.1) as board:
        speaker = BufferSpeaker(24000, realtime=True)
        client = VoiceClient(
            VoiceEngineConfig(mode="big", url=board.url, latency_mode="low"), speaker=speaker
        )
        errors: list[object] = []
        done: asyncio.Queue[object] = asyncio.Queue()
        client.on_error = errors.append
        client.on_response_done = done.put_nowait
        async with client:
            await client.send_text("please count from one up to twenty slowly")
            async with asyncio.timeout(5):
                while speaker.played_ms < 300:  # noqa: ASYNC110 - a virtual clock, no event
                    await asyncio.sleep(0.01)
            await client.interrupt()
            heard = speaker.played_ms
            info = await asyncio.wait_for(done.get(), 5)
            await board.watch.until(lambda: bool(board.sent("response.done")))
    assert errors == [] and not board.sent("error")
    (truncated,) = board.sent("conversation.item.truncated")
    assert abs(truncated["audio_end_ms"] - heard) < 80
    done_frame = board.sent("response.done")[-1]["response"]
    assert done_frame["status"] == "cancelled"
    (item,) = done_frame["output"]
    assert item["id"] == truncated["item_id"] and item["status"] == "incomplete"
    reply = "You said: please count from one up to twenty slowly"
    spoken = item["content"][0]["transcript"]
    assert spoken and reply.startswith(spoken) and len(spoken) < len(reply)
    assert info.status == "cancelled"  # type: ignore[attr-defined]


async def test_the_realtime_engine_is_a_call_engine() -> None:
    engine = RealtimeEngine()
    assert isinstance(engine, CallEngine)
    assert missing_capabilities(engine) == []

"""Context injection and triggers end to end, on both engines, through a real server.

Cascade: the offline stack (Silero, Whisper tiny.en, Piper) with an OpenAI-compatible
loopback LLM server as the brain; the tests assert on the chat requests it received.
Realtime: ``RealtimeUpstream`` (a scripted Realtime API) — the tests assert on the
items and session the upstream received — and, for speech, Parley's own offline
Realtime server (Whisper inside) as the upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from pydantic import SecretStr

from parley.app import Parley
from parley.config import ConversationConfig, EngineKind, ParleySettings
from parley.conversation.triggers import TriggerType
from parley.events import (
    ContextInjected,
    Event,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    Role,
    TranscriptFinal,
)
from parley.protocols.browser import (
    PCMFormat,
    ReadyMessage,
    StartMessage,
    UserTextMessage,
    encode_client_message,
    parse_server_frame,
)
from parley.protocols.openai_realtime import ConversationItemCreate, ResponseCancel
from parley.realtime_server import create_realtime_app
from parley.testing import (
    OpenAIWireServer,
    RealtimeUpstream,
    ScriptedReply,
    ScriptedResponse,
    split_words,
)
from servers import LoopServer, RunningServer, serve_app, start_serving
from speech import silence_16k, speak_16k
from waits import Watch

PROMPT = "You are a test agent."


@dataclass
class Seen:
    """Events of the call as the app's ``on_event`` handlers saw them; ``watch`` is
    notified of each, and of what a test's own trigger handlers record."""

    events: list[Event] = field(default_factory=list)
    watch: Watch = field(default_factory=Watch)

    def of(self, cls: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]

    async def until(self, cond: Callable[[], object], within: float = 10.0) -> None:
        await self.watch.until(cond, within)


def watch(app: Parley) -> Seen:
    seen = Seen()
    for cls in (ContextInjected, Interrupted, ResponseDone, ResponseStarted, TranscriptFinal):

        async def record(session_id: str, event: Any) -> None:
            seen.events.append(event)
            seen.watch.notify()

        app.on_event(cls)(record)
    return seen


class Call:
    """The talk page's side of /ws/audio: start, typed text, PCM16 audio."""

    def __init__(self, ws: websockets.ClientConnection, rate: int) -> None:
        self.ws, self.rate = ws, rate
        self.id = ""
        self._reader: asyncio.Task[None] | None = None

    async def start(self, user_id: str = "user-1") -> str:
        await self.ws.send(
            encode_client_message(
                StartMessage(user_id=user_id, format=PCMFormat(sample_rate=self.rate))
            )
        )
        ready = parse_server_frame(await asyncio.wait_for(self.ws.recv(), 10))
        assert isinstance(ready, ReadyMessage)
        self.id = ready.session_id
        self._reader = asyncio.create_task(self._drain())
        return self.id

    async def _drain(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for _ in self.ws:
                pass  # the server's frames; the assertions use the app's events

    async def say_text(self, text: str) -> None:
        await self.ws.send(encode_client_message(UserTextMessage(text)))

    async def play(self, pcm: bytes, speed: float = 2.0) -> None:
        step = 2 * self.rate // 50  # 20 ms frames
        for i in range(0, len(pcm), step):
            await self.ws.send(pcm[i : i + step])
            await asyncio.sleep(0.02 / speed)  # a microphone, at ``speed`` × real time

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await self._reader


@contextlib.asynccontextmanager
async def call(server: RunningServer, rate: int) -> AsyncIterator[Call]:
    assert server.app is not None
    begun: set[str] = set()
    started = Watch()

    @server.app.on_conversation_start
    async def on_start(session_id: str, user_id: str | None) -> None:
        begun.add(session_id)
        started.notify()

    async with websockets.connect(server.ws_url("/ws/audio"), max_size=None) as ws:
        c = Call(ws, rate)
        await c.start()
        await started.until(lambda: c.id in begun)  # the call's context is set up by then
        try:
            yield c
        finally:
            await c.close()


# -- engines -----------------------------------------------------------------------------


_cascades: list[Parley] = []


@pytest.fixture(autouse=True)
async def _close_brains() -> AsyncIterator[None]:
    # The app's shared LLM client must not outlive the test: its keep-alive socket
    # would leak into the next one (the server's shutdown closes it; this makes sure).
    yield
    while _cascades:
        await _cascades.pop().engines.aclose()


def cascade_app(wire: OpenAIWireServer, **config: Any) -> Parley:
    app = Parley(
        ConversationConfig(system_prompt=PROMPT, **config),
        settings=ParleySettings(
            engine=EngineKind.LOCAL,
            brain="openai:test-model",
            llm_base_url=wire.openai_base_url,
            llm_api_key=SecretStr("sk-test"),
        ),
    )
    _cascades.append(app)
    return app


def realtime_app(url: str, **config: Any) -> Parley:
    return Parley(
        ConversationConfig(system_prompt=PROMPT, **config),
        settings=ParleySettings(
            engine=EngineKind.REALTIME,
            realtime_url=url,
            realtime_api_key=SecretStr("test"),
            failover=False,
        ),
    )


def system_prompts(wire: OpenAIWireServer) -> list[str]:
    """The system message of each chat request the LLM received."""
    out = []
    for body in wire.chat_requests:
        msgs = [m for m in body["messages"] if m["role"] == "system"]
        out.append(msgs[0]["content"] if msgs else "")
    return out


def system_items(up: RealtimeUpstream) -> list[str]:
    """The text of every system item the upstream received, in order."""
    texts: list[str] = []
    for conn in up.connections:
        for ev in conn.events:
            if isinstance(ev, ConversationItemCreate) and ev.item.role == "system":
                assert isinstance(ev.item.content, list)
                texts.extend(str(p.text) for p in ev.item.content)
    return texts


def reply(text: str = "Sure.", delay: float = 0.0) -> ScriptedReply:
    return ScriptedReply(text=split_words(text), chunk_delay_s=delay)


# -- a provider's data reaches the model ----------------------------------------------------


async def test_cascade_provider_data_reaches_the_llm() -> None:
    async with OpenAIWireServer() as wire:
        wire.script(reply())
        app = cascade_app(wire)

        @app.context_provider
        async def profile(user_id: str | None) -> dict[str, Any]:
            return {"user": user_id, "tier": "gold", "name": "Ana"}

        seen = watch(app)
        async with serve_app(app) as server, call(server, 16000) as c:
            await c.say_text("Hello there")
            await seen.until(lambda: seen.of(ResponseDone))
        prompt = system_prompts(wire)[0]
        assert prompt.startswith(PROMPT)
        assert '[profile]\n{"user":"user-1","tier":"gold","name":"Ana"}' in prompt
        injected = seen.of(ContextInjected)
        assert [e.key for e in injected] == ["profile"]
        assert injected[0].latency_ms >= 0


async def test_realtime_provider_data_reaches_the_upstream() -> None:
    async with RealtimeUpstream() as up:
        app = realtime_app(up.url)

        @app.context_provider
        async def profile(user_id: str | None) -> dict[str, Any]:
            return {"user": user_id, "tier": "gold"}

        async with serve_app(app) as server, call(server, 24000):
            await up.until(lambda: system_items(up))
        assert system_items(up) == ['[context: profile]\n{"user":"user-1","tier":"gold"}']


# -- semantic triggers on real speech ---------------------------------------------------------


KEYWORD = "Where is my order right now?"
OTHER = "What a lovely sunny day it is."


async def speak(c: Call, text: str) -> None:
    await c.play(speak_16k(text) + silence_16k(1.2), speed=2.0)


def to_24k(pcm16k: bytes) -> bytes:
    import numpy as np
    import soxr

    samples = np.frombuffer(pcm16k, dtype="<i2")
    return bytes(soxr.resample(samples, 16000, 24000).astype("<i2").tobytes())


async def test_cascade_semantic_trigger_fires_on_spoken_keyword_only() -> None:
    async with OpenAIWireServer() as wire:
        wire.script(reply("Nice."), reply("Let me check."), reply("Done."))
        app = cascade_app(wire)
        detected: list[list[str]] = []

        @app.context_trigger(TriggerType.SEMANTIC, keywords=["order", "refund"])
        async def orders(session_id: str, found: list[str]) -> dict[str, Any]:
            detected.append(found)
            seen.watch.notify()
            return {"order": "A-17", "status": "shipped"}

        seen = watch(app)
        async with serve_app(app) as server, call(server, 16000) as c:
            await speak(c, OTHER)
            await seen.until(lambda: len(seen.of(ResponseDone)) == 1, 30)
            heard = [e.text for e in seen.of(TranscriptFinal) if e.role is Role.USER]
            assert "lovely" in heard[0].lower()
            assert detected == []
            await speak(c, KEYWORD)
            await seen.until(lambda: len(seen.of(ResponseDone)) == 2, 30)
            await seen.until(lambda: detected)
            heard = [e.text for e in seen.of(TranscriptFinal) if e.role is Role.USER]
            assert "order" in heard[1].lower()
            assert detected == [["order"]]
            await c.say_text("Thanks")
            await seen.until(lambda: len(seen.of(ResponseDone)) == 3, 30)
        prompts = system_prompts(wire)
        assert "A-17" not in prompts[0]
        assert '[orders]\n{"order":"A-17","status":"shipped"}' in prompts[2]


@contextlib.asynccontextmanager
async def local_realtime_server() -> AsyncIterator[str]:
    """Parley's offline Realtime server (Silero, Whisper, echo brain, Piper) on loopback."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_realtime_app(warmup=True), log_config=None, log_level="warning", lifespan="on"
    )
    server = LoopServer(config)
    task = await start_serving(server, [sock])
    try:
        yield f"ws://127.0.0.1:{port}/v1/realtime"
    finally:
        server.should_exit = True
        await task


async def test_realtime_semantic_trigger_fires_on_spoken_keyword_only() -> None:
    async with local_realtime_server() as url:
        app = realtime_app(url)
        detected: list[list[str]] = []

        @app.context_trigger(TriggerType.SEMANTIC, keywords=["order"], roles=(Role.USER,))
        async def orders(session_id: str, found: list[str]) -> dict[str, Any]:
            detected.append(found)
            seen.watch.notify()
            return {"order": "A-17"}

        seen = watch(app)
        async with serve_app(app) as server, call(server, 24000) as c:
            await c.play(to_24k(speak_16k(OTHER) + silence_16k(1.2)))
            await seen.until(
                lambda: [e for e in seen.of(TranscriptFinal) if e.role is Role.USER], 30
            )
            await seen.until(lambda: seen.of(ResponseDone), 30)
            assert detected == []
            await c.play(to_24k(speak_16k(KEYWORD) + silence_16k(1.2)))
            await seen.until(lambda: detected, 30)
            await seen.until(lambda: seen.of(ContextInjected), 10)
        heard = [e.text.lower() for e in seen.of(TranscriptFinal) if e.role is Role.USER]
        assert "lovely" in heard[0] and "order" in heard[1]
        assert detected == [["order"]]


async def test_realtime_semantic_trigger_on_scripted_transcripts_sends_an_item() -> None:
    async with RealtimeUpstream(turn_audio_ms=200) as up:
        up.script(
            ScriptedResponse("Nice.", user_transcript=OTHER),
            ScriptedResponse("Checking.", user_transcript="I want a refund"),
        )
        app = realtime_app(up.url)
        detected: list[list[str]] = []

        @app.context_trigger(TriggerType.SEMANTIC, keywords=["refund"], roles=(Role.USER,))
        async def refunds(session_id: str, found: list[str]) -> dict[str, Any]:
            detected.append(found)
            seen.watch.notify()
            return {"refund": "approved"}

        seen = watch(app)
        async with serve_app(app) as server, call(server, 24000) as c:
            await c.play(bytes(2 * 24000 * 200 // 1000), speed=4)  # one 200 ms "turn"
            await seen.until(lambda: seen.of(ResponseDone))
            assert detected == []
            await c.play(bytes(2 * 24000 * 200 // 1000), speed=4)
            await up.until(lambda: system_items(up))
        assert detected == [["refund"]]
        assert system_items(up) == ['[context: refunds]\n{"refund":"approved"}']


# -- periodic triggers --------------------------------------------------------------------


async def test_cascade_periodic_trigger_fires_at_its_interval() -> None:
    async with OpenAIWireServer() as wire:
        wire.script(reply())
        app = cascade_app(wire)
        ticks: list[float] = []

        @app.context_trigger(TriggerType.PERIODIC, interval_seconds=0.2)
        async def clock(session_id: str) -> dict[str, Any]:
            ticks.append(time.monotonic())
            seen.watch.notify()
            return {"tick": len(ticks)}

        seen = watch(app)
        async with serve_app(app) as server, call(server, 16000) as c:
            await seen.until(lambda: len(ticks) >= 4)
            n = len(ticks)
            await c.say_text("What time is it?")
            await seen.until(lambda: seen.of(ResponseDone))
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        assert all(0.15 <= g <= 0.3 for g in gaps), gaps
        prompt = system_prompts(wire)[0]
        assert f'[clock]\n{{"tick":{n}}}' in prompt or f'{{"tick":{n + 1}}}' in prompt


async def test_realtime_periodic_trigger_fires_at_its_interval() -> None:
    async with RealtimeUpstream() as up:
        app = realtime_app(up.url)
        ticks: list[float] = []

        @app.context_trigger(TriggerType.PERIODIC, interval_seconds=0.2)
        async def clock(session_id: str) -> dict[str, Any]:
            ticks.append(time.monotonic())
            return {"tick": len(ticks)}

        async with serve_app(app) as server, call(server, 24000):
            await up.until(lambda: len(system_items(up)) >= 3)
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        assert all(0.15 <= g <= 0.3 for g in gaps), gaps
        assert system_items(up)[:3] == [f'[context: clock]\n{{"tick":{i}}}' for i in (1, 2, 3)]


# -- event triggers from REST ---------------------------------------------------------------


def event_trigger(app: Parley, got: list[dict[str, Any]]) -> None:
    @app.context_trigger(TriggerType.EVENT, event="user_authenticated")
    async def account(session_id: str, data: dict[str, Any]) -> dict[str, Any]:
        got.append(data)
        return {"account": data["account"], "verified": True}


async def test_cascade_event_trigger_fires_from_rest() -> None:
    async with OpenAIWireServer() as wire:
        wire.script(reply())
        app = cascade_app(wire)
        got: list[dict[str, Any]] = []
        event_trigger(app, got)
        seen = watch(app)
        async with serve_app(app) as server, call(server, 16000) as c:
            async with httpx.AsyncClient(base_url=server.url) as http:
                url = f"/conversations/{c.id}/events"
                r = await http.post(url, json={"event": "nope"})
                assert r.status_code == 422 and "nope" in r.text
                r = await http.post(url, json={"data": {}})
                assert r.status_code == 422
                r = await http.post("/conversations/conv_missing/events", json={"event": "x"})
                assert r.status_code == 404
                r = await http.post(
                    url, json={"event": "user_authenticated", "data": {"account": "ACC-9"}}
                )
                assert r.status_code == 200, r.text
                assert r.json() == {"id": c.id, "event": "user_authenticated", "fired": 1}
            assert got == [{"account": "ACC-9"}]
            await c.say_text("Am I logged in?")
            await seen.until(lambda: seen.of(ResponseDone))
        assert '[account]\n{"account":"ACC-9","verified":true}' in system_prompts(wire)[0]


async def test_realtime_event_trigger_fires_from_rest_and_from_the_app() -> None:
    async with RealtimeUpstream() as up:
        app = realtime_app(up.url)
        got: list[dict[str, Any]] = []
        event_trigger(app, got)
        async with serve_app(app) as server, call(server, 24000) as c:
            async with httpx.AsyncClient(base_url=server.url) as http:
                r = await http.post(
                    f"/conversations/{c.id}/events",
                    json={"event": "user_authenticated", "data": {"account": "ACC-1"}},
                )
                assert r.status_code == 200, r.text
            await up.until(lambda: system_items(up))
            conv = app.conversation(c.id)
            assert conv is not None
            assert await app.fire(c.id, "user_authenticated", {"account": "ACC-2"}) == 1
            await up.until(lambda: len(system_items(up)) == 2)
        assert system_items(up) == [
            '[context: account]\n{"account":"ACC-1","verified":true}',
            '[context: account]\n{"account":"ACC-2","verified":true}',
        ]


# -- REST injection during a streaming response ---------------------------------------------


async def test_cascade_injection_during_a_reply_does_not_interrupt_it() -> None:
    async with OpenAIWireServer() as wire:
        long = "This reply streams slowly word by word so that it is still going on."
        wire.script(reply(long, delay=0.08), reply("Noted."))
        app = cascade_app(wire, enable_async_injection=True)
        seen = watch(app)
        async with serve_app(app) as server, call(server, 16000) as c:
            await c.say_text("Tell me something")
            await seen.until(lambda: seen.of(ResponseStarted))
            async with httpx.AsyncClient(base_url=server.url) as http:
                r = await http.post(
                    f"/conversations/{c.id}/context",
                    json={"key": "inventory", "data": {"sku": "X1", "in_stock": 3}},
                )
                assert r.status_code == 202, r.text
                body = r.json()
                assert body["deferred"] is False and body["tokens"] > 0
                assert not seen.of(ResponseDone)  # the reply was still streaming
                r = await http.post("/conversations/conv_missing/context", json=body)
                assert r.status_code == 422  # extra fields: validated before lookup
                r = await http.post(
                    "/conversations/conv_missing/context", json={"key": "k", "data": "v"}
                )
                assert r.status_code == 404
            await seen.until(lambda: seen.of(ResponseDone), 20)
            done = seen.of(ResponseDone)[0]
            assert done.status == "completed"
            assert done.text == long
            assert not seen.of(Interrupted)
            # (Typing while its audio still plays would barge in: that is not the point.)
            await c.say_text("And now?")
            await seen.until(lambda: len(seen.of(ResponseDone)) == 2, 20)
        first, second = system_prompts(wire)
        assert "inventory" not in first
        assert '[inventory]\n{"sku":"X1","in_stock":3}' in second
        assert [e.key for e in seen.of(ContextInjected)] == ["inventory"]


async def test_realtime_injection_during_a_reply_does_not_interrupt_it() -> None:
    async with RealtimeUpstream(delta_interval_s=0.05) as up:
        words = "one two three four five six seven eight nine ten eleven twelve"
        up.script(ScriptedResponse(words))
        app = realtime_app(up.url, enable_async_injection=True)
        seen = watch(app)
        async with serve_app(app) as server, call(server, 24000) as c:
            await c.say_text("Count for me")
            await seen.until(lambda: seen.of(ResponseStarted))
            async with httpx.AsyncClient(base_url=server.url) as http:
                r = await http.post(
                    f"/conversations/{c.id}/context",
                    json={"key": "inventory", "data": {"sku": "X1"}},
                )
                assert r.status_code == 202, r.text
            await up.until(lambda: system_items(up))
            assert up.responses_done == 0  # the item arrived while the reply streamed
            await seen.until(lambda: seen.of(ResponseDone), 20)
        done = seen.of(ResponseDone)[0]
        assert done.status == "completed" and done.text == words
        assert not seen.of(Interrupted)
        assert not [e for e in up.connections[0].events if isinstance(e, ResponseCancel)]
        assert system_items(up) == ['[context: inventory]\n{"sku":"X1"}']


async def test_without_async_injection_a_reply_holds_the_item_back() -> None:
    async with RealtimeUpstream(delta_interval_s=0.05) as up:
        up.script(ScriptedResponse("one two three four five six seven eight"))
        app = realtime_app(up.url)  # enable_async_injection defaults to off
        seen = watch(app)
        async with serve_app(app) as server, call(server, 24000) as c:
            await c.say_text("Count for me")
            await seen.until(lambda: seen.of(ResponseStarted))
            async with httpx.AsyncClient(base_url=server.url) as http:
                r = await http.post(
                    f"/conversations/{c.id}/context", json={"key": "k", "data": "later"}
                )
            assert r.json()["deferred"] is True
            await asyncio.sleep(0.1)  # a window of two of the reply's 50 ms deltas
            assert system_items(up) == []
            await seen.until(lambda: seen.of(ResponseDone), 20)
            await up.until(lambda: system_items(up))
        assert system_items(up) == ["[context: k]\nlater"]


@pytest.mark.parametrize("status", ["pending"])
async def test_injection_into_a_call_that_is_not_live_is_refused(status: str) -> None:
    app = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK))
    async with serve_app(app) as server, httpx.AsyncClient(base_url=server.url) as http:
        created = (await http.post("/conversations", json={})).json()
        r = await http.post(
            f"/conversations/{created['id']}/context", json={"key": "k", "data": "v"}
        )
        assert r.status_code == 409 and status in r.text

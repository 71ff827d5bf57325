"""The switchboard over real sockets: no silent failure, one log line per call start,
end, refusal and error, the engine serving now in REST and health, the brain chosen
in YAML on every route."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from openai import AsyncOpenAI
from pydantic import SecretStr

from parley.app import Parley
from parley.audio import StreamResampler, ulaw_decode, ulaw_encode
from parley.client import place_call
from parley.config import ConversationConfig, EngineKind, ParleySettings, load_settings
from parley.conversation.middleware import MiddlewareContext
from parley.protocols.browser import (
    AudioFrame,
    ErrorMessage,
    PlaybackMessage,
    ReadyMessage,
    ResponseDoneMessage,
    StartMessage,
    UserTextMessage,
    encode_client_message,
    parse_server_frame,
)
from parley.providers.whisper import WhisperSTT
from parley.testing import OpenAIWireServer, ScriptedError, ScriptedReply
from servers import TwilioPhone, serve_app
from speech import speak, words_missed

APOLOGY = "Sorry, the line is bad. Please say that again."


class Page:
    """A browser page's side of /ws/audio, recording everything the server sends."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.audio = 0
        self.frames: list[Any] = []

    async def start(self) -> str:
        await self.ws.send(encode_client_message(StartMessage(user_id="u-1")))
        ready = parse_server_frame(await asyncio.wait_for(self.ws.recv(), 10))
        assert isinstance(ready, ReadyMessage)
        return ready.session_id

    async def say(self, text: str) -> None:
        await self.ws.send(encode_client_message(UserTextMessage(text)))

    async def until_done(self) -> ResponseDoneMessage:
        """Frames up to the reply's end; then the page says it played all of it (as
        the talk page does), so the next message is not a barge-in."""
        reply = 0
        while True:
            msg = parse_server_frame(await asyncio.wait_for(self.ws.recv(), 30))
            self.frames.append(msg)
            if isinstance(msg, AudioFrame):
                self.audio += len(msg.pcm)
                reply += len(msg.pcm)
            elif isinstance(msg, ResponseDoneMessage):
                played_ms = reply / 2 / 24000 * 1000
                await self.ws.send(
                    encode_client_message(PlaybackMessage(msg.response_id, played_ms))
                )
                return msg


def cascade_settings(wire: OpenAIWireServer, **extra: Any) -> ParleySettings:
    return ParleySettings(
        engine=EngineKind.LOCAL,
        brain="openai:test-model",
        llm_base_url=wire.openai_base_url,
        llm_api_key=SecretStr("sk-test"),
        **extra,
    )


@pytest.fixture
async def wire() -> AsyncIterator[OpenAIWireServer]:
    async with OpenAIWireServer() as server:
        yield server


async def test_a_provider_error_is_heard_logged_once_and_shown_by_rest(
    wire: OpenAIWireServer, caplog: pytest.LogCaptureFixture
) -> None:
    wire.script(ScriptedError(500, "the model fell over"), ScriptedError(500), ScriptedError(500))
    wire.script(ScriptedReply(("Now it works.",)))
    app = Parley(ConversationConfig(apology_text=APOLOGY), settings=cascade_settings(wire))
    caplog.set_level(logging.INFO, "parley")
    async with serve_app(app) as server, websockets.connect(server.ws_url("/ws/audio")) as ws:
        page = Page(ws)
        call_id = await page.start()
        await page.say("what is my balance")
        failed = await page.until_done()
        assert failed.status == "failed" and failed.text == APOLOGY
        assert page.audio > 22050  # the caller hears the apology (Piper: over a second)
        errors = [f for f in page.frames if isinstance(f, ErrorMessage)]
        assert len(errors) == 1 and errors[0].code == "provider_error"
        assert not errors[0].fatal
        await page.say("and now")
        ok = await page.until_done()
        assert ok.status == "completed" and ok.text == "Now it works."
        async with httpx.AsyncClient(base_url=server.url) as http:
            info = (await http.get(f"/conversations/{call_id}")).json()
    assert info["error"]["code"] == "provider_error" and "HTTP 500" in info["error"]["message"]
    assistant = [t for t in info["turns"] if t["role"] == "assistant"]
    assert [(t["text"], t["failed"]) for t in assistant] == [
        (APOLOGY, True),
        ("Now it works.", False),
    ]
    logged = [
        r
        for r in caplog.records
        if call_id in r.getMessage() and "provider_error" in r.getMessage()
    ]
    assert len(logged) == 1 and logged[0].levelno == logging.WARNING


async def test_calls_log_one_line_at_start_and_end_and_refusals_say_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK))
    caplog.set_level(logging.INFO, "parley.server")
    async with serve_app(app) as server:
        async with websockets.connect(server.ws_url("/twilio/stream")) as ws:
            phone = TwilioPhone(ws, call_sid="CA-log")
            await phone.start({"from": "+15550001"})
            await phone.send_media(b"\xff" * 160)
            assert (await phone.receive())[0] == "media"
            await phone.stop()
            await ws.wait_closed()
        await app.calls.wait_finished(app.calls.records(), 5)
        app.draining = True
        async with websockets.connect(server.ws_url("/ws/audio")) as ws:
            await ws.wait_closed()
            assert ws.close_code == 1013
    lines = [r.getMessage() for r in caplog.records if r.name == "parley.server"]
    (started,) = [m for m in lines if " started: " in m]
    (ended,) = [m for m in lines if " ended: " in m]
    assert "platform=twilio" in started and "engine=loopback" in started
    assert "user=+15550001" in started
    assert "platform=twilio" in ended and "duration=" in ended and "turns=0" in ended
    (refused,) = [m for m in lines if m.startswith("refused browser socket")]
    assert "server is shutting down" in refused


async def test_failover_is_logged_and_rest_and_health_name_the_engine_serving_now(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """--engine realtime with nothing listening upstream: the call runs on the cascade,
    and every view says so (it used to say "realtime" while the cascade answered)."""
    dead = f"ws://127.0.0.1:{_closed_port()}/v1/realtime"
    settings = ParleySettings(engine=EngineKind.REALTIME, realtime_url=dead, realtime_api_key="k")
    app = Parley(settings=settings)
    caplog.set_level(logging.INFO, "parley.server")
    async with serve_app(app) as server, websockets.connect(server.ws_url("/ws/audio")) as ws:
        page = Page(ws)
        call_id = await page.start()
        await page.say("hello there")
        done = await page.until_done()
        assert done.status == "completed" and "hello there" in done.text.lower()
        async with httpx.AsyncClient(base_url=server.url) as http:
            info = (await http.get(f"/conversations/{call_id}")).json()
            health = (await http.get("/healthz")).json()
    assert info["engine"] == "realtime" and info["serving"] == "cascade"
    (call,) = [c for c in health["calls"] if c["id"] == call_id]
    assert call["engine"] == "cascade"
    (line,) = [r.getMessage() for r in caplog.records if "failover from realtime" in r.getMessage()]
    assert call_id in line and "to cascade" in line


async def test_a_raising_middleware_is_skipped_and_the_caller_still_answered(
    wire: OpenAIWireServer,
) -> None:
    wire.script(ScriptedReply(("Your order shipped.",)))
    app = Parley(settings=cascade_settings(wire))

    @app.request_middleware
    async def enrich(text: str, ctx: MiddlewareContext) -> str:
        raise KeyError("crm_id")

    async with serve_app(app) as server, websockets.connect(server.ws_url("/ws/audio")) as ws:
        page = Page(ws)
        call_id = await page.start()
        await page.say("where is my order")
        done = await page.until_done()
        async with httpx.AsyncClient(base_url=server.url) as http:
            info = (await http.get(f"/conversations/{call_id}")).json()
    assert done.status == "completed" and done.text == "Your order shipped."
    # The model got the caller's words as they were (the middleware left no trace).
    assert wire.chat_requests[0]["messages"][-1]["content"] == "where is my order"
    errors = [f for f in page.frames if isinstance(f, ErrorMessage)]
    assert len(errors) == 1 and errors[0].code == "middleware_error"
    assert info["error"]["code"] == "middleware_error"


async def test_the_brain_chosen_in_yaml_answers_twilio_and_browser_calls(tmp_path: Path) -> None:
    """engine local + brain template in a YAML file: a spoken Twilio call (Piper → µ-law
    → Silero/Whisper) and a typed browser call both get the template's answer."""
    config = tmp_path / "parley.yaml"
    config.write_text("engine: local\nbrain: template\n", encoding="utf-8")
    app = Parley(settings=load_settings(config))
    greeting = "Hello! How can I help you today?"
    async with serve_app(app) as server:
        async with websockets.connect(server.ws_url("/ws/audio")) as ws:
            page = Page(ws)
            await page.start()
            await page.say("hello")
            assert (await page.until_done()).text == greeting
        pcm, rate = speak("Hello there.")
        result = await place_call(server.ws_url("/twilio/stream"), [to_ulaw_8k(pcm, rate)])
    (turn,) = result.turns
    assert turn.reply_ulaw
    heard = await WhisperSTT().transcribe(from_ulaw_16k(bytes(turn.reply_ulaw)))
    assert words_missed(greeting, heard.text) <= 1  # audio recognised twice: one slip


def to_ulaw_8k(pcm: bytes, rate: int) -> bytes:
    resampler = StreamResampler(rate, 8000)
    return ulaw_encode(resampler.process(pcm) + resampler.flush())


def from_ulaw_16k(ulaw: bytes) -> bytes:
    resampler = StreamResampler(8000, 16000)
    return resampler.process(ulaw_decode(ulaw)) + resampler.flush()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- /v1/realtime is a call like any other ------------------------------------------------


def sdk(server_url: str, key: str = "sk-any") -> AsyncOpenAI:
    base = server_url.replace("http://", "ws://") + "/v1"
    return AsyncOpenAI(api_key=key, websocket_base_url=base)


async def test_the_official_sdk_on_v1_realtime_gets_the_brain_chosen_in_yaml(
    tmp_path: Path,
) -> None:
    config = tmp_path / "parley.yaml"
    config.write_text("engine: local\nbrain: template\n", encoding="utf-8")
    app = Parley(settings=load_settings(config))
    async with (
        serve_app(app) as server,
        sdk(server.url).realtime.connect(model="gpt-realtime") as conn,
    ):
        assert (await conn.recv()).type == "session.created"
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hello"}],
            }
        )
        await conn.response.create()
        text = ""
        async for event in conn:
            if event.type == "response.output_text.delta":
                text += event.delta
            elif event.type == "error":
                pytest.fail(f"server error: {event.error}")
            elif event.type == "response.done":
                break
        (record,) = [r for r in app.calls.records() if r.kind == "realtime"]
        async with httpx.AsyncClient(base_url=server.url) as http:
            health = (await http.get("/healthz")).json()
        (call,) = [c for c in health["calls"] if c["id"] == record.id]
        assert call["kind"] == "realtime" and call["status"] == "live"
    assert text == "Hello! How can I help you today?"
    assert record.status == "ended" and record.journal is not None
    assert [t.text for t in record.journal.transcript] == ["hello", text]


async def test_v1_realtime_is_refused_at_capacity_and_while_draining() -> None:
    app = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK, max_calls=1))
    async with serve_app(app) as server:
        url = server.ws_url("/v1/realtime")
        async with websockets.connect(server.ws_url("/ws/audio")) as browser:
            await Page(browser).start()  # the one call the server takes
            async with websockets.connect(url) as ws:
                await ws.wait_closed()
            assert ws.close_code == 1013 and "capacity" in (ws.close_reason or "")
        await app.calls.wait_finished(app.calls.records(), 5)
        app.draining = True
        async with websockets.connect(url) as ws:
            await ws.wait_closed()
        assert ws.close_code == 1013 and "shutting down" in (ws.close_reason or "")
    assert not [r for r in app.calls.records() if r.kind == "realtime"]


async def test_v1_realtime_wants_the_configured_key() -> None:
    app = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK, realtime_server_api_key="k1"))
    async with serve_app(app) as server:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(server.ws_url("/v1/realtime")):
                pass
        assert refused.value.response.status_code == 401
        headers = {"Authorization": "Bearer k1"}
        async with websockets.connect(
            server.ws_url("/v1/realtime"), additional_headers=headers
        ) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"

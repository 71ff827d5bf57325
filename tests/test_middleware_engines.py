"""Middleware on both engines, wired through the app's switchboard as a server
call is: the cascade with an OpenAI-compatible LLM over the real SSE wire format,
the realtime engine against the local Realtime upstream, and an audio
preprocessor that provably reaches the VAD and the STT."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import numpy as np

from parley.app import EngineRequest, Parley
from parley.audio.format import OPENAI_PCM_FORMAT
from parley.config import EngineKind, ParleySettings
from parley.conversation.middleware import MiddlewareContext
from parley.conversation.pii import PIIRedactionMiddleware
from parley.conversation.session import Conversation
from parley.engines import CascadeEngine
from parley.engines.realtime import RealtimeConfig, RealtimeEngine
from parley.engines.seams import Engine
from parley.events import (
    AudioDelta,
    ErrorEvent,
    Event,
    ResponseDone,
    Role,
    TextDelta,
    TranscriptDelta,
    TranscriptFinal,
)
from parley.providers.openai_llm import OpenAILLM
from parley.testing import (
    FakeSTT,
    FakeTTS,
    FakeVAD,
    OpenAIWireServer,
    RealtimeUpstream,
    ScriptedReply,
    ScriptedResponse,
    silence,
    split_words,
    tone,
)
from parley.testing.transport import memory_transport_pair

RATE = 16000
CARD = "4111 1111 1111 1111"


def app_with(factory: Callable[[EngineRequest], Engine]) -> Parley:
    return Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK), engine_factory=factory)


class Events:
    def __init__(self) -> None:
        self.items: list[Event] = []
        self.changed = asyncio.Event()

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.items if isinstance(e, kind)]

    async def until(self, pred: Callable[[], bool], limit_s: float = 10.0) -> None:
        async with asyncio.timeout(limit_s):
            while not pred():
                self.changed.clear()
                await self.changed.wait()


@asynccontextmanager
async def live_call(
    app: Parley, *, user_id: str | None = None, metadata: dict[str, str] | None = None
) -> AsyncIterator[tuple[Conversation, Any, Events]]:
    """A call as the switchboard runs a socket's, over the in-memory transport."""
    record = app.new_record(kind="browser", user_id=user_id, metadata=metadata)
    stream, peer = memory_transport_pair()
    events = Events()

    def on_show(event: Event) -> None:
        events.items.append(event)
        events.changed.set()

    stream.on_show = on_show

    async def drain() -> None:
        async for _ in peer:
            pass

    async with asyncio.TaskGroup() as tg:
        tg.create_task(app.switchboard.run_call(record, stream))
        tg.create_task(drain())
        await asyncio.sleep(0)  # the call task runs up to its first await: the call is set up
        assert record.conversation is not None
        yield record.conversation, peer, events
        await app.end_call(record.id)


# -- cascade ------------------------------------------------------------------------------


async def test_cascade_request_and_response_middleware_over_the_openai_wire() -> None:
    """The LLM gets the transformed user text; what is spoken, the text deltas, the
    transcript and the history carry the transformed reply (a card number the model
    says is never synthesised)."""
    tts = FakeTTS(RATE)
    stt = FakeSTT(f"my email is bob@example.com and my card is {CARD}")
    async with OpenAIWireServer() as server:
        server.script(
            ScriptedReply(text=split_words(f"Thanks NAME, your card {CARD} is on file. Bye!"))
        )
        llm = OpenAILLM("gpt-4o-mini", base_url=server.openai_base_url, api_key="test")
        app = app_with(lambda req: CascadeEngine(FakeVAD(RATE), stt, llm, tts))
        seen: list[tuple[str, str | None, str]] = []

        @app.request_middleware
        async def polite(text: str, ctx: MiddlewareContext) -> str:
            seen.append((ctx.direction, ctx.user_id, ctx.conversation_id))
            return f"{text} (customer {ctx.user_id})"

        @app.response_middleware
        async def name(text: str, ctx: MiddlewareContext) -> str:
            return text.replace("NAME", "Jane")

        app.add_middleware(PIIRedactionMiddleware())  # both directions

        async with live_call(app, user_id="jane-42") as (conv, peer, events):
            await peer.send_audio(silence(100) + tone(600) + silence(900))
            await events.until(lambda: bool(events.of(ResponseDone)))
        await llm.aclose()
        (request,) = server.requests_to("/v1/chat/completions")

    # The model got the transformed text, in registration order: polite, then PII.
    assert request.json_body["messages"][-1] == {
        "role": "user",
        "content": "my email is [redacted email address] and my card is "
        "[redacted card number] (customer jane-42)",
    }
    assert seen == [("request", "jane-42", conv.id)]
    spoken = " ".join(tts.texts)
    assert CARD not in spoken and "[redacted card number]" in spoken and "Jane" in spoken
    streamed = "".join(d.text for d in events.of(TextDelta))
    assert CARD not in streamed and "NAME" not in streamed
    (done,) = events.of(ResponseDone)
    assert done.text == "Thanks Jane, your card [redacted card number] is on file. Bye!"
    assert streamed == done.text
    # The transcript: the caller's own words, the reply as transformed.
    user, assistant = conv.transcript.turns
    assert user.role is Role.USER and CARD in user.text
    assert assistant.text == done.text
    engine = conv.engine
    assert isinstance(engine, CascadeEngine)
    assert all(CARD not in m.content for m in engine.history)


async def test_cascade_refusal_by_token_auth_is_an_apology_not_silence() -> None:
    """A request hook that refuses (TokenAuth raises AuthError) never reaches the
    LLM; the caller hears the apology in a failed reply instead of silence."""
    from parley.conversation.middleware import TokenAuthMiddleware
    from parley.engines.cascade import DEFAULT_APOLOGY
    from parley.events import ResponseStarted
    from parley.testing import FakeLLM

    llm = FakeLLM(["Never said."])
    tts = FakeTTS(RATE)
    app = app_with(lambda req: CascadeEngine(FakeVAD(RATE), FakeSTT("hi"), llm, tts))
    app.add_middleware(TokenAuthMiddleware({"good": ["talk"]}), response=False)

    async with live_call(app, metadata={"token": "bad"}) as (_conv, peer, events):
        await peer.send_text("hello")
        await events.until(lambda: bool(events.of(ResponseDone)))
    (error,) = events.of(ErrorEvent)
    assert error.code == "auth_error" and not error.fatal
    (done,) = events.of(ResponseDone)
    assert (done.status, done.text) == ("failed", DEFAULT_APOLOGY)
    kinds = [
        type(e) for e in events.items if isinstance(e, (ErrorEvent, ResponseStarted, ResponseDone))
    ]
    assert kinds == [ErrorEvent, ResponseStarted, ResponseDone]
    assert llm.requests == [] and tts.texts == [DEFAULT_APOLOGY]
    assert events.of(AudioDelta)  # the apology was spoken

    async with live_call(app, metadata={"token": "good"}) as (_conv, peer, events):
        await peer.send_text("hello")
        await events.until(lambda: bool(events.of(ResponseDone)))
    assert events.of(ResponseDone)[0].text == "Never said." and len(llm.requests) == 1


async def test_a_failing_middleware_is_skipped_by_default_and_the_caller_is_answered() -> None:
    """Default policy "skip": the broken middleware is left out for that turn, one
    ErrorEvent (middleware_error) and REST carry it, the reply still comes."""
    from parley.testing import FakeLLM

    tts = FakeTTS(RATE)
    app = app_with(lambda req: CascadeEngine(FakeVAD(RATE), FakeSTT(), FakeLLM(["All good."]), tts))

    @app.response_middleware
    async def broken(text: str, ctx: MiddlewareContext) -> str:
        raise RuntimeError("decorator is down")

    async with live_call(app) as (conv, peer, events):
        await peer.send_text("how are you")
        await events.until(lambda: bool(events.of(ResponseDone)))
    assert events.of(ResponseDone)[0].status == "completed"
    assert tts.texts == ["All good."]
    (error,) = events.of(ErrorEvent)
    assert error.code == "middleware_error" and "skipped" in error.message
    assert conv.error == error


async def test_a_strict_middleware_that_fails_never_lets_unfiltered_text_through() -> None:
    """Policy "strict" (here per middleware): the turn ends with the spoken apology;
    the card number the model said is never synthesised."""
    from parley.testing import FakeLLM

    tts = FakeTTS(RATE)
    app = app_with(
        lambda req: CascadeEngine(FakeVAD(RATE), FakeSTT(), FakeLLM([f"Card {CARD}."]), tts)
    )

    class BrokenRedactor:
        async def process(self, context: MiddlewareContext, next: Any) -> MiddlewareContext:
            raise RuntimeError("redactor is down")

    app.add_middleware(BrokenRedactor(), request=False, on_error="strict")
    async with live_call(app) as (_conv, peer, events):
        await peer.send_text("what is my card")
        await events.until(lambda: bool(events.of(ResponseDone)))
    done = events.of(ResponseDone)[0]
    assert done.status == "failed" and CARD not in done.text
    assert all(CARD not in t for t in tts.texts) and tts.texts  # the apology was spoken
    assert events.of(ErrorEvent)[0].code == "middleware_error"


# -- audio preprocessor -----------------------------------------------------------------


def rms(pcm: bytes) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


async def test_audio_preprocessor_reaches_the_vad_and_the_stt() -> None:
    """A quiet caller (RMS below the VAD's threshold) is not heard; with a x10 gain
    preprocessor the same audio starts a turn and the STT gets the amplified audio."""
    from parley.testing import FakeLLM

    quiet = silence(100) + tone(600, amplitude=150) + silence(900)
    assert 0 < rms(tone(600, amplitude=150)) < 500  # FakeVAD's threshold

    def run(gain: bool) -> Parley:
        stt = FakeSTT("hello")
        app = app_with(
            lambda req: CascadeEngine(FakeVAD(RATE), stt, FakeLLM(["Hi."]), FakeTTS(RATE))
        )
        app.stt = stt  # type: ignore[attr-defined]
        if gain:

            @app.audio_preprocessor
            def louder(pcm: bytes) -> bytes:
                x = np.frombuffer(pcm, dtype="<i2").astype(np.int32) * 10
                return np.clip(x, -32768, 32767).astype("<i2").tobytes()

        return app

    plain = run(gain=False)
    assert plain.middleware.audio_chain(RATE) is None
    async with live_call(plain) as (conv, peer, events):
        # Zero-cost path: without a preprocessor, a chunk goes through the decoder's
        # own bound method, with no wrapper around it.
        assert conv._to_engine == conv._inbound.convert  # type: ignore[union-attr]
        await peer.send_audio(quiet)
        # The engine takes audio and text in order: once text typed after the audio is
        # answered, the audio has been through the VAD.
        await peer.send_text("are you there?")
        await events.until(lambda: bool(events.of(ResponseDone)))
    assert plain.stt.calls == []  # type: ignore[attr-defined]
    assert [t.text for t in events.of(TranscriptFinal)] == ["are you there?"]

    amplified = run(gain=True)
    async with live_call(amplified) as (conv, peer, events):
        await peer.send_audio(quiet)
        await events.until(lambda: bool(events.of(ResponseDone)))
    calls = amplified.stt.calls  # type: ignore[attr-defined]
    assert calls and rms(calls[-1]) > 500


# -- realtime ---------------------------------------------------------------------------


def realtime_config(up: RealtimeUpstream) -> RealtimeConfig:
    return RealtimeConfig(
        url=up.url, api_key="sk-test", connect_attempts=2, backoff_initial_s=0.01,
        connect_timeout_s=2.0,
    )  # fmt: skip


async def test_realtime_response_middleware_changes_transcripts_not_upstream_audio() -> None:
    """Response middleware applies to the transcripts (sentence by sentence: the card
    number arrives word by word and is still caught); the audio is the upstream's own
    synthesis, passed through unchanged — it cannot be redacted. Request middleware
    applies to typed text."""
    reply = f"Your card {CARD} is on file. Call 415-555-2671 if not."
    audio = bytes(range(256)) * 60  # PCM16 24 kHz, as the upstream synthesised it
    async with RealtimeUpstream() as up:
        up.script(ScriptedResponse(transcript=reply, audio=audio, chunks=12))
        app = app_with(lambda req: RealtimeEngine(realtime_config(up)))
        app.add_middleware(PIIRedactionMiddleware())
        record = app.new_record()
        engine = app.switchboard.engine_for(record, OPENAI_PCM_FORMAT)
        assert isinstance(engine, RealtimeEngine)
        events = Events()

        async def pump() -> None:
            async for ev in engine.events():
                events.items.append(ev)
                events.changed.set()

        async with asyncio.TaskGroup() as tg:
            tg.create_task(engine.run())
            tg.create_task(pump())
            await engine.send_text("my ssn is 123-45-6789")
            await events.until(lambda: bool(events.of(ResponseDone)))
            await engine.close()
        items = up.connections[0].items

    # Request middleware: the typed text went up redacted; the transcript keeps it.
    (user_item,) = [i for i in items if i.role == "user"]
    assert user_item.content[0].text == "my ssn is [redacted social security number]"  # type: ignore[index]
    assert events.of(TranscriptFinal)[0].text == "my ssn is 123-45-6789"
    # Response middleware: every text view of the reply is redacted.
    redacted = "Your card [redacted card number] is on file. Call [redacted phone number] if not."
    deltas = [d.text for d in events.of(TranscriptDelta) if d.role is Role.ASSISTANT]
    assert "".join(deltas) == redacted
    assert [e.text for e in events.of(TranscriptFinal) if e.role is Role.ASSISTANT] == [redacted]
    assert events.of(ResponseDone)[0].text == redacted
    assert engine.history[-1] == ("assistant", redacted)
    # The audio: exactly what upstream synthesised (it says the number).
    assert b"".join(d.audio for d in events.of(AudioDelta)) == audio


async def test_realtime_without_middleware_streams_word_deltas_as_before() -> None:
    async with RealtimeUpstream() as up:
        up.script(ScriptedResponse(transcript="One two three."))
        engine = RealtimeEngine(realtime_config(up))
        events = Events()

        async def pump() -> None:
            async for ev in engine.events():
                events.items.append(ev)
                events.changed.set()

        async with asyncio.TaskGroup() as tg:
            tg.create_task(engine.run())
            tg.create_task(pump())
            await engine.send_text("count")
            await events.until(lambda: bool(events.of(ResponseDone)))
            await engine.close()
    deltas = [d.text for d in events.of(TranscriptDelta) if d.role is Role.ASSISTANT]
    assert deltas == ["One", " two", " three."]

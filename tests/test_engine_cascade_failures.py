"""No silent failure: a provider that fails in a turn is an ErrorEvent and a spoken
apology, and the next turn works. The hosted providers run against the loopback
OpenAI wire server (real HTTP, the API's own error bodies); where the TTS is a
fake it is on purpose, so the apology's audio can be checked byte for byte."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from parley.engines.cascade import DEFAULT_APOLOGY, CascadeConfig, CascadeEngine
from parley.engines.reply import failure_event
from parley.errors import AuthError, ProviderError, RateLimited
from parley.events import (
    AudioDelta,
    ErrorEvent,
    Event,
    ResponseDone,
    Role,
    ToolCall,
    ToolResult,
    TranscriptFinal,
)
from parley.providers.openai_audio import OpenAISTT, OpenAITTS
from parley.providers.openai_llm import OpenAILLM
from parley.providers.seams import LLM, STT, TTS, ToolSpec
from parley.testing import (
    EventLog,
    FakeLLM,
    FakeSTT,
    FakeTTS,
    FakeVAD,
    OpenAIWireServer,
    ScriptedError,
    ScriptedReply,
    silence,
    split_words,
    tone,
    tone_pcm16,
)

RATE = 16000


@asynccontextmanager
async def running(engine: CascadeEngine) -> AsyncIterator[EventLog]:
    log = EventLog(engine)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(engine.run())
        tg.create_task(log.collect())
        yield log
        await engine.close()


def engine(llm: LLM, *, stt: STT | None = None, tts: TTS | None = None, **kw: Any) -> CascadeEngine:
    return CascadeEngine(FakeVAD(RATE), stt or FakeSTT("Hello."), llm, tts or FakeTTS(RATE), **kw)


def reply_of(log: EventLog, rid: str) -> list[Event]:
    """The events of reply ``rid`` plus every ErrorEvent, in order."""
    return [
        e for e in log.events if isinstance(e, ErrorEvent) or getattr(e, "response_id", None) == rid
    ]


def shape(events: list[Event]) -> list[str]:
    """Event kinds with runs of AudioDelta/TextDelta collapsed."""
    out: list[str] = []
    for e in events:
        name = type(e).__name__
        if not out or out[-1] != name or name not in ("AudioDelta", "TextDelta"):
            out.append(name)
    return out


def audio(events: list[Event]) -> bytes:
    return b"".join(e.audio for e in events if isinstance(e, AudioDelta))


async def heard_all(log: EventLog) -> None:
    """The transport reports the last reply played to the end (no barge-in next)."""
    done = log.of(ResponseDone)[-1]
    await log.engine.report_playback(done.response_id, 1e9)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def utterance() -> bytes:
    return silence(100) + tone(600) + silence(900)


# -- the LLM --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "fragment"),
    [
        (ScriptedError(500, "the model fell over"), "HTTP 500"),
        (ScriptedError(503, "overloaded"), "HTTP 503"),
        (ScriptedError(401, "Incorrect API key provided"), "HTTP 401"),
        (ScriptedError(429, "Rate limit reached"), "HTTP 429"),
    ],
)
async def test_an_llm_http_error_is_an_apology_and_the_next_turn_works(
    failure: ScriptedError, fragment: str
) -> None:
    tts = FakeTTS(RATE)
    async with OpenAIWireServer() as server:
        server.script(failure, ScriptedReply(text=split_words("Back again. How can I help?")))
        llm = OpenAILLM("gpt-4o-mini", base_url=server.openai_base_url, max_retries=0)
        async with running(engine(llm, tts=tts)) as log:
            await log.engine.send_text("Hello?")
            await log.until(lambda: bool(log.of(ResponseDone)), 15)
            await heard_all(log)
            await log.engine.send_text("Are you there?")
            await log.until(lambda: len(log.of(ResponseDone)) == 2, 15)
        await llm.aclose()
    first, second = log.of(ResponseDone)
    events = reply_of(log, first.response_id)
    assert shape(events) == ["ResponseStarted", "ErrorEvent", "TextDelta", "AudioDelta",
                             "ResponseDone"]  # fmt: skip
    (error,) = log.of(ErrorEvent)
    assert error.code == "provider_error" and not error.fatal
    assert fragment in error.message and "LLM (openai)" in error.message
    assert (first.status, first.text) == ("failed", DEFAULT_APOLOGY)
    # What the caller got is the TTS's rendering of the apology, all of it.
    assert audio(events) == tone(tts.duration_ms(DEFAULT_APOLOGY), RATE)
    assert tts.texts[0] == DEFAULT_APOLOGY
    # The call went on: the next turn was answered, and the model saw what was heard.
    assert (second.status, second.text) == ("completed", "Back again. How can I help?")
    messages = server.chat_requests[1]["messages"]
    assert messages[-3:] == [
        {"role": "user", "content": "Hello?"},
        {"role": "assistant", "content": DEFAULT_APOLOGY},
        {"role": "user", "content": "Are you there?"},
    ]


async def test_an_unreachable_llm_endpoint_is_an_apology() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    llm = OpenAILLM("gpt-4o-mini", base_url=url, max_retries=0, timeout=5)
    async with running(engine(llm)) as log:
        await log.engine.send_text("Hello?")
        await log.until(lambda: bool(log.of(ResponseDone)), 15)
    await llm.aclose()
    (error,) = log.of(ErrorEvent)
    assert error.code == "provider_error" and "connection failed" in error.message
    (done,) = log.of(ResponseDone)
    assert (done.status, done.text) == ("failed", DEFAULT_APOLOGY)
    assert audio(reply_of(log, done.response_id))


async def test_an_llm_failing_mid_stream_keeps_what_was_said_then_apologises() -> None:
    tts = FakeTTS(RATE)
    async with OpenAIWireServer() as server:
        server.script(
            ScriptedReply(
                text=split_words("Let me check. Your order is on"),
                error_after=ScriptedError(500, "stream broke"),
            )
        )
        llm = OpenAILLM("gpt-4o-mini", base_url=server.openai_base_url, max_retries=0)
        async with running(engine(llm, tts=tts)) as log:
            await log.engine.send_text("Where is my order?")
            await log.until(lambda: bool(log.of(ResponseDone)), 15)
            history = log.engine.history
        await llm.aclose()
    (error,) = log.of(ErrorEvent)
    assert error.code == "provider_error" and "stream broke" in error.message
    (done,) = log.of(ResponseDone)
    # The finished clause was spoken, the half sentence was not, the apology was.
    assert (done.status, done.text) == ("failed", f"Let me check. {DEFAULT_APOLOGY}")
    assert tts.texts == ["Let me check.", DEFAULT_APOLOGY]
    events = reply_of(log, done.response_id)
    assert [e.text for e in events if isinstance(e, AudioDelta) and e.text] == tts.texts
    assert events.index(error) < next(
        i for i, e in enumerate(events) if isinstance(e, AudioDelta) and e.text == DEFAULT_APOLOGY
    )
    assert history[-1].role is Role.ASSISTANT and history[-1].content == done.text


async def test_a_reply_with_no_text_is_an_apology_not_silence() -> None:
    async with OpenAIWireServer() as server:
        server.script(ScriptedReply(text=()))  # a stream with an empty answer
        llm = OpenAILLM("gpt-4o-mini", base_url=server.openai_base_url, max_retries=0)
        async with running(engine(llm)) as log:
            await log.engine.send_text("Hello?")
            await log.until(lambda: bool(log.of(ResponseDone)), 15)
        await llm.aclose()
    (error,) = log.of(ErrorEvent)
    assert error.code == "empty_reply"
    (done,) = log.of(ResponseDone)
    assert (done.status, done.text) == ("failed", DEFAULT_APOLOGY)
    assert audio(reply_of(log, done.response_id))


async def test_an_empty_apology_text_reports_the_failure_without_speaking() -> None:
    tts = FakeTTS(RATE)
    llm = FakeLLM(error=ProviderError("down", provider="fake"))
    cfg = CascadeConfig(apology_text="")
    async with running(engine(llm, tts=tts, config=cfg)) as log:
        await log.engine.send_text("Hello?")
        await log.until(lambda: bool(log.of(ResponseDone)))
    (done,) = log.of(ResponseDone)
    assert (done.status, done.text) == ("failed", "") and tts.texts == []
    assert [e.code for e in log.of(ErrorEvent)] == ["provider_error"]
    assert [m.role for m in log.engine.history] == [Role.USER]


# -- the STT --------------------------------------------------------------------------------


async def test_an_stt_error_is_an_apology_and_the_next_turn_is_heard() -> None:
    tts = FakeTTS(RATE)
    async with OpenAIWireServer() as server:
        server.script_transcripts(ScriptedError(500, "transcriber down"), "Are you there?")
        server.script(ScriptedReply(text=split_words("Yes, I am here.")))
        stt = OpenAISTT("whisper-1", base_url=server.openai_base_url, max_retries=0)
        llm = OpenAILLM("gpt-4o-mini", base_url=server.openai_base_url, max_retries=0)
        async with running(engine(llm, stt=stt, tts=tts)) as log:
            await feed(log.engine, utterance())
            await log.until(lambda: bool(log.of(ResponseDone)), 15)
            await heard_all(log)
            await feed(log.engine, utterance())
            await log.until(lambda: len(log.of(ResponseDone)) == 2, 15)
        await stt.aclose()
        await llm.aclose()
        uploads = server.requests_to("/v1/audio/transcriptions")
    first, second = log.of(ResponseDone)
    events = reply_of(log, first.response_id)
    # The turn ends: an empty user transcript, the error, then the apology as a reply.
    assert shape(events) == ["ErrorEvent", "ResponseStarted", "TextDelta", "AudioDelta",
                             "ResponseDone"]  # fmt: skip
    (error,) = log.of(ErrorEvent)
    assert error.code == "stt_failed" and "HTTP 500" in error.message
    assert (first.status, first.text) == ("failed", DEFAULT_APOLOGY)
    assert audio(events) == tone(tts.duration_ms(DEFAULT_APOLOGY), RATE)
    assert [t.text for t in log.of(TranscriptFinal)] == ["", "Are you there?"]
    assert (second.status, second.text) == ("completed", "Yes, I am here.")
    assert len(uploads) == 2 and all(u.files["file"].data[:4] == b"RIFF" for u in uploads)


async def feed(target: CascadeEngine, pcm: bytes) -> None:
    step = 2 * RATE * 20 // 1000
    for i in range(0, len(pcm), step):
        await target.send_audio(pcm[i : i + step])


# -- the TTS --------------------------------------------------------------------------------


async def test_a_failing_tts_apologises_with_the_fallback_voice() -> None:
    fallback = FakeTTS(22050)  # a local voice at its own rate (Piper's)
    first_clause = tone_pcm16(0.5)
    async with OpenAIWireServer() as server:
        server.script(ScriptedReply(text=split_words("One moment. I am looking it up now.")))
        server.script_speech(first_clause, ScriptedError(500, "speech backend down"))
        llm = OpenAILLM("gpt-4o-mini", base_url=server.openai_base_url, max_retries=0)
        tts = OpenAITTS("tts-1", base_url=server.openai_base_url, max_retries=0)
        async with running(engine(llm, tts=tts, apology_tts=fallback)) as log:
            await log.engine.send_text("Where is it?")
            await log.until(lambda: bool(log.of(ResponseDone)), 15)
        await llm.aclose()
        await tts.aclose()
    (error,) = log.of(ErrorEvent)
    assert error.code == "tts_failed" and "speech backend down" in error.message
    (done,) = log.of(ResponseDone)
    # The first clause was heard in the hosted voice, the apology in the local one.
    assert (done.status, done.text) == ("failed", f"One moment. {DEFAULT_APOLOGY}")
    deltas = [e for e in reply_of(log, done.response_id) if isinstance(e, AudioDelta)]
    hosted = b"".join(d.audio for d in deltas if d.sample_rate == 24000)
    local = b"".join(d.audio for d in deltas if d.sample_rate == 22050)
    assert hosted == first_clause
    assert local == tone(fallback.duration_ms(DEFAULT_APOLOGY), 22050)
    assert fallback.texts == [DEFAULT_APOLOGY]
    assert log.engine.history[-1].content == done.text


async def test_a_failing_tts_without_a_fallback_still_ends_the_reply() -> None:
    tts = FakeTTS(RATE, error=ProviderError("tts down", provider="fake"))
    async with running(engine(FakeLLM(["Hello there."]), tts=tts)) as log:
        await log.engine.send_text("Hi")
        await log.until(lambda: bool(log.of(ResponseDone)))
        tts.error = None
        await heard_all(log)
        await log.engine.send_text("Hi again")
        await log.until(lambda: len(log.of(ResponseDone)) == 2)
    first, second = log.of(ResponseDone)
    assert [e.code for e in log.of(ErrorEvent)] == ["tts_failed"]
    assert (first.status, first.text) == ("failed", DEFAULT_APOLOGY)
    assert not audio(reply_of(log, first.response_id))
    assert second.status == "completed" and audio(reply_of(log, second.response_id))


async def test_the_apology_falls_back_when_the_main_voice_fails_on_it() -> None:
    """The LLM fails, then the main TTS fails on the apology too: two failures, two
    ErrorEvents, and the fallback voice speaks."""
    tts = FakeTTS(RATE, error=ProviderError("tts down", provider="fake"))
    fallback = FakeTTS(RATE, ms_per_char=10)
    llm = FakeLLM(error=ProviderError("llm down", provider="fake"))
    async with running(engine(llm, tts=tts, apology_tts=fallback)) as log:
        await log.engine.send_text("Hi")
        await log.until(lambda: bool(log.of(ResponseDone)))
    assert [e.code for e in log.of(ErrorEvent)] == ["provider_error", "tts_failed"]
    (done,) = log.of(ResponseDone)
    assert audio(reply_of(log, done.response_id)) == tone(fallback.duration_ms(DEFAULT_APOLOGY))


@pytest.mark.slow
async def test_the_fallback_apology_is_real_speech() -> None:
    """Hosted TTS down → the local Piper voice says the apology; Whisper hears it."""
    import numpy as np
    import soxr

    from parley.providers.piper import PiperTTS
    from parley.providers.whisper import WhisperSTT

    piper, whisper = PiperTTS(), WhisperSTT()
    async with OpenAIWireServer() as server:
        server.script(ScriptedReply(text=split_words("Here you go.")))
        server.script_speech(ScriptedError(503, "no voices today"))
        llm = OpenAILLM("gpt-4o-mini", base_url=server.openai_base_url, max_retries=0)
        tts = OpenAITTS("tts-1", base_url=server.openai_base_url, max_retries=0)
        async with running(engine(llm, tts=tts, apology_tts=piper)) as log:
            await log.engine.send_text("Hi")
            await log.until(lambda: bool(log.of(ResponseDone)), 60)
        await llm.aclose()
        await tts.aclose()
    (done,) = log.of(ResponseDone)
    deltas = [e for e in reply_of(log, done.response_id) if isinstance(e, AudioDelta)]
    assert deltas and {d.sample_rate for d in deltas} == {piper.sample_rate}
    pcm = np.frombuffer(b"".join(d.audio for d in deltas), dtype="<i2")
    at_16k = soxr.resample(pcm, piper.sample_rate, 16000).astype("<i2").tobytes()
    heard = (await whisper.transcribe(at_16k)).text.lower()
    words = " ".join(re.findall(r"[a-z']+", heard))
    assert "sorry" in words and "something went wrong" in words, heard


# -- text hooks, tools, the error codes ----------------------------------------------------


async def test_a_failing_request_hook_is_an_apology() -> None:
    async def strict(text: str) -> str:
        raise AuthError("no token")

    llm = FakeLLM(["Never said."])
    eng = engine(llm)
    eng.set_text_hooks(request=strict)
    async with running(eng) as log:
        await eng.send_text("Hello?")
        await log.until(lambda: bool(log.of(ResponseDone)))
    (error,) = log.of(ErrorEvent)
    assert error.code == "auth_error" and llm.requests == []
    (done,) = log.of(ResponseDone)
    assert shape(reply_of(log, done.response_id)) == [
        "ErrorEvent", "ResponseStarted", "TextDelta", "AudioDelta", "ResponseDone"
    ]  # fmt: skip
    assert done.status == "failed"


class _Lookup:
    """A tool that notes how much of the reply had been synthesised when it ran."""

    def __init__(self, tts: SlowTTS) -> None:
        self.tts = tts
        self.seen_done: list[str] = []

    @property
    def specs(self) -> list[ToolSpec]:
        return [ToolSpec("lookup", "Look it up.", {"type": "object", "properties": {}})]

    async def run(self, call: ToolCall) -> ToolResult:
        self.seen_done = list(self.tts.finished)
        return ToolResult(call.call_id, call.name, '{"found": true}')


class SlowTTS(FakeTTS):
    """FakeTTS that records each text once its last chunk is out."""

    def __init__(self) -> None:
        super().__init__(RATE, delay_s=0.01)
        self.finished: list[str] = []

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        async for chunk in super().synthesize(text):
            yield chunk
        self.finished.append(text)


async def test_speech_before_a_tool_call_is_all_spoken_before_the_tool_runs() -> None:
    tts = SlowTTS()
    tools = _Lookup(tts)
    llm = FakeLLM([["Let me look that up for you.", ToolCall("c1", "lookup", "{}")], "Found it."])
    async with running(engine(llm, tts=tts, tools=tools)) as log:
        await log.engine.send_text("Find it")
        await log.until(lambda: bool(log.of(ResponseDone)))
    assert tools.seen_done == ["Let me look that up for you."]
    assert log.of(ResponseDone)[0].text == "Let me look that up for you. Found it."


def test_error_codes_come_from_the_error_then_the_stage() -> None:
    assert failure_event(AuthError("bad key"), "llm").code == "auth_error"
    assert failure_event(RateLimited("slow down"), "tts").code == "rate_limited"
    assert failure_event(ProviderError("x", provider="p"), "stt").code == "stt_failed"
    assert failure_event(ProviderError("x"), "tts").code == "tts_failed"
    llm = failure_event(ProviderError("x", provider="openai"), "llm")
    assert (llm.code, llm.message, llm.fatal) == ("provider_error", "LLM (openai) failed: x", False)

"""CascadeEngine with the deterministic fakes: turn flow, speculative STT, barge-in,
tools, context updates, bounded input. Real models are in test_e2e_offline.py."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import Enum
from typing import Any, Literal

import numpy as np
import pytest

from parley.conversation.tools import ToolError, ToolRegistry, tool_spec
from parley.endpointing import EndpointConfig
from parley.engines import CascadeConfig, CascadeEngine, Engine
from parley.errors import ConfigError, ProviderError
from parley.events import (
    AudioDelta,
    ContextInjected,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    Role,
    ToolCall,
    ToolResult,
    TranscriptFinal,
    TurnMetrics,
    UserSpeechStarted,
    UserSpeechStopped,
)
from parley.testing.events import EventLog
from parley.testing.fakes import FakeLLM, FakeSTT, FakeTTS, FakeVAD, silence, tone, tool_call
from parley.turns import TurnConfig
from waits import WatchedSTT

RATE = 16000


class Run(EventLog):
    """An engine running in the background, with every event it emitted so far."""

    engine: CascadeEngine

    async def feed(self, pcm: bytes, *, chunk_ms: int = 20, pace: float = 0.0) -> None:
        step = 2 * RATE * chunk_ms // 1000
        for i in range(0, len(pcm), step):
            await self.engine.send_audio(pcm[i : i + step])
            await asyncio.sleep(pace)  # a caller's pacing; 0 only lets the engine run


@asynccontextmanager
async def running(engine: CascadeEngine) -> AsyncIterator[Run]:
    run = Run(engine)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(engine.run())
        tg.create_task(run.collect())
        yield run
        await engine.close()


def make(
    stt: FakeSTT | None = None,
    llm: FakeLLM | None = None,
    tts: FakeTTS | None = None,
    config: CascadeConfig | None = None,
    **kw: Any,
) -> CascadeEngine:
    return CascadeEngine(
        FakeVAD(RATE), stt or FakeSTT("hello there"), llm or FakeLLM(), tts or FakeTTS(RATE),
        config, **kw,
    )  # fmt: skip


def utterance(ms: float = 600) -> bytes:
    return silence(100) + tone(ms) + silence(900)


async def test_engine_satisfies_the_seam() -> None:
    assert isinstance(make(), Engine)


async def test_one_spoken_turn_produces_the_whole_event_flow() -> None:
    stt = FakeSTT("what time is it")
    llm = FakeLLM(["It is noon. Anything else?"])
    async with running(make(stt, llm)) as run:
        await run.feed(utterance())
        await run.until(lambda: bool(run.of(ResponseDone)))
    kinds = [type(e) for e in run.events]
    order = [UserSpeechStarted, UserSpeechStopped, TranscriptFinal, ResponseStarted, AudioDelta]
    assert [k for k in kinds if k in order][:5] == order
    assert run.of(TranscriptFinal)[0].text == "what time is it"
    done = run.of(ResponseDone)[0]
    assert done.status == "completed" and done.text == "It is noon. Anything else?"
    deltas = run.of(AudioDelta)
    # Each clause is synthesised on its own; the text rides on its first chunk.
    assert [d.text for d in deltas if d.text] == ["It is noon.", "Anything else?"]
    assert all(d.sample_rate == RATE for d in deltas)
    assert [m.role for m in run.engine.history] == [Role.USER, Role.ASSISTANT]
    (metrics,) = run.of(TurnMetrics)
    assert metrics.turn_index == 1 and metrics.voice_to_voice_ms is not None
    assert metrics.stt_ms is not None and metrics.tts_first_byte_ms is not None
    assert metrics.extra["speculative_stt_hit"] == 1.0


async def test_speculative_transcript_is_reused_when_no_speech_follows() -> None:
    stt = FakeSTT("hello")
    async with running(make(stt)) as run:
        await run.feed(utterance())
        await run.until(lambda: bool(run.of(ResponseDone)))
    assert len(stt.calls) == 1  # transcribed once, at the pause, never again


async def test_speech_after_a_short_pause_discards_the_speculation() -> None:
    stt = WatchedSTT(["my number is", "my number is five five five"])
    async with running(make(stt)) as run:
        # 300 ms pause: past the speculative silence, short of the end of turn.
        await run.feed(silence(100) + tone(500) + silence(300))
        await stt.watch.until(lambda: stt.returned >= 1)  # the speculation on the pause
        assert len(stt.calls) == 1
        # Ending on a number, the turn waits the longer "incomplete" silence.
        await run.feed(tone(500) + silence(1200))
        await run.until(lambda: bool(run.of(ResponseDone)))
    assert len(run.of(UserSpeechStarted)) == 1
    assert len(stt.calls) >= 2 and len(stt.calls[-1]) > len(stt.calls[0])
    assert run.of(TranscriptFinal)[0].text == "my number is five five five"
    assert run.of(TurnMetrics)[0].extra["speculative_stt_hit"] == 1.0


def endpointing(mode: str = "transcript") -> CascadeConfig:
    turn = TurnConfig(end_of_turn_silence_ms=640, speculative_silence_ms=96)
    return CascadeConfig(
        turn=turn,
        endpointing=EndpointConfig(mode=mode, complete_wait_ms=256, incomplete_wait_ms=960),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("mode", ["transcript", "acoustic"])
async def test_finished_sentence_ends_the_turn_before_the_acoustic_wait(mode: str) -> None:
    stt = WatchedSTT("What time is it?")
    async with running(make(stt, config=endpointing(mode))) as run:
        # 400 ms of silence, then the audio stops: short of the 640 ms acoustic wait.
        await run.feed(silence(100) + tone(600) + silence(400))
        if mode == "acoustic":
            await stt.watch.until(lambda: stt.returned == 1)  # the complete sentence is in
            assert not run.of(UserSpeechStopped)  # the acoustic wait is not over
            await run.feed(silence(400))
        await run.until(lambda: bool(run.of(ResponseDone)))
    (metrics,) = run.of(TurnMetrics)
    assert len(stt.calls) == 1 and metrics.extra["speculative_stt_hit"] == 1.0
    assert metrics.extra["speculative_stt_runs"] == 1.0
    if mode == "transcript":
        assert metrics.extra["endpoint_verdict"] == 1.0
        assert metrics.extra["end_of_turn_wait_ms"] == 256.0
    else:
        assert "endpoint_verdict" not in metrics.extra
        assert metrics.extra["end_of_turn_wait_ms"] == 640.0


@pytest.mark.parametrize("mode", ["transcript", "acoustic"])
async def test_trailing_number_waits_longer_than_the_acoustic_wait(mode: str) -> None:
    stt = WatchedSTT(["My number is", "My number is 555-1234."])
    turns = 1 if mode == "transcript" else 2

    def answered() -> bool:  # every turn transcribed and the last one answered
        at = [i for i, e in enumerate(run.events) if isinstance(e, TranscriptFinal)]
        return len(at) == turns and any(isinstance(e, ResponseDone) for e in run.events[at[-1] :])

    async with running(make(stt, config=endpointing(mode))) as run:
        await run.feed(silence(100) + tone(600) + silence(200))
        # The speculative transcript is in (it is judged before the next frame).
        await stt.watch.until(lambda: stt.returned == 1)
        await run.feed(silence(600) + tone(500) + silence(200))  # an 800 ms pause
        await stt.watch.until(lambda: stt.returned == 2)  # the second pause's transcript
        await run.feed(silence(1000))
        await run.until(answered)
    finals = [t.text for t in run.of(TranscriptFinal)]
    if mode == "transcript":
        assert finals == ["My number is 555-1234."]  # one turn: the pause was not its end
        metrics = run.of(TurnMetrics)[0]
        # The number is judged incomplete too: its end waits the long wait.
        assert metrics.extra["end_of_turn_wait_ms"] == 960.0
        assert metrics.extra["endpoint_verdict"] == -1.0
        assert metrics.extra["speculative_stt_runs"] == 2.0
    else:
        assert finals == ["My number is", "My number is 555-1234."]  # cut at the pause


async def test_transcript_after_speech_resumed_changes_nothing() -> None:
    stt = WatchedSTT(["What time is it?", "What time is it at the"], delay_s=0.15)
    async with running(make(stt, config=endpointing())) as run:
        await run.feed(silence(100) + tone(600) + silence(160))
        await stt.watch.until(lambda: len(stt.calls) == 1)  # the first run is under way
        await run.feed(tone(400) + silence(400))  # speech resumed: that run is stale
        # Had the stale "complete" transcript counted, 400 ms > 256 ms would end the turn.
        await stt.watch.until(lambda: stt.returned == 1)  # the second run's; the first was dropped
        assert len(stt.calls) == 2
        assert not run.of(UserSpeechStopped)
        await run.feed(silence(700))
        await run.until(lambda: bool(run.of(ResponseDone)))
    assert [t.text for t in run.of(TranscriptFinal)] == ["What time is it at the"]
    assert run.of(TurnMetrics)[0].extra["end_of_turn_wait_ms"] == 960.0


async def test_barge_in_keeps_only_the_heard_text() -> None:
    reply = "One two three four five. Six seven eight nine ten. Eleven twelve thirteen."
    tts = FakeTTS(RATE, ms_per_char=50)  # "One two three four five." ≈ 1.2 s
    async with running(make(llm=FakeLLM([reply]), tts=tts)) as run:
        await run.feed(utterance())
        await run.until(lambda: bool(run.of(ResponseDone)))
        rid = run.of(ResponseStarted)[0].response_id
        # The phone played the first sentence and 40 % of the second one.
        first = len("One two three four five.") * 50
        second = len("Six seven eight nine ten.") * 50
        await run.engine.report_playback(rid, first + 0.4 * second)
        await run.feed(tone(300) + silence(100))
        await run.until(lambda: bool(run.of(Interrupted)))
    (cut,) = run.of(Interrupted)
    assert cut.response_id == rid
    assert cut.played_text == "One two three four five. Six seven"
    assert cut.played_ms == pytest.approx(first + 0.4 * second)
    assert run.engine.history[-1] == run.engine.history[1]
    assert run.engine.history[1].content == cut.played_text
    assert isinstance(run.events[run.events.index(cut) + 1], UserSpeechStarted)


class HeldTTS:
    """FakeTTS's audio, but every clause after the first waits for ``go``: a TTS slower
    than playback, so the caller hears all that was sent before the next clause."""

    def __init__(self) -> None:
        self.inner = FakeTTS(RATE, ms_per_char=50)
        self.go = asyncio.Event()
        self.waiting = asyncio.Event()

    @property
    def sample_rate(self) -> int:
        return self.inner.sample_rate

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if self.inner.texts:
            self.waiting.set()
            await self.go.wait()
        async for pcm in self.inner.synthesize(text):
            yield pcm


async def test_barge_in_while_the_next_clause_is_synthesised_keeps_only_what_played() -> None:
    # The first clause has played to its end and the second has no audio yet: the
    # caller heard the first only (the second's text once counted as heard).
    tts = HeldTTS()
    engine = CascadeEngine(
        FakeVAD(RATE), FakeSTT("hello there"), FakeLLM(["One two three. Four five six."]), tts
    )
    async with running(engine) as run:
        await run.feed(utterance())
        await asyncio.wait_for(tts.waiting.wait(), 5)  # clause two is being made
        rid = run.of(ResponseStarted)[0].response_id
        await run.engine.report_playback(rid, len("One two three.") * 50)  # all of clause one
        await run.feed(tone(300) + silence(100))
        await run.until(lambda: bool(run.of(Interrupted)))
        tts.go.set()
    (cut,) = run.of(Interrupted)
    assert cut.played_text == "One two three."
    assert run.engine.history[1].content == "One two three."


async def test_barge_in_during_generation_cancels_llm_and_tts_at_once() -> None:
    words = " ".join(f"word{i}." for i in range(200))
    llm = FakeLLM([words], delay_s=0.01)
    tts = FakeTTS(RATE, ms_per_char=50)
    async with running(make(llm=llm, tts=tts)) as run:
        await run.feed(utterance())
        await run.until(lambda: bool(run.of(AudioDelta)))
        rid = run.of(ResponseStarted)[0].response_id
        await run.engine.report_playback(rid, 0.0)
        await run.feed(tone(300))
        await run.until(lambda: bool(run.of(Interrupted)))
        n_audio, n_tts = len(run.of(AudioDelta)), len(tts.texts)
        # A window, not a wait: a reply still running would add a word every 10 ms.
        await asyncio.sleep(0.2)
        assert len(run.of(AudioDelta)) == n_audio and len(tts.texts) == n_tts
    assert len(llm.requests) == 1 and len(tts.texts) < 20
    done = [d for d in run.of(ResponseDone) if d.response_id == rid]
    assert done and done[0].status == "cancelled"
    assert run.of(Interrupted)[0].played_text == ""
    assert [m.role for m in run.engine.history] == [Role.USER]  # nothing was heard


async def test_typed_text_is_answered() -> None:
    async with running(make(llm=FakeLLM(["Hi."]))) as run:
        await run.engine.send_text("hello")
        await run.until(lambda: bool(run.of(ResponseDone)))
    assert run.of(TranscriptFinal)[0].text == "hello"
    assert run.of(TurnMetrics)[0].voice_to_voice_ms is None  # no speech to measure from


async def test_empty_transcript_gives_no_reply() -> None:
    llm = FakeLLM(["Hi."])
    async with running(make(FakeSTT(""), llm)) as run:
        await run.feed(utterance())
        await run.until(lambda: bool(run.of(TranscriptFinal)))
        assert run.of(TranscriptFinal)[0].text == ""
        # The engine has moved on when typed text after the empty turn is answered.
        await run.engine.send_text("hello")
        await run.until(lambda: bool(run.of(ResponseDone)))
    assert len(llm.requests) == 1 and llm.requests[0][0][-1].content == "hello"
    (started,) = run.of(ResponseStarted)
    assert run.of(ResponseDone)[0].response_id == started.response_id


def get_weather(city: str, unit: str = "celsius") -> dict[str, Any]:
    """Current weather for a city.

    Args:
        city: The city name.
        unit: celsius or fahrenheit.
    """
    if city == "Atlantis":
        raise ToolError("no such city")
    return {"city": city, "temp": 21, "unit": unit}


async def test_tool_calls_run_and_their_results_go_back_to_the_llm() -> None:
    tools = ToolRegistry([get_weather])
    llm = FakeLLM(
        [[tool_call("get_weather", '{"city": "Paris"}', "call_7")], "It is 21 degrees in Paris."]
    )
    async with running(make(llm=llm, tools=tools)) as run:
        await run.engine.send_text("weather in Paris?")
        await run.until(lambda: bool(run.of(ResponseDone)))
    assert run.of(ToolCall)[0].name == "get_weather"
    (result,) = run.of(ToolResult)
    assert json.loads(result.output) == {"city": "Paris", "temp": 21, "unit": "celsius"}
    assert [t.name for t in llm.requests[0][1]] == ["get_weather"]
    second = llm.requests[1][0]
    assert second[-2].tool_calls[0].call_id == "call_7"
    assert second[-1].role is Role.TOOL and second[-1].tool_call_id == "call_7"
    assert run.of(ResponseDone)[0].text == "It is 21 degrees in Paris."
    assert run.engine.history[-1].content == "It is 21 degrees in Paris."


async def test_context_and_instructions_apply_to_the_next_call_without_interrupting() -> None:
    llm = FakeLLM(["First answer is rather long. It goes on.", "Second."], delay_s=0.02)
    engine = make(llm=llm, config=CascadeConfig(instructions="Be brief."))
    async with running(engine) as run:
        await engine.send_text("one")
        await run.until(lambda: bool(run.of(AudioDelta)))
        await engine.inject_context("order", {"id": 1})
        await engine.inject_context("order", {"id": 2})  # the newer value replaces it
        await engine.update(instructions="Be kind.")
        await run.until(lambda: bool(run.of(ResponseDone)))
        assert run.of(ResponseDone)[0].status == "completed"
        assert not run.of(Interrupted)
        await engine.send_text("two")
        await run.until(lambda: len(run.of(ResponseDone)) == 2)
    first_system, second_system = llm.requests[0][0][0], llm.requests[1][0][0]
    assert first_system.content == "Be brief."
    assert second_system.role is Role.SYSTEM
    assert second_system.content.startswith("Be kind.")
    assert '{"id": 2}' in second_system.content and '{"id": 1}' not in second_system.content
    (injected,) = run.of(ContextInjected)
    assert injected.key == "order" and injected.latency_ms >= 0


async def test_a_failing_provider_fails_the_reply_not_the_call() -> None:
    # Complete sentences: number words would be judged unfinished and wait longer.
    stt = FakeSTT(["Hello there.", "Are you back?"])
    llm = FakeLLM(error=ProviderError("llm down", provider="fake"))
    async with running(make(stt, llm)) as run:
        await run.feed(utterance())
        await run.until(lambda: bool(run.of(ResponseDone)))
        assert run.of(ResponseDone)[0].status == "failed"
        llm.error = None
        await run.feed(utterance())
        await run.until(lambda: len(run.of(ResponseDone)) == 2)
    assert run.of(ResponseDone)[1].status == "completed"


async def test_input_queue_is_bounded_and_drops_are_counted() -> None:
    engine = make(config=CascadeConfig(input_queue_chunks=10))
    for _ in range(25):  # nothing consumes: not running
        await engine.send_audio(silence(20))
    assert engine.dropped_audio_chunks == 15


async def test_vad_runs_off_the_event_loop_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: set[str] = set()
    calls = 0

    class Recording(FakeVAD):
        def stream(self) -> Any:
            inner = super().stream()
            outer = self

            class S:
                frame_bytes = inner.frame_bytes

                def probability(self, frame: bytes) -> float:
                    threads.add(threading.current_thread().name)
                    return inner.probability(frame)

                def reset(self) -> None:
                    inner.reset()

            del outer
            return S()

    import parley.engines.speech as speech

    original = speech._score

    def counting(stream: Any, frames: list[bytes]) -> list[float]:
        nonlocal calls
        calls += 1
        return original(stream, frames)

    monkeypatch.setattr(speech, "_score", counting)
    engine = CascadeEngine(Recording(RATE), FakeSTT(), FakeLLM(), FakeTTS(RATE))
    async with running(engine) as run:
        await engine.send_audio(utterance())  # one 1.6 s chunk = 50 VAD frames
        await run.until(lambda: bool(run.of(ResponseDone)))
    assert threading.main_thread().name not in threads and threads
    assert calls == 1


async def test_a_phone_rate_vad_hands_the_stt_the_utterance_at_its_rate() -> None:
    # A phone call: the VAD hears the line's 8 kHz; the STT gets each utterance once,
    # upsampled to its 16 kHz — the same tone, twice the samples.
    stt = FakeSTT("hello")
    engine = CascadeEngine(FakeVAD(8000), stt, FakeLLM(), FakeTTS(RATE))
    assert engine.input_format.sample_rate == 8000
    async with running(engine) as run:
        pcm8 = silence(100, 8000) + tone(600, 8000, freq=1000.0) + silence(900, 8000)
        for i in range(0, len(pcm8), 320):  # 20 ms chunks at 8 kHz
            await engine.send_audio(pcm8[i : i + 320])
        await run.until(lambda: bool(run.of(ResponseDone)))
    (turn,) = run.of(UserSpeechStopped)
    heard = stt.calls[-1]
    x = np.frombuffer(heard, "<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x))
    peak_hz = np.argmax(spectrum) * 16000 / len(x)
    assert abs(peak_hz - 1000) < 10  # the tone, at the STT's rate
    rms = float(np.sqrt(np.mean(x[np.abs(x) > 0] ** 2)))
    assert 0.6 * 8000 / np.sqrt(2) < rms < 1.1 * 8000 / np.sqrt(2)
    assert 600 <= len(heard) / 32 <= 1600  # ms of 16 kHz audio
    assert turn.audio_ms > 600


# -- the tool registry ---------------------------------------------------------------------


def test_tool_spec_comes_from_hints_and_docstring() -> None:
    spec = tool_spec(get_weather)
    assert spec.name == "get_weather"
    assert spec.description == "Current weather for a city."
    assert spec.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city name."},
            "unit": {"type": "string", "description": "celsius or fahrenheit."},
        },
        "required": ["city"],
    }


class Size(Enum):
    S = "s"
    L = "l"


def sized(
    n: int, xs: list[float], mode: Literal["a", "b"], size: Size, flag: bool | None = None
) -> None:
    """Do it."""


def test_tool_spec_types() -> None:
    f = sized
    props = tool_spec(f).parameters["properties"]
    assert props["n"] == {"type": "integer"}
    assert props["xs"] == {"type": "array", "items": {"type": "number"}}
    assert props["mode"] == {"enum": ["a", "b"]}
    assert props["size"] == {"enum": ["s", "l"]}
    assert props["flag"] == {"type": "boolean"}
    assert tool_spec(f).parameters["required"] == ["n", "xs", "mode", "size"]

    def untyped(x):  # type: ignore[no-untyped-def]
        """No hints."""

    with pytest.raises(ConfigError):
        tool_spec(untyped)


async def test_tool_registry_reports_errors_to_the_model() -> None:
    tools = ToolRegistry()

    @tools.register(name="weather")
    async def weather(city: str) -> str:
        """Weather."""
        return f"sunny in {city}"

    tools.register(get_weather)
    ok = await tools.run(ToolCall("1", "weather", '{"city": "Oslo"}'))
    assert ok == ToolResult("1", "weather", "sunny in Oslo")
    for call, fragment in [
        (ToolCall("2", "nope", "{}"), "unknown tool"),
        (ToolCall("3", "weather", "{bad"), "not valid JSON"),
        (ToolCall("4", "weather", "[]"), "JSON object"),
        (ToolCall("5", "weather", '{"town": "x"}'), "missing arguments ['city']"),
        (ToolCall("6", "get_weather", '{"city": "Atlantis"}'), "no such city"),
    ]:
        result = await tools.run(call)
        assert result.is_error and fragment in json.loads(result.output)["error"], call
    with pytest.raises(ConfigError):
        tools.register(get_weather)


async def test_tool_call_through_the_openai_wire_format() -> None:
    """The OpenAI-compatible LLM against a loopback server speaking the real SSE
    format: the engine runs the tool and sends its result back in the next request."""
    from parley.providers.openai_llm import OpenAILLM
    from parley.testing.wire_servers import (
        OpenAIWireServer,
        ScriptedReply,
        ScriptedToolCall,
        split_words,
    )

    async with OpenAIWireServer() as server:
        server.script(
            ScriptedReply(
                tool_calls=(
                    ScriptedToolCall("get_weather", ('{"city": ', '"Paris"}'), call_id="call_w"),
                )
            ),
            ScriptedReply(text=split_words("It is 21 degrees in Paris. Enjoy!")),
        )
        llm = OpenAILLM("gpt-4o-mini", base_url=server.openai_base_url, api_key="test")
        tools = ToolRegistry([get_weather])
        engine = CascadeEngine(
            FakeVAD(RATE), FakeSTT(), llm, FakeTTS(RATE), CascadeConfig(instructions="Be brief."),
            tools=tools,
        )  # fmt: skip
        async with running(engine) as run:
            await engine.send_text("What's the weather in Paris?")
            await run.until(lambda: bool(run.of(ResponseDone)), limit_s=15)
        await llm.aclose()
        first, second = (r.json_body for r in server.requests_to("/v1/chat/completions"))
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert first["messages"][0] == {"role": "system", "content": "Be brief."}
    tool_msg = second["messages"][-1]
    assert tool_msg["role"] == "tool" and tool_msg["tool_call_id"] == "call_w"
    assert json.loads(tool_msg["content"])["city"] == "Paris"
    assert second["messages"][-2]["tool_calls"][0]["id"] == "call_w"
    assert run.of(ResponseDone)[0].text == "It is 21 degrees in Paris. Enjoy!"
    assert [d.text for d in run.of(AudioDelta) if d.text] == [
        "It is 21 degrees in Paris.",
        "Enjoy!",
    ]

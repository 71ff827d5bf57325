"""Seed 004 (VoiceChatEngine): every code example of the document, verbatim, offline.

Where the examples connect: Parley's own Realtime server (``create_realtime_app`` on
the offline stack — Silero, Whisper tiny.en, the echo brain, Piper) on a loopback
port, named by ``OPENAI_BASE_URL`` as OpenAI's SDK reads it; the keys are the
document's dummies. The microphone is a WAV of a Piper-spoken sentence
(``PARLEY_MICROPHONE``), the speaker a WAV the test reads back (``PARLEY_SPEAKER``).
Each example's code is pasted unchanged; what a test adds around a fragment (names
the document never defines, waits, assertions) is marked as such.

The two ``asyncio.run(main())`` programs keep their ``asyncio.sleep(60)`` /
``asyncio.sleep(300)``: the test replaces ``asyncio.sleep`` for waits of a minute or
more by "until the example has printed what it prints for the answer" (the example's
own output, read from ``print``), and passes every shorter sleep through unchanged.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import socket
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soxr
import uvicorn

from parley.audio import read_wav, wav_bytes
from parley.client.devices import SoundDeviceMicrophone, SoundDeviceSpeaker
from parley.client.voice import VoiceClient
from parley.errors import ConfigError, ProviderError
from parley.metrics.cost import CostBreakdown
from parley.providers.openai_llm import OpenAILLM
from parley.providers.piper import PiperTTS
from parley.providers.seams import ToolSpec
from parley.realtime_server import cascade_maker, create_realtime_app, offline_backend
from parley.testing import OpenAIWireServer, ScriptedReply, ScriptedToolCall, split_words
from parley.testing.realtime_upstream import RealtimeUpstream, ScriptedResponse
from servers import LoopServer
from speech import normalise, speak
from test_voice_client import hand_cost_gpt_realtime, realtime_server

ROOT = Path(__file__).resolve().parents[1]
SENTENCE = "What a lovely day it is."
BOOKING = "Please book a table for two people tonight."

# -- the offline world the examples run in ---------------------------------------------


@pytest.fixture(scope="module")
def offline_api() -> Iterator[str]:
    """Parley's Realtime server on the offline stack, on its own thread and loop (the
    examples run ``asyncio.run`` themselves); yields its SDK-style base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_realtime_app(backend=offline_backend(), warmup=True)
    config = uvicorn.Config(
        app, log_config=None, log_level="warning", lifespan="on", ws="websockets-sansio"
    )
    server = LoopServer(config)

    def serve() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        finally:
            server.listening_threadsafe.set()  # a failed start wakes the test too

    thread = threading.Thread(target=serve)
    thread.start()
    # The first start loads Silero, Whisper and Piper.
    server.listening_threadsafe.wait(120)
    assert server.started and thread.is_alive(), "server did not start"
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(15)


def spoken_wav(path: Path, text: str, lead_s: float) -> Path:
    pcm, rate = speak(text)
    path.write_bytes(wav_bytes(bytes(2 * int(rate * lead_s)) + pcm, rate))
    return path


@pytest.fixture
def reply_wav(tmp_path: Path) -> Path:
    return tmp_path / "speaker.wav"


@pytest.fixture
def offline(
    monkeypatch: pytest.MonkeyPatch, offline_api: str, tmp_path: Path, reply_wav: Path
) -> Callable[..., None]:
    """Point the examples at the offline server, the WAV microphone and speaker."""
    monkeypatch.delenv("PARLEY_REALTIME_URL", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", offline_api)
    monkeypatch.setenv("PARLEY_SPEAKER", str(reply_wav))

    def microphone(text: str = SENTENCE, lead_s: float = 0.5) -> None:
        wav = spoken_wav(tmp_path / "microphone.wav", text, lead_s)
        monkeypatch.setenv("PARLEY_MICROPHONE", str(wav))

    microphone()
    return microphone


class Printed:
    """``print`` as the examples call it: still printed, and kept, so a test can wait
    for a line (an event set on each print, never a polling sleep)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._real = builtins.print
        self._changed: asyncio.Event | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self._real(*args, **kwargs)
        self.lines.append(" ".join(str(a) for a in args))
        if self._changed is not None:
            self._changed.set()

    def starting(self, prefix: str) -> list[str]:
        return [line.removeprefix(prefix) for line in self.lines if line.startswith(prefix)]

    def text(self, prefix: str) -> str:
        return normalise("".join(self.starting(prefix)))

    async def until(self, condition: Callable[[], bool], within_s: float = 90.0) -> None:
        async with asyncio.timeout(within_s):
            while not condition():
                self._changed = asyncio.Event()
                await self._changed.wait()


@pytest.fixture
def printed(monkeypatch: pytest.MonkeyPatch) -> Printed:
    recorder = Printed()
    monkeypatch.setattr(builtins, "print", recorder)
    return recorder


def keep_running_until(monkeypatch: pytest.MonkeyPatch, done: Callable[[], Any]) -> list[float]:
    """``asyncio.sleep(d)`` with ``d ≥ 60`` (the examples' "keep running") waits for
    ``done()`` instead; shorter sleeps (pacing, polling inside Parley) are untouched."""
    real = asyncio.sleep
    shortened: list[float] = []

    async def sleep(delay: float, result: Any = None) -> Any:
        if delay < 60:
            return await real(delay, result)
        shortened.append(delay)
        await done()
        return result

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return shortened


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> list[VoiceClient]:
    """Every VoiceClient made (observed, not changed): an example builds its engine
    inside ``main()``, where the test cannot otherwise reach it."""
    made: list[VoiceClient] = []
    original = VoiceClient.__init__

    def init(self: VoiceClient, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(VoiceClient, "__init__", init)
    return made


async def first_answer(client: VoiceClient, within_s: float = 90.0) -> None:
    """Until the client's first reply is done (the example sets no on_response_done)."""
    assert client.on_response_done is None
    replied = asyncio.Event()
    client.on_response_done = lambda info: replied.set()
    if client.get_metrics().responses == 0:
        async with asyncio.timeout(within_s):
            await replied.wait()


def reply_audio(path: Path) -> tuple[float, int]:
    """Seconds of audio the speaker played, and its peak."""
    pcm, rate, _ = read_wav(path)
    samples = np.frombuffer(pcm, "<i2")
    return len(samples) / rate, int(np.abs(samples).max()) if len(samples) else 0


# -- Quick Start -------------------------------------------------------------------------


def test_import_path_and_wheel() -> None:
    import parley.client.voicechat as real
    from voicechatengine import VoiceChatEngine, VoiceEngineConfig

    assert VoiceChatEngine is real.VoiceChatEngine
    assert VoiceEngineConfig is real.VoiceEngineConfig
    assert VoiceEngineConfig.__module__ == "parley.client.voice_config"  # one config type
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert "src/voicechatengine" in wheel["packages"]


def test_basic_usage(
    offline: Callable[..., None],
    printed: Printed,
    clients: list[VoiceClient],
    monkeypatch: pytest.MonkeyPatch,
    reply_wav: Path,
) -> None:
    # The example runs until its engine has answered what the microphone said.
    shortened = keep_running_until(monkeypatch, lambda: first_answer(clients[-1]))

    # -- the document's example, verbatim --
    import asyncio

    from voicechatengine import VoiceChatEngine

    async def main():
        # Create engine
        engine = VoiceChatEngine(api_key="your-openai-api-key")

        # Set up callbacks
        engine.on_text_response = lambda text: print(f"AI: {text}")

        # Connect and start
        async with engine:
            await engine.start_listening()

            # Keep running
            await asyncio.sleep(60)

    asyncio.run(main())
    # -- end of the example --

    assert shortened == [60]
    assert "you said what a lovely day it is" in printed.text("AI: ")
    seconds, peak = reply_audio(reply_wav)  # the reply was played to the speaker
    assert seconds > 1.0 and peak > 1000


def test_advanced_example(
    offline: Callable[..., None],
    printed: Printed,
    monkeypatch: pytest.MonkeyPatch,
    reply_wav: Path,
) -> None:
    # The microphone speaks after 3 s: the answer to the typed text has played by then.
    offline(BOOKING, lead_s=3.0)
    shortened = keep_running_until(
        monkeypatch, lambda: printed.until(lambda: len(printed.starting("Response")) >= 2)
    )

    # -- the document's example, verbatim --
    import asyncio

    from voicechatengine import VoiceChatEngine, VoiceEngineConfig

    async def main():
        # Configure engine
        config = VoiceEngineConfig(
            api_key="your-api-key",
            mode="fast",
            voice="alloy",
            vad_enabled=True,
            vad_threshold=0.02,
            latency_mode="ultra_low",
        )

        engine = VoiceChatEngine(config=config)

        # Set up comprehensive callbacks
        engine.on_audio_response = lambda audio: print(f"Received {len(audio)} bytes")
        engine.on_text_response = lambda text: print(f"AI: {text}")
        engine.on_error = lambda error: print(f"Error: {error}")
        engine.on_response_done = lambda: print("Response complete")

        await engine.connect()

        # Example: Text to speech
        await engine.send_text("Hello, how are you today?")

        # Example: Start listening for voice input
        await engine.start_listening()

        # Keep running for 5 minutes
        await asyncio.sleep(300)

        await engine.disconnect()

    asyncio.run(main())
    # -- end of the example --

    assert shortened == [300]
    assert printed.starting("Response complete") == ["", ""]
    heard = printed.text("AI: ")
    assert "you said hello how are you today" in heard
    assert "book a table for two people tonight" in heard  # the microphone's sentence
    received = sum(int(line.split()[0]) for line in printed.starting("Received "))
    assert received > 2 * 24000 * 2  # over two seconds of 24 kHz PCM16 in the callbacks
    assert printed.starting("Error: ") == []
    seconds, _ = reply_audio(reply_wav)
    assert seconds == pytest.approx(received / 2 / 24000, abs=0.05)


# -- API reference -------------------------------------------------------------------------


def test_configuration_reference() -> None:
    from voicechatengine import VoiceEngineConfig

    # The reference's signature with its defaults, as a call (it is not Python as printed).
    config = VoiceEngineConfig(
        api_key="sk-dummy",
        mode="fast",
        voice="alloy",
        sample_rate=24000,
        vad_enabled=True,
        vad_threshold=0.02,
        latency_mode="balanced",
    )
    assert (config.mode, config.resolved_voice, config.sample_rate) == ("fast", "alloy", 24000)
    assert config.resolved_turn_detection == "client"  # vad_enabled: the client VAD decides
    assert config.vad_settings.threshold == 0.02
    assert config.latency.chunk_ms == 40
    assert VoiceEngineConfig(mode="big").mode == "big"
    for mode in ("ultra_low", "balanced", "quality"):
        assert VoiceEngineConfig(latency_mode=mode).latency_mode == mode
    assert (
        VoiceEngineConfig(latency_mode="ultra_low").latency
        == VoiceEngineConfig(latency_mode="low").latency
    )


def test_invalid_values_name_the_valid_ones() -> None:
    from voicechatengine import VoiceChatEngine, VoiceEngineConfig

    with pytest.raises(ConfigError, match=r"turbo.*ultra_low, low, balanced, quality"):
        VoiceEngineConfig(latency_mode="turbo")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"'medium'.*fast, big"):
        VoiceChatEngine(api_key="k", mode="medium")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"unknown setting vad_sensitivity.*vad_threshold"):
        VoiceChatEngine(api_key="k", vad_sensitivity=0.1)
    with pytest.raises(ConfigError, match="vad_speech_end_ms is vad_end_ms"):
        VoiceEngineConfig(vad_speech_end_ms=500, vad_end_ms=900)
    with pytest.raises(ConfigError, match="contradicts"):
        VoiceEngineConfig(vad_enabled=True, turn_detection="server_vad")


async def test_api_reference_methods(
    offline: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    from voicechatengine import VoiceChatEngine

    monkeypatch.setenv("PARLEY_SPEAKER", "null")  # a speaker on a clock: a reply takes time

    refused = VoiceChatEngine(api_key="k", url=f"ws://127.0.0.1:{_closed_port()}/v1/realtime")
    with pytest.raises(ProviderError):
        await refused.connect(retry_count=3)
    assert not refused.is_connected

    engine = VoiceChatEngine(api_key="k", latency_mode="ultra_low")
    done: list[Any] = []
    replied = asyncio.Event()
    engine.on_response_done = lambda info: (done.append(info), replied.set())
    texts: list[str] = []
    engine.on_text_response = texts.append
    assert engine.on_text_response == texts.append  # reading gives the user's function back

    await engine.connect(retry_count=3)
    assert engine.is_connected and not engine.is_listening
    engine.start_listening()  # not awaited: it runs all the same
    assert engine.is_listening
    await engine.stop_listening()
    assert not engine.is_listening

    pcm, rate = speak(SENTENCE)
    samples = np.frombuffer(pcm, "<i2")
    pcm24 = soxr.resample(samples, rate, 24000).astype("<i2").tobytes()
    audio_bytes = bytes(2 * 4800) + pcm24 + bytes(2 * 24000)
    for i in range(0, len(audio_bytes), 960):  # 20 ms at a time, as a microphone would
        await engine.send_audio(audio_bytes[i : i + 960])
    async with asyncio.timeout(60):
        await replied.wait()
    assert "lovely day" in normalise("".join(texts))

    # interrupt(): a long reply stops where the speaker was. (send_text itself stops a
    # first reply still playing, which counts as an interruption too: count from here.)
    replied.clear()
    before = engine.get_metrics()
    await engine.send_text("one two three four five six seven eight nine ten " * 3)
    enough = before["audio"]["received_ms"] + 1000  # a second of the long reply
    heard_enough = asyncio.Event()

    def on_audio(pcm: bytes) -> None:  # called with each chunk, once it is counted
        if engine.get_metrics()["audio"]["received_ms"] >= enough:
            heard_enough.set()

    engine.on_audio_response = on_audio
    async with asyncio.timeout(60):
        await heard_enough.wait()
    during = engine.get_metrics()["interruptions"]
    assert engine.client.speaker.queued_ms > 0  # the long reply is playing
    await engine.interrupt()
    assert engine.client.speaker.queued_ms == 0  # stopped at once
    # The next answer comes after the interruption in the event stream: once it is
    # in, the interruption has been counted.
    replied.clear()
    await engine.send_text("Are you there?")
    async with asyncio.timeout(60):
        await replied.wait()
    assert engine.get_metrics()["interruptions"] == during + 1
    await engine.disconnect()
    assert not engine.is_connected


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- Use cases -------------------------------------------------------------------------------


async def test_voice_assistant(offline: Callable[..., None], printed: Printed) -> None:
    from voicechatengine import VoiceEngine  # the document uses the name without importing it

    # -- the document's fragment, verbatim --
    engine = VoiceEngine.create_simple(api_key="...")
    engine.on_text_response = lambda text: print(f"Assistant: {text}")
    await engine.connect()
    await engine.start_listening()
    # -- end of the fragment --

    await printed.until(lambda: "lovely day it is" in printed.text("Assistant: "))
    await engine.disconnect()
    assert "you said what a lovely day it is" in printed.text("Assistant: ")


async def test_real_time_translation_sends_language_and_voice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from voicechatengine import VoiceEngine, VoiceEngineConfig

    async with RealtimeUpstream() as up:
        up.script(ScriptedResponse(transcript="Hola, ¿en qué puedo ayudarle?"))
        monkeypatch.setenv("PARLEY_REALTIME_URL", up.url)  # what a Realtime API receives
        monkeypatch.setenv("PARLEY_SPEAKER", "null")

        # -- the document's fragment, verbatim --
        config = VoiceEngineConfig(
            api_key="...",
            voice="shimmer",
            language="es",  # Spanish
        )
        engine = VoiceEngine(config=config)
        # -- end of the fragment --

        texts: list[str] = []
        engine.on_text_response = texts.append
        replied = asyncio.Event()
        engine.on_response_done = replied.set
        async with engine:
            await engine.send_text("Buenos días")
            async with asyncio.timeout(10):
                await replied.wait()
        session = up.current.session
    assert session.audio.input.transcription.language == "es"  # type: ignore[union-attr]
    assert session.audio.output.voice == "shimmer"  # type: ignore[union-attr]
    assert "".join(texts) == "Hola, ¿en qué puedo ayudarle?"


async def test_real_time_translation_offline(
    offline: Callable[..., None], printed: Printed, caplog: pytest.LogCaptureFixture
) -> None:
    """Offline there is no translation: the local server's Whisper tiny.en hears English
    only and the echo brain repeats it, so the Spanish setting changes nothing heard."""
    from voicechatengine import VoiceEngine, VoiceEngineConfig

    config = VoiceEngineConfig(api_key="...", voice="shimmer", language="es")
    engine = VoiceEngine(config=config)
    engine.on_text_response = lambda text: print(f"AI: {text}")
    async with engine:
        await engine.start_listening()
        await printed.until(lambda: "lovely day it is" in printed.text("AI: "))
    assert "you said what a lovely day it is" in printed.text("AI: ")

    # On the big lane (the local cascade in this process) Parley says so at connect.
    big = VoiceEngine(config=VoiceEngineConfig(api_key="...", mode="big", language="es"))
    with caplog.at_level("WARNING", logger="parley.client.lane"):
        async with big:
            pass
    assert "language 'es'" in caplog.text and "English only" in caplog.text


async def test_interactive_voice_response(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The IVR fragment. Offline the model is a scripted OpenAI chat server (the real
    wire format) behind Parley's Realtime server, with Whisper and Piper: it really
    calls the client's function and really speaks the answer to its output."""
    from voicechatengine import VoiceEngine

    spoken_wav(tmp_path / "caller.wav", "I have a question about my bill.", 0.5)
    monkeypatch.setenv("PARLEY_MICROPHONE", str(tmp_path / "caller.wav"))
    monkeypatch.setenv("PARLEY_SPEAKER", "null")
    call = ScriptedToolCall("transfer_call", ('{"department": ', '"billing"}'), call_id="c1")
    answer = "Transferring you to billing now."

    # What the fragment uses and the document never defines (the test's minimum):
    heard: list[str] = []
    actions: list[tuple[str, dict[str, Any]]] = []
    answered = asyncio.Event()

    def handle_user_input(text: str) -> None:
        heard.append(text)
        if "billing now" in normalise("".join(heard)):
            answered.set()

    def execute_action(name: str, arguments: dict[str, Any]) -> dict[str, str]:
        actions.append((name, arguments))
        return {"status": "transferred", "queue": "billing"}

    async with OpenAIWireServer() as wire:
        wire.script(ScriptedReply(tool_calls=(call,)), ScriptedReply(text=split_words(answer)))
        llm = OpenAILLM("gpt-test", base_url=wire.openai_base_url, api_key="sk-test")
        backend = offline_backend()
        maker = cascade_maker(backend.vad, backend.stt, llm, PiperTTS())
        try:
            async with realtime_server(backend, maker) as url:
                monkeypatch.setenv("PARLEY_REALTIME_URL", url)

                # -- the document's fragment, verbatim --
                engine = VoiceEngine(api_key="...", mode="fast")
                engine.on_text_response = handle_user_input
                engine.on_function_call = execute_action
                # -- end of the fragment --

                # Parley offers the model only the functions it is told of:
                engine.add_function(
                    ToolSpec(
                        "transfer_call",
                        "Transfer the caller to a department.",
                        {"type": "object", "properties": {"department": {"type": "string"}}},
                    )
                )
                async with engine:
                    await engine.start_listening()
                    async with asyncio.timeout(60):
                        await answered.wait()
                    metrics = engine.get_metrics()
        finally:
            await llm.aclose()
        requests = list(wire.chat_requests)
    assert actions == [("transfer_call", {"department": "billing"})]
    assert metrics["function_calls"] == 1
    said = requests[0]["messages"][-1]["content"]
    assert "question about my bill" in normalise(said)  # Whisper heard the caller
    tool = next(m for m in requests[1]["messages"] if m["role"] == "tool")
    assert json.loads(tool["content"]) == {"status": "transferred", "queue": "billing"}
    assert requests[0]["tools"][0]["function"]["name"] == "transfer_call"


# -- Advanced features -----------------------------------------------------------------------


async def test_voice_activity_detection(offline: Callable[..., None]) -> None:
    from voicechatengine import VoiceChatEngine, VoiceEngineConfig

    # -- the document's fragment, verbatim --
    config = VoiceEngineConfig(
        vad_enabled=True,
        vad_threshold=0.02,  # Energy threshold
        vad_speech_start_ms=100,  # Speech detection delay
        vad_speech_end_ms=500,  # Silence detection delay
    )
    # -- end of the fragment --

    assert (config.vad_start_ms, config.vad_end_ms) == (100.0, 500.0)
    assert config.resolved_turn_detection == "client"
    # Run it: the client VAD sends only the speech and ends the turn itself.
    engine = VoiceChatEngine(api_key="dummy", config=config)
    texts: list[str] = []
    replied = asyncio.Event()
    engine.on_text_response = texts.append
    engine.on_response_done = replied.set
    async with engine:
        await engine.start_listening()
        async with asyncio.timeout(60):
            await replied.wait()
        metrics = engine.client.get_metrics()
    assert "lovely day" in normalise("".join(texts))
    assert metrics.turns[0].reference == "local_vad"
    speech_ms = len(speak(SENTENCE)[0]) / 2 / speak(SENTENCE)[1] * 1000
    # prefix (300) + speech + the 500 ms end delay; not the 0.5 s lead nor 1 s tail
    assert speech_ms < metrics.audio_sent_ms < speech_ms + 300 + 500 + 100


async def test_performance_metrics(offline: Callable[..., None], printed: Printed) -> None:
    from voicechatengine import VoiceChatEngine

    engine = VoiceChatEngine(api_key="dummy", latency_mode="ultra_low")  # 20 ms chunks
    replied = asyncio.Event()
    engine.on_response_done = replied.set
    t0 = time.monotonic()
    async with engine:
        await engine.start_listening()
        async with asyncio.timeout(60):
            await replied.wait()

        # -- the document's fragment, verbatim --
        metrics = engine.get_metrics()
        print(f"Latency: {metrics['audio']['capture_rate']} chunks/sec")
        print(f"Uptime: {metrics['uptime']} seconds")
        # -- end of the fragment --

        elapsed = time.monotonic() - t0
    rate = float(printed.starting("Latency: ")[0].split()[0])
    assert rate == pytest.approx(50, rel=0.1)  # a 20 ms microphone block, paced in real time
    uptime = float(printed.starting("Uptime: ")[0].split()[0])
    assert 0 < uptime <= elapsed
    assert metrics["responses"] == 1 and metrics["errors"] == 0
    assert 0 < metrics["latency"]["median_ms"] < 10_000


async def test_cost_tracking(offline: Callable[..., None], printed: Printed) -> None:
    from voicechatengine import VoiceChatEngine

    engine = VoiceChatEngine(api_key="dummy")  # gpt-realtime: priced
    replied = asyncio.Event()
    engine.on_response_done = replied.set
    async with engine:
        await engine.send_text("Good morning, what a lovely day.")
        async with asyncio.timeout(60):
            await replied.wait()

        # -- the document's fragment, verbatim --
        usage = await engine.get_usage()
        cost = await engine.estimate_cost()
        print(f"Total cost: ${cost.total:.2f}")
        # -- end of the fragment --

    assert usage.output_audio_tokens > 0 and usage.total_tokens > 0
    assert isinstance(cost, CostBreakdown) and cost.unpriced == ()
    assert cost.total == pytest.approx(hand_cost_gpt_realtime(usage)) and cost.total > 0
    assert cost.total == pytest.approx(engine.client.estimate_cost())  # the typed form
    assert printed.starting("Total cost: ") == [f"${cost.total:.2f}"]


# -- the Big Lane --------------------------------------------------------------------------


async def test_big_lane_runs_the_local_cascade(offline: Callable[..., None]) -> None:
    from voicechatengine import VoiceChatEngine

    engine = VoiceChatEngine(api_key="your-api-key", mode="big")
    texts: list[str] = []
    replied = asyncio.Event()
    engine.on_text_response = texts.append
    engine.on_response_done = replied.set
    async with engine:
        assert engine.client.lane is not None and engine.client.lane.url.startswith("ws://127.")
        await engine.start_listening()
        async with asyncio.timeout(60):
            await replied.wait()
        metrics = engine.get_metrics()
    assert engine.client.lane is None  # stopped with the engine
    cost = await engine.estimate_cost()  # what the lane's parts cost, after it too
    assert "you said what a lovely day it is" in normalise("".join(texts))
    assert metrics["serving"] == "cascade" and metrics["mode"] == "big"
    assert engine.get_metrics()["serving"] == "cascade"
    assert cost.total == 0.0 and cost.unpriced == ()  # every part is a local model


async def test_big_lane_fails_over_to_the_cascade(
    offline: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``PARLEY_ENGINE=realtime``: the lane's sessions try the Realtime upstream first;
    it is unreachable, so the cascade answers, with what the user said."""
    from voicechatengine import VoiceChatEngine

    monkeypatch.setenv("PARLEY_ENGINE", "realtime")
    monkeypatch.setenv("PARLEY_REALTIME_URL", f"ws://127.0.0.1:{_closed_port()}/v1/realtime")
    monkeypatch.setenv("PARLEY_REALTIME_API_KEY", "sk-dummy")
    engine = VoiceChatEngine(api_key="your-api-key", mode="big")
    texts: list[str] = []
    replied = asyncio.Event()
    engine.on_text_response = texts.append
    engine.on_response_done = replied.set
    with caplog.at_level("WARNING", logger="parley.client.lane"):
        async with engine:
            assert engine.get_metrics()["serving"] == "realtime"
            await engine.send_text("Are you still there?")
            async with asyncio.timeout(60):
                await replied.wait()
            metrics = engine.get_metrics()
            cost = await engine.estimate_cost()
    assert normalise("".join(texts)) == "you said are you still there"
    assert metrics["serving"] == "cascade" and metrics["switches"] == 1
    assert "failover from realtime to cascade: ProviderError" in caplog.text
    assert cost.total == 0.0


async def test_on_response_done_with_or_without_the_info(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from voicechatengine import VoiceChatEngine

    monkeypatch.setenv("PARLEY_SPEAKER", "null")
    async with RealtimeUpstream() as up:
        up.script(ScriptedResponse(transcript="One."), ScriptedResponse(transcript="Two."))
        engine = VoiceChatEngine(api_key="k", url=up.url)
        calls: list[str] = []
        infos: list[Any] = []
        first, second = asyncio.Event(), asyncio.Event()
        engine.on_response_done = lambda: (calls.append("no argument"), first.set())
        async with engine:
            await engine.send_text("one")
            async with asyncio.timeout(10):
                await first.wait()
            engine.on_response_done = lambda info: (infos.append(info), second.set())
            await engine.send_text("two")
            async with asyncio.timeout(10):
                await second.wait()
    assert calls == ["no argument"]
    assert [i.text for i in infos] == ["Two."] and infos[0].status == "completed"


async def test_no_sound_device_is_said_and_the_conversation_goes_on() -> None:
    """A machine without the device (here: a device index that does not exist): one
    ``on_error`` naming the variable to set; the text and audio callbacks still run."""
    from voicechatengine import VoiceChatEngine

    async with RealtimeUpstream() as up:
        up.script(ScriptedResponse(transcript="Still here."))
        engine = VoiceChatEngine(api_key="k", url=up.url, speaker=SoundDeviceSpeaker(device=9999))
        errors: list[Any] = []
        audio = bytearray()
        texts: list[str] = []
        replied = asyncio.Event()
        engine.on_error = errors.append
        engine.on_audio_response = audio.extend
        engine.on_text_response = texts.append
        engine.on_response_done = replied.set
        async with engine:
            await engine.send_text("hello?")
            async with asyncio.timeout(10):
                await replied.wait()
    assert [e.code for e in errors] == ["audio_device"]
    assert "PARLEY_SPEAKER" in errors[0].message and "no sound device" in errors[0].message
    assert "".join(texts) == "Still here." and len(audio) > 0
    with pytest.raises(ConfigError, match="PARLEY_MICROPHONE"):
        async for _ in SoundDeviceMicrophone(device=9999).chunks():
            pass


async def test_big_lane_with_a_hosted_brain_calls_functions(
    offline: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The big lane's parts come from Parley's settings: here the brain is a hosted
    OpenAI chat model (the scripted wire server), which calls the client's function."""
    from voicechatengine import VoiceChatEngine

    offline("I have a question about my bill.")
    call = ScriptedToolCall("transfer_call", ('{"department": "billing"}',), call_id="c7")
    async with OpenAIWireServer() as wire:
        wire.script(
            ScriptedReply(tool_calls=(call,)),
            ScriptedReply(text=split_words("Transferring you to billing now.")),
        )
        monkeypatch.setenv("PARLEY_BRAIN", "openai:gpt-test")
        monkeypatch.setenv("PARLEY_LLM_BASE_URL", wire.openai_base_url)
        monkeypatch.setenv("PARLEY_LLM_API_KEY", "sk-test")
        engine = VoiceChatEngine(api_key="dummy", mode="big")
        engine.add_function(ToolSpec("transfer_call", "Transfer the caller."))
        actions: list[tuple[str, dict[str, Any]]] = []
        engine.on_function_call = lambda name, arguments: actions.append((name, arguments)) or "ok"
        done: list[Any] = []
        answered = asyncio.Event()

        def on_done(info: Any) -> None:
            done.append(info)
            if len(done) == 2:  # the function call, then the answer to its output
                answered.set()

        engine.on_response_done = on_done
        async with engine:
            await engine.start_listening()
            async with asyncio.timeout(60):
                await answered.wait()
            cost = await engine.estimate_cost()
        said = wire.chat_requests[0]["messages"][-1]["content"]
    assert actions == [("transfer_call", {"department": "billing"})]
    assert "question about my bill" in normalise(said)
    assert done[-1].text == "Transferring you to billing now."
    assert cost.unpriced == ("llm:gpt-test",)  # a model the price book does not know

"""Seed 003, "Real-time WebSocket Conversation Library": every code example of the
document (../shared/seeds/003_*.txt) verbatim, running for real.

Real parts only: uvicorn on a free 127.0.0.1 port and a ``websockets`` client,
Piper-spoken audio sent to the endpoint, Whisper tiny.en hearing it, Piper
speaking the reply, and Whisper hearing that reply again on the client side.
Where an example is a fragment (it uses names it never defines), the minimum
around it is defined in the test and a comment says so; the example's own lines
are kept as the document has them (indented into the test).
"""

# The document's code uses typing.Optional / typing.Dict; keep it verbatim.
# ruff: noqa: UP006, UP035, UP045, E501, W293, I001

import asyncio
import importlib
import json
import logging
import pkgutil
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Protocol

import numpy as np
import pytest
import soxr
import websockets
from fastapi import APIRouter, FastAPI, WebSocket

import parley.realtime_conversation
from parley.errors import ConfigError
from parley.events import Event, ResponseDone
from parley.providers.whisper import WhisperSTT
from servers import serve_asgi
from speech import normalise, silence_16k, speak, speak_16k, words_missed

pytestmark = pytest.mark.slow

DOCUMENT_YAML = """\
stt_engine:
  model_size: "base"
  device: "auto"
  language: "en"

tts_engine:
  device: "cuda"
  temperature: 0.7
  speed_factor: 1.0

conversation:
  response_mode: "template"
  max_history_length: 50

pause_detection:
  aggressiveness: 2
  min_speech_frames: 3
  min_pause_frames: 10

audio:
  sample_rate: 16000
  channels: 1
  buffer_duration: 10.0
"""

DOCUMENT_ENV = """\
CONV_STT_ENGINE_MODEL_SIZE=base
CONV_STT_ENGINE_DEVICE=auto
CONV_TTS_ENGINE_DEVICE=cuda
CONV_CONVERSATION_RESPONSE_MODE=template
CONV_PAUSE_DETECTION_AGGRESSIVENESS=2
"""

_WAIT_S = 30.0


# -- the client side: real sockets, real speech, a real ear ------------------------------


@pytest.fixture(scope="module")
def ear() -> WhisperSTT:
    """Whisper for the client: hears the reply audio. Loading it (and Piper) here keeps
    model loading out of the tests' time."""
    stt = WhisperSTT()

    async def warm() -> None:
        from speech import tts

        await asyncio.gather(stt.warmup(), tts().warmup())

    asyncio.run(warm())
    return stt


def to_16k(pcm: bytes, rate: int) -> bytes:
    if rate == 16000:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2")
    return bytes(soxr.resample(samples, rate, 16000).astype("<i2").tobytes())


@dataclass
class Reply:
    messages: list[dict[str, Any]] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    @property
    def done(self) -> dict[str, Any]:
        return self.of("response_done")[-1]

    async def heard(self, ear: WhisperSTT, rate: int = 16000) -> str:
        return (await ear.transcribe(to_16k(bytes(self.audio), rate))).text


class Client:
    """The legacy endpoint's client: PCM16 binary frames and JSON control frames."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws

    async def say(self, sentence: str, *, rate: int = 16000) -> None:
        if rate == 16000:
            pcm = speak_16k(sentence) + silence_16k(1.5)
        else:
            voice, voice_rate = speak(sentence)
            samples = np.frombuffer(voice, dtype="<i2")
            pcm = bytes(soxr.resample(samples, voice_rate, rate).astype("<i2").tobytes())
            pcm += bytes(2 * int(1.5 * rate))
        step = rate // 10 * 2  # 100 ms frames
        for i in range(0, len(pcm), step):
            await self.ws.send(pcm[i : i + step])

    async def type(self, text: str) -> None:
        await self.ws.send(json.dumps({"type": "text", "text": text}))

    async def reply(self) -> Reply:
        """Everything up to the next ``response_done``."""
        reply = Reply()
        while True:
            frame = await asyncio.wait_for(self.ws.recv(), _WAIT_S)
            if isinstance(frame, bytes):
                reply.audio += frame
                continue
            message = json.loads(frame)
            reply.messages.append(message)
            if message["type"] == "response_done":
                return reply


@asynccontextmanager
async def connect(port: int, path: str = "/ws/conversation") -> AsyncIterator[Client]:
    async with websockets.connect(f"ws://127.0.0.1:{port}{path}") as ws:
        yield Client(ws)


def serve(app: FastAPI) -> Any:
    return serve_asgi(app)


def heard_ok(expected: str, heard: str, slack: int = 1) -> bool:
    return words_missed(expected, heard) <= slack


# -- a custom adapter for the examples that need one ------------------------------------

from realtime_conversation.core.interfaces import AudioData, WebSocketAdapter  # noqa: E402


class QueueAdapter(WebSocketAdapter):
    """A test's adapter: audio in from a queue, reply audio and events collected."""

    def __init__(self, sample_rate: int | None = None) -> None:
        self.sample_rate = sample_rate
        self.inbox: asyncio.Queue[AudioData | None] = asyncio.Queue()
        self.audio = bytearray()
        self.events: list[Event] = []
        self.sent_json: list[Mapping[str, Any]] = []
        self.replied = asyncio.Event()
        self.closed = False

    async def speak(self, sentence: str, rate: int = 16000) -> None:
        voice, voice_rate = speak(sentence)
        samples = np.frombuffer(voice, dtype="<i2")
        pcm = bytes(soxr.resample(samples, voice_rate, rate).astype("<i2").tobytes())
        pcm += bytes(2 * int(1.5 * rate))
        step = rate // 50 * 2  # 20 ms
        for i in range(0, len(pcm), step):
            await self.inbox.put(AudioData(pcm[i : i + step], rate))

    async def receive_audio(self) -> Optional[AudioData]:
        return await self.inbox.get()

    async def send_audio(self, audio: AudioData) -> None:
        self.audio += audio.data

    async def send_json(self, message: Mapping[str, Any]) -> None:
        self.sent_json.append(message)

    async def on_event(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, ResponseDone):
            self.replied.set()
        await super().on_event(event)

    async def close(self) -> None:
        self.closed = True


async def run_spoken_turn(engine: Any, adapter: QueueAdapter, sentence: str) -> None:
    """One spoken turn over ``adapter``, then hang up and let the conversation end."""
    task = asyncio.create_task(engine.handle_conversation(adapter))
    await adapter.speak(sentence, adapter.sample_rate or 16000)
    await asyncio.wait_for(adapter.replied.wait(), _WAIT_S)
    await adapter.inbox.put(None)  # hang up
    await asyncio.wait_for(task, _WAIT_S)


# -- Quick Start: Basic FastAPI Integration ----------------------------------------------


async def test_quick_start_fastapi_app_hears_and_speaks_back(
    ear: WhisperSTT, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="parley.realtime_conversation")
    # -- the document's example, verbatim --
    # fmt: off
    from fastapi import FastAPI, WebSocket
    from realtime_conversation import ConversationEngine
    from realtime_conversation.adapters.websocket import FastAPIWebSocketAdapter
    from realtime_conversation.adapters.stt import WhisperSTTEngine
    from realtime_conversation.adapters.tts import ChatterboxTTSEngine
    from realtime_conversation.plugins.pause_detection import WebRTCPauseDetector
    from realtime_conversation.plugins.response_generation import EchoResponseGenerator

    app = FastAPI()

    # Create and configure conversation engine
    engine = ConversationEngine()
    engine.configure_stt(WhisperSTTEngine(model_size="base"))
    engine.configure_tts(ChatterboxTTSEngine())
    engine.configure_pause_detection(WebRTCPauseDetector())
    engine.configure_response_generation(EchoResponseGenerator())

    @app.websocket("/ws/conversation")
    async def websocket_endpoint(websocket: WebSocket):
        adapter = FastAPIWebSocketAdapter(websocket)
        await engine.handle_conversation(adapter)
    # fmt: on
    # -- end of the example --

    sentence = "Please book a table for two people."
    async with serve(app) as port, connect(port) as client:
        await client.say(sentence)
        reply = await client.reply()
        (ready,) = reply.of("ready")
        assert ready["format"] == {"encoding": "pcm16", "sample_rate": 16000, "channels": 1}
        (heard,) = [m["text"] for m in reply.of("transcript") if m["role"] == "user"]
        assert normalise(heard) == normalise(sentence)
        assert reply.done["status"] == "completed"
        assert normalise(reply.done["text"]) == normalise(f"You said: {sentence}")
        spoken = await reply.heard(ear)
        assert normalise(spoken).startswith("you said")
        assert heard_ok(sentence, spoken)
        assert len(reply.audio) / 32000 > 1.5  # seconds of reply at 16 kHz
    log = caplog.text
    assert "model_size='base'" in log and "tiny.en" in log  # one line: what runs instead
    assert "Chatterbox needs torch" in log and "Piper" in log


# -- Quick Start: With Configuration and Middleware --------------------------------------


@pytest.fixture
def config_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The document's YAML, verbatim, as ``config.yaml`` in the working directory."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text(DOCUMENT_YAML)
    return path


async def test_configuration_and_middleware_example(
    ear: WhisperSTT, config_yaml: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # The example continues the quick start: its imports of ConversationEngine and
    # WhisperSTTEngine are the quick start's.
    from realtime_conversation import ConversationEngine
    from realtime_conversation.adapters.stt import WhisperSTTEngine

    # -- the document's example, verbatim --
    # fmt: off
    from pathlib import Path
    from realtime_conversation.adapters.config import YAMLConfigurationProvider
    from realtime_conversation.plugins.middleware import LoggingMiddleware, TimingMiddleware

    # Load configuration
    config = YAMLConfigurationProvider(Path("config.yaml"))

    # Create engine with middleware
    engine = ConversationEngine(config)
    engine.add_middleware(TimingMiddleware())
    engine.add_middleware(LoggingMiddleware())

    # Configure components from config
    stt_config = config.get_stt_config()
    engine.configure_stt(WhisperSTTEngine(**stt_config))
    # fmt: on
    # -- end of the example --

    assert stt_config == {"model_size": "base", "device": "auto", "language": "en"}
    assert config.get_tts_config() == {"device": "cuda", "temperature": 0.7, "speed_factor": 1.0}
    assert config.get_pause_detection_config() == {
        "aggressiveness": 2,
        "min_speech_frames": 3,
        "min_pause_frames": 10,
    }
    assert config.get_conversation_config() == {
        "response_mode": "template",
        "max_history_length": 50,
    }
    assert config.get_audio_config() == {
        "sample_rate": 16000,
        "channels": 1,
        "buffer_duration": 10.0,
    }
    # What the rest of the configuration made of the engine (the example configures
    # only the STT; the rest comes from the file).
    from realtime_conversation import TemplateResponseGenerator, WebRTCPauseDetector

    assert isinstance(engine.response_generator, TemplateResponseGenerator)
    pause = engine.pause_detector
    assert isinstance(pause, WebRTCPauseDetector) and pause.aggressiveness == 2
    assert (
        pause.turn_config().min_speech_ms == 90
        and pause.turn_config().end_of_turn_silence_ms == 300
    )

    app = FastAPI()  # the quick start's endpoint, for this engine

    @app.websocket("/ws/conversation")
    async def websocket_endpoint(websocket: WebSocket) -> None:
        from realtime_conversation.adapters.websocket import FastAPIWebSocketAdapter

        await engine.handle_conversation(FastAPIWebSocketAdapter(websocket))

    async with serve(app) as port, connect(port) as client:
        await client.say("Hello there.")
        reply = await client.reply()
    # The template generator's built-in greeting rule answered, Piper spoke it.
    assert reply.done["text"] == "Hello! How can I help you today?"
    assert heard_ok("Hello! How can I help you today?", await reply.heard(ear))
    timing = engine.middleware[0]
    assert isinstance(timing, TimingMiddleware)
    stats = timing.get_statistics()
    assert stats["count"] == 1 and stats["last_ms"] is not None and stats["last_ms"] >= 0
    assert "request (12 chars)" in caplog.text  # LoggingMiddleware: the turn in …
    assert "turn 1 reply (32 chars" in caplog.text  # … and out (no words: log_text=False)
    assert "ChatterboxTTSEngine(device='cuda')" in caplog.text  # from tts_engine: runs on CPU


# -- Core Concepts: ConversationEngine ----------------------------------------------------


async def test_core_concepts_engine_configuration(ear: WhisperSTT) -> None:
    # The example uses names it never defines: these are the minimum around it.
    from realtime_conversation import (
        ConversationEngine,
        DictConfigurationProvider,
        EnergyPauseDetector,
        TemplateResponseGenerator,
        TimingMiddleware,
        WhisperSTTEngine,
    )
    from realtime_conversation.adapters.tts import ChatterboxTTSEngine

    config_provider = DictConfigurationProvider({"conversation": {"max_history_length": 10}})
    stt_engine = WhisperSTTEngine()
    tts_engine = ChatterboxTTSEngine(speed_factor=1.2)
    pause_detector = EnergyPauseDetector()
    response_generator = TemplateResponseGenerator(
        [{"keywords": ["hours", "open"], "response": "We are open every day until late."}],
        fallback="Sorry, I only know our opening hours.",
    )
    middleware = TimingMiddleware()

    # -- the document's example, verbatim --
    # fmt: off
    engine = ConversationEngine(config_provider)
    engine.configure_stt(stt_engine)
    engine.configure_tts(tts_engine)
    engine.configure_pause_detection(pause_detector)
    engine.configure_response_generation(response_generator)
    engine.add_middleware(middleware)
    # fmt: on
    # -- end of the example --

    assert engine.stt_engine is stt_engine and engine.tts_engine is tts_engine
    assert engine.pause_detector is pause_detector
    assert engine.response_generator is response_generator
    assert engine.middleware == (middleware,)
    adapter = QueueAdapter()
    await run_spoken_turn(engine, adapter, "When are you open tomorrow?")
    assert heard_ok(
        "We are open every day until late.", (await ear.transcribe(bytes(adapter.audio))).text
    )
    assert middleware.get_statistics()["count"] == 1
    assert adapter.closed


# -- Core Concepts: Protocol-Based Architecture -------------------------------------------


async def test_the_documents_protocols_are_what_the_engines_implement(ear: WhisperSTT) -> None:
    # The example names AudioData, TranscriptionResult and SynthesisResult: the library's.
    from realtime_conversation.core.interfaces import (
        AudioData,
        SynthesisResult,
        TranscriptionResult,
    )

    # -- the document's example, verbatim --
    # fmt: off
    class STTEngine(Protocol):
        async def transcribe(self, audio: AudioData, language: Optional[str] = None) -> Optional[TranscriptionResult]:
            ...
        
        @property
        def model_loaded(self) -> bool:
            ...

    class TTSEngine(Protocol):
        async def synthesize(self, text: str, voice_config: Dict[str, Any]) -> Optional[SynthesisResult]:
            ...
    # fmt: on
    # -- end of the example --

    import inspect

    import realtime_conversation.core.interfaces as interfaces
    from realtime_conversation import ChatterboxTTSEngine, WhisperSTTEngine

    def params(fn: Any) -> list[str]:
        return list(inspect.signature(fn).parameters)

    for ours in (interfaces.STTEngine, WhisperSTTEngine):
        assert params(ours.transcribe) == params(STTEngine.transcribe)
        assert isinstance(inspect.getattr_static(ours, "model_loaded"), property)
    for ours_tts in (interfaces.TTSEngine, ChatterboxTTSEngine):
        assert params(ours_tts.synthesize) == params(TTSEngine.synthesize)

    # And they do what the protocol says, for real: Piper's 22,050 Hz speech in
    # (resampled by the engine), the TTS's result heard by Whisper.
    stt = WhisperSTTEngine()
    voice, rate = speak("The quick brown fox jumps over the lazy dog.")
    heard = await stt.transcribe(AudioData(voice, rate))
    assert isinstance(heard, TranscriptionResult) and heard.language == "en"
    assert heard_ok("The quick brown fox jumps over the lazy dog.", heard.text)
    assert stt.model_loaded
    assert await stt.transcribe(AudioData(bytes(32000))) is None  # silence says nothing
    tts = ChatterboxTTSEngine(temperature=0.0)
    said = await tts.synthesize("Your table is booked.", {})
    assert isinstance(said, SynthesisResult) and said.audio.sample_rate == 22050
    assert said.duration > 0.8
    assert heard_ok(
        "Your table is booked.", (await ear.transcribe(to_16k(said.audio.data, 22050))).text
    )
    faster = await tts.synthesize("Your table is booked.", {"speed_factor": 2.0})
    assert faster is not None and faster.duration < said.duration * 0.7


# -- Core Concepts: Middleware Pipeline ---------------------------------------------------


async def test_middleware_pipeline_example(caplog: pytest.LogCaptureFixture) -> None:
    # The example subclasses ConversationMiddleware and logs with a `logger` it never
    # defines: both are provided here.
    from realtime_conversation import ConversationEngine, FastAPIWebSocketAdapter
    from realtime_conversation.core.interfaces import ConversationContext, ConversationMiddleware

    logger = logging.getLogger("seed003.example")
    caplog.set_level(logging.INFO, logger="seed003.example")

    # -- the document's example, verbatim --
    # fmt: off
    class LoggingMiddleware(ConversationMiddleware):
        async def process(self, context: ConversationContext, next_middleware) -> ConversationContext:
            # Pre-processing
            logger.info(f"Processing: {context.transcription.text}")
            
            # Call next middleware
            result = await next_middleware(context)
            
            # Post-processing
            logger.info(f"Response: {result.response_text}")
            return result
    # fmt: on
    # -- end of the example --

    engine = ConversationEngine()
    engine.add_middleware(LoggingMiddleware())
    app = FastAPI()

    @app.websocket("/ws/conversation")
    async def websocket_endpoint(websocket: WebSocket) -> None:
        await engine.handle_conversation(FastAPIWebSocketAdapter(websocket))

    async with serve(app) as port, connect(port) as client:
        await client.type("I would like a window seat")
        reply = await client.reply()
    assert reply.done["text"] == "You said: I would like a window seat"
    assert len(reply.audio) > 16000  # spoken, not only shown
    lines = [r.getMessage() for r in caplog.records if r.name == "seed003.example"]
    assert lines == [
        "Processing: I would like a window seat",
        "Response: You said: I would like a window seat",
    ]


# -- Core Concepts: Configuration System, and Configuration Examples --------------------


def test_configuration_system_examples(config_yaml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from realtime_conversation.adapters.config import (
        DictConfigurationProvider,
        EnvConfigurationProvider,
        YAMLConfigurationProvider,
    )

    for line in DOCUMENT_ENV.splitlines():  # the document's environment, verbatim
        name, _, value = line.partition("=")
        monkeypatch.setenv(name, value)

    # -- the document's example, verbatim --
    # fmt: off
    # YAML configuration
    config = YAMLConfigurationProvider("config.yaml")

    # Environment variables
    config = EnvConfigurationProvider(prefix="CONV_")

    # Dictionary (for testing)
    config = DictConfigurationProvider({
        "stt_engine": {"model_size": "base"},
        "tts_engine": {"temperature": 0.7}
    })
    # fmt: on
    # -- end of the example --

    assert config.get_stt_config() == {"model_size": "base"}
    assert config.get_tts_config() == {"temperature": 0.7}
    yaml_config = YAMLConfigurationProvider("config.yaml")
    assert yaml_config.settings.audio.buffer_duration == 10.0
    env = EnvConfigurationProvider(prefix="CONV_")
    assert env.get_stt_config() == {"model_size": "base", "device": "auto"}
    assert env.get_tts_config() == {"device": "cuda"}
    assert env.get_conversation_config()["response_mode"] == "template"
    assert env.get_pause_detection_config() == {"aggressiveness": 2}  # an int, from text


async def test_environment_variables_configure_a_running_engine(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="parley.realtime_conversation")
    for line in DOCUMENT_ENV.splitlines():  # the document's environment, verbatim
        name, _, value = line.partition("=")
        monkeypatch.setenv(name, value)
    from realtime_conversation import (
        ConversationEngine,
        EnvConfigurationProvider,
        FastAPIWebSocketAdapter,
    )

    engine = ConversationEngine(EnvConfigurationProvider(prefix="CONV_"))
    app = FastAPI()

    @app.websocket("/ws/conversation")
    async def websocket_endpoint(websocket: WebSocket) -> None:
        await engine.handle_conversation(FastAPIWebSocketAdapter(websocket))

    async with serve(app) as port, connect(port) as client:
        await client.type("hello")
        reply = await client.reply()
    assert reply.done["text"] == "Hello! How can I help you today?"  # response_mode template
    assert "WhisperSTTEngine(model_size='base')" in caplog.text
    assert "ChatterboxTTSEngine(device='cuda')" in caplog.text


# -- WebSocket Adapters: FastAPI ----------------------------------------------------------


async def test_fastapi_adapter_example_and_its_wire(ear: WhisperSTT) -> None:
    # The example uses `app` and `engine` from the quick start: made here.
    from realtime_conversation import ConversationEngine

    app = FastAPI()
    engine = ConversationEngine()

    # -- the document's example, verbatim --
    # fmt: off
    from realtime_conversation.adapters.websocket import FastAPIWebSocketAdapter

    @app.websocket("/ws/conversation")
    async def websocket_endpoint(websocket: WebSocket):
        adapter = FastAPIWebSocketAdapter(websocket)
        await engine.handle_conversation(adapter)
    # fmt: on
    # -- end of the example --

    async with serve(app) as port:
        # A client that announces its format first (Parley's browser `start`): 24 kHz.
        async with connect(port) as client:
            await client.ws.send(
                json.dumps({"type": "start", "format": {"sample_rate": 24000}, "user_id": "u1"})
            )
            ready = json.loads(await asyncio.wait_for(client.ws.recv(), _WAIT_S))
            assert ready["type"] == "ready" and ready["format"]["sample_rate"] == 24000
            await client.say("Can I change my booking?", rate=24000)
            reply = await client.reply()
            assert heard_ok("You said: Can I change my booking?", await reply.heard(ear, 24000))
            # Typed text in the same conversation.
            await client.type("Thank you")
            assert (await client.reply()).done["text"] == "You said: Thank you"
        # A peer's malformed frame (half a sample) closes that socket with 1007 and why.
        async with connect(port) as client:
            await client.ws.send(b"\x00\x01\x02")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    message = await asyncio.wait_for(client.ws.recv(), _WAIT_S)
                    if isinstance(message, str) and json.loads(message)["type"] == "error":
                        assert json.loads(message)["fatal"] is True
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
        # … and the next conversation is served as ever.
        async with connect(port) as client:
            await client.type("Still there?")
            assert (await client.reply()).done["text"] == "You said: Still there?"


# -- WebSocket Adapters: Custom Adapter ---------------------------------------------------


async def test_custom_adapter_example(ear: WhisperSTT) -> None:
    # The example's annotations use Optional and AudioData without importing them.
    from realtime_conversation import ConversationEngine
    from realtime_conversation.core.interfaces import AudioData

    # -- the document's example, verbatim --
    # fmt: off
    from realtime_conversation.core.interfaces import WebSocketAdapter

    class CustomWebSocketAdapter(WebSocketAdapter):
        async def receive_audio(self) -> Optional[AudioData]:
            # Custom audio reception logic
            ...
        
        async def send_audio(self, audio: AudioData) -> None:
            # Custom audio transmission logic
            ...
    # fmt: on
    # -- end of the example --

    engine = ConversationEngine()
    # As written, its receive_audio returns None at once: the caller has hung up.
    await asyncio.wait_for(engine.handle_conversation(CustomWebSocketAdapter()), _WAIT_S)

    class MicrophoneAdapter(CustomWebSocketAdapter, QueueAdapter):
        """The example's logic filled in (the test's QueueAdapter), at 8 kHz."""

        receive_audio = QueueAdapter.receive_audio
        send_audio = QueueAdapter.send_audio

    adapter = MicrophoneAdapter(sample_rate=8000)
    await run_spoken_turn(engine, adapter, "Is there parking near the restaurant?")
    # The reply came back at the adapter's 8 kHz.
    heard = await ear.transcribe(to_16k(bytes(adapter.audio), 8000))
    assert heard_ok("You said: Is there parking near the restaurant?", heard.text, slack=2)
    assert any(isinstance(e, ResponseDone) and e.status == "completed" for e in adapter.events)


# -- Advanced Usage: Custom Middleware ----------------------------------------------------


async def test_custom_middleware_example(caplog: pytest.LogCaptureFixture) -> None:
    from realtime_conversation import ConversationEngine, FastAPIWebSocketAdapter
    from realtime_conversation.core.interfaces import ConversationContext, ConversationMiddleware

    engine = ConversationEngine()  # the example adds to an `engine` it never makes
    seen: list[dict[str, Any]] = []

    class Outermost(ConversationMiddleware):
        """The test's: records each turn's metadata after the chain ran."""

        async def process(
            self, context: ConversationContext, next_middleware: Any
        ) -> ConversationContext:
            result = await next_middleware(context)
            seen.append(dict(result.metadata))
            return result

    class Broken(ConversationMiddleware):
        """The test's: a middleware with a bug, skipped for the turn (Parley's policy)."""

        async def process(
            self, context: ConversationContext, next_middleware: Any
        ) -> ConversationContext:
            raise KeyError("oops")

    engine.add_middleware(Outermost())

    # -- the document's example, verbatim --
    # fmt: off
    class CustomMiddleware(ConversationMiddleware):
        async def process(self, context: ConversationContext, next_middleware) -> ConversationContext:
            # Add custom logic before processing
            start_time = time.time()
            
            # Process through pipeline
            result = await next_middleware(context)
            
            # Add custom logic after processing
            processing_time = time.time() - start_time
            result.metadata["custom_timing"] = processing_time
            
            return result

    engine.add_middleware(CustomMiddleware())
    # fmt: on
    # -- end of the example --

    engine.add_middleware(Broken())
    app = FastAPI()

    @app.websocket("/ws/conversation")
    async def websocket_endpoint(websocket: WebSocket) -> None:
        await engine.handle_conversation(FastAPIWebSocketAdapter(websocket))

    async with serve(app) as port, connect(port) as client:
        await client.type("A table by the window")
        reply = await client.reply()
    assert reply.done["text"] == "You said: A table by the window"  # the answer still came
    (error,) = reply.of("error")
    assert error["code"] == "middleware_error" and "Broken failed" in error["message"]
    (meta,) = seen
    assert isinstance(meta["custom_timing"], float) and meta["custom_timing"] >= 0


# -- Advanced Usage: Authentication with Permissions --------------------------------------


async def test_authentication_with_permissions_example() -> None:
    from realtime_conversation import ConversationEngine, FastAPIWebSocketAdapter

    engine = ConversationEngine()  # the example adds to an `engine` it never makes

    # -- the document's example, verbatim --
    # fmt: off
    from realtime_conversation.plugins.middleware.auth import TokenAuthenticationMiddleware

    auth_middleware = TokenAuthenticationMiddleware(
        valid_tokens={"token1", "token2", "token3"},
        allow_anonymous=False
    )
    auth_middleware.set_required_permissions({"conversation", "audio_processing"})
    engine.add_middleware(auth_middleware)
    # fmt: on
    # -- end of the example --

    app = FastAPI()

    @app.websocket("/ws/conversation")
    async def websocket_endpoint(websocket: WebSocket) -> None:
        await engine.handle_conversation(FastAPIWebSocketAdapter(websocket))

    async with serve(app) as port:
        for path in ("/ws/conversation?token=not-a-token", "/ws/conversation"):
            async with connect(port, path) as client:
                await client.type("Read me my account balance")
                refused = await client.reply()
            (error,) = refused.of("error")
            assert error["code"] == "auth_error", error
            assert refused.done["status"] == "failed"
            assert "You said" not in refused.done["text"]  # the generator never ran
        async with connect(port, "/ws/conversation?token=token2") as client:
            await client.type("Read me my account balance")
            allowed = await client.reply()
        assert allowed.done["text"] == "You said: Read me my account balance"
        assert not allowed.of("error")

    # A token that lacks a required permission is refused, naming it.
    limited = TokenAuthenticationMiddleware({"t": {"conversation"}})
    limited.set_required_permissions({"conversation", "audio_processing"})
    engine2 = ConversationEngine()
    engine2.add_middleware(limited)
    app2 = FastAPI()

    @app2.websocket("/ws/conversation")
    async def endpoint2(websocket: WebSocket) -> None:
        await engine2.handle_conversation(FastAPIWebSocketAdapter(websocket))

    async with serve(app2) as port, connect(port, "/ws/conversation?token=t") as client:
        await client.type("hello")
        (error,) = (await client.reply()).of("error")
    assert error["code"] == "auth_error" and "audio_processing" in error["message"]


# -- Advanced Usage: Analytics and Monitoring ---------------------------------------------


async def test_analytics_and_monitoring_example(ear: WhisperSTT) -> None:
    from realtime_conversation import ConversationEngine, FastAPIWebSocketAdapter

    engine = ConversationEngine()  # the example adds to an `engine` it never makes

    # -- the document's example, verbatim --
    # fmt: off
    from realtime_conversation.plugins.middleware import AnalyticsMiddleware

    analytics = AnalyticsMiddleware(
        track_usage=True,
        track_performance=True,
        track_errors=True,
        retention_days=30
    )
    engine.add_middleware(analytics)
    # fmt: on
    # -- end of the example --

    app = FastAPI()

    @app.websocket("/ws/conversation")
    async def websocket_endpoint(websocket: WebSocket) -> None:
        await engine.handle_conversation(FastAPIWebSocketAdapter(websocket))

    async with serve(app) as port:
        async with connect(port) as client:
            await client.say("I need a quiet table.")
            spoken = await client.reply()
            await client.type("At eight o'clock")
            await client.reply()
        async with connect(port) as client:
            await client.type("Goodbye")
            await client.reply()

    # -- the document's example, verbatim (continued) --
    # fmt: off
    # Get statistics
    stats = analytics.get_usage_statistics()
    performance = analytics.get_performance_statistics()
    # fmt: on
    # -- end of the example --

    assert stats["total_turns"] == 3 and stats["total_conversations"] == 2
    (heard,) = [m["text"] for m in spoken.of("transcript") if m["role"] == "user"]
    assert normalise(heard) == "i need a quiet table"
    assert stats["characters_in"] == len(heard) + len("At eight o'clock") + len("Goodbye")
    assert stats["characters_out"] == stats["characters_in"] + 3 * len("You said: ")
    assert stats["retention_days"] == 30
    assert performance["count"] == 3 and performance["p50_ms"] is not None
    assert analytics.get_error_statistics() == {"total_errors": 0, "error_rate": 0.0, "by_code": {}}


async def test_parley_middleware_and_anonymous_callers_in_the_documents_chain() -> None:
    """Both shapes work: a Parley middleware (PII redaction) runs in the document's
    chain, before the generator; ``allow_anonymous`` lets a caller without a token in."""
    from parley.conversation import PIIRedactionMiddleware
    from realtime_conversation import (
        ConversationEngine,
        FastAPIWebSocketAdapter,
        TokenAuthenticationMiddleware,
    )

    engine = ConversationEngine()
    auth = TokenAuthenticationMiddleware({"vip"}, allow_anonymous=True)
    auth.set_required_permissions({"conversation"})
    engine.add_middleware(auth)
    engine.add_middleware(PIIRedactionMiddleware(), on_error="strict")
    app = FastAPI()

    @app.websocket("/ws/conversation")
    async def websocket_endpoint(websocket: WebSocket) -> None:
        await engine.handle_conversation(FastAPIWebSocketAdapter(websocket))

    async with serve(app) as port:
        async with connect(port) as client:  # anonymous
            await client.type("Mail me at jane.doe@example.com please")
            reply = await client.reply()
        assert reply.done["status"] == "completed" and not reply.of("error")
        assert "example.com" not in reply.done["text"]
        assert reply.done["text"].startswith("You said: Mail me at ")
        async with connect(port, "/ws/conversation?token=intruder") as client:
            await client.type("hello")
            (error,) = (await client.reply()).of("error")  # a wrong token is still refused
        assert error["code"] == "auth_error"


# -- Migration from Legacy System -----------------------------------------------------------


async def test_legacy_and_v2_endpoints(ear: WhisperSTT, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONV_CONVERSATION_RESPONSE_MODE", "CONV_STT_ENGINE_MODEL_SIZE"):
        monkeypatch.delenv(name, raising=False)
    import realtime_conversation
    from realtime_conversation import (
        FastAPIWebSocketAdapter,
        get_conversation_engine,
        websocket_conversation_v2,
    )

    realtime_conversation.set_conversation_engine(None)  # made from CONV_* on first use
    router = APIRouter()  # the example's `router`

    # -- the document's example, with its elided parameters ("...") left out --
    # fmt: off
    # Legacy endpoint (maintains same interface)
    @router.websocket("/ws/conversation")
    async def legacy_conversation(websocket: WebSocket):
        # Uses new library internally
        await websocket_conversation_v2(websocket)

    # New endpoint (full features)
    @router.websocket("/ws/conversation/v2")
    async def modern_conversation(websocket: WebSocket):
        engine = await get_conversation_engine()
        adapter = FastAPIWebSocketAdapter(websocket)
        await engine.handle_conversation(adapter)
    # fmt: on
    # -- end of the example --

    app = FastAPI()
    app.include_router(router)
    library = FastAPI()
    library.include_router(realtime_conversation.router)  # the library's own routes
    async with serve(app) as port:
        async with connect(port, "/ws/conversation") as client:
            await client.say("Do you have vegetarian dishes?")
            reply = await client.reply()
            assert heard_ok("You said: Do you have vegetarian dishes?", await reply.heard(ear))
        async with connect(port, "/ws/conversation/v2") as client:
            await client.type("And vegan ones?")
            assert (await client.reply()).done["text"] == "You said: And vegan ones?"
    async with serve(library) as port:
        for path in ("/ws/conversation", "/ws/conversation/v2"):
            async with connect(port, path) as client:
                await client.type("Hi there")
                assert (await client.reply()).done["text"] == "You said: Hi there"
    realtime_conversation.set_conversation_engine(None)


# -- Testing ------------------------------------------------------------------------------


async def test_mock_stt_engine_example(ear: WhisperSTT) -> None:
    # The example's annotations and result use the library's types.
    from realtime_conversation import ConversationEngine
    from realtime_conversation.core.interfaces import AudioData, TranscriptionResult

    # -- the document's example, verbatim --
    # fmt: off
    class MockSTTEngine:
        async def transcribe(self, audio: AudioData, language: Optional[str] = None) -> Optional[TranscriptionResult]:
            return TranscriptionResult(
                text="Mock transcription",
                language="en",
                segments=[],
                confidence=1.0
            )
        
        @property
        def model_loaded(self) -> bool:
            return True

    # Use in tests
    engine = ConversationEngine()
    engine.configure_stt(MockSTTEngine())
    # fmt: on
    # -- end of the example --

    adapter = QueueAdapter()
    await run_spoken_turn(engine, adapter, "Anything at all, the mock hears the same.")
    (done,) = [e for e in adapter.events if isinstance(e, ResponseDone)]
    assert done.text == "You said: Mock transcription"  # whatever the caller said
    heard = (await ear.transcribe(bytes(adapter.audio))).text
    assert heard_ok("You said: Mock transcription", heard)  # and Piper said it


# -- Error Handling -----------------------------------------------------------------------


async def test_error_handling_example(caplog: pytest.LogCaptureFixture) -> None:
    from realtime_conversation import ConversationEngine

    logger = logging.getLogger("seed003.errors")  # the example's `logger`
    engine = ConversationEngine()

    class UnpluggedAdapter(QueueAdapter):
        """The example's `adapter`: its microphone fails after some audio."""

        async def receive_audio(self) -> Optional[AudioData]:
            if self.inbox.empty():
                raise ConnectionError("microphone unplugged")
            return await self.inbox.get()

    adapter = UnpluggedAdapter()
    await adapter.inbox.put(AudioData(bytes(640)))

    async def run() -> None:
        # -- the document's example, verbatim --
        # fmt: off
        try:
            await engine.handle_conversation(adapter)
        except Exception as e:
            logger.error(f"Conversation error: {e}")
            await adapter.send_json({"type": "error", "message": str(e)})
        # fmt: on
        # -- end of the example --

    with caplog.at_level(logging.ERROR, logger="seed003.errors"):
        await asyncio.wait_for(run(), _WAIT_S)
    assert "Conversation error: microphone unplugged" in caplog.text
    assert adapter.sent_json[-1] == {"type": "error", "message": "microphone unplugged"}


# -- what Parley cannot honour is refused, naming what it offers ------------------------


def test_values_parley_cannot_honour_name_what_it_offers(tmp_path: Path) -> None:
    from realtime_conversation import (
        ChatterboxTTSEngine,
        ConversationEngine,
        DictConfigurationProvider,
        EnvConfigurationProvider,
        WebRTCPauseDetector,
        WhisperSTTEngine,
        YAMLConfigurationProvider,
    )

    def refused(fn: Any, *needles: str) -> None:
        with pytest.raises(ConfigError) as info:
            fn()
        for needle in needles:
            assert needle in str(info.value), str(info.value)

    refused(lambda: WhisperSTTEngine(model_size="huge"), "tiny.en", "base", "large-v3")
    refused(lambda: WhisperSTTEngine(language="fr"), "English only", "'en'")
    refused(lambda: WhisperSTTEngine(device="tpu"), "'auto'", "'cpu'", "'cuda'")
    refused(lambda: ChatterboxTTSEngine(audio_prompt_path="me.wav"), "torch", "Piper")
    refused(lambda: ChatterboxTTSEngine(speed_factor=0), "positive")
    refused(lambda: WebRTCPauseDetector(aggressiveness=5), "0, 1, 2 or 3")
    refused(
        lambda: DictConfigurationProvider({"conversation": {"response_mode": "llm"}}),
        "conversation.response_mode",
        "'echo' or 'template'",
    )
    refused(
        lambda: DictConfigurationProvider({"stt_engine": {"model": "base"}}),
        "stt_engine.model",
        "model_size, device, language",
    )
    refused(lambda: DictConfigurationProvider({"voice": {}}), "stt_engine, tts_engine")
    refused(
        lambda: EnvConfigurationProvider(environ={"CONV_STT_ENGINE_MODELSIZE": "base"}),
        "CONV_STT_ENGINE_MODELSIZE",
        "CONV_STT_ENGINE_MODEL_SIZE",
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("pause_detection:\n  aggressiveness: 7\n")
    refused(lambda: YAMLConfigurationProvider(bad), "pause_detection.aggressiveness", "3")
    refused(lambda: YAMLConfigurationProvider(tmp_path / "missing.yaml"), "cannot read")
    from realtime_conversation import FastAPIWebSocketAdapter

    engine = ConversationEngine(DictConfigurationProvider({"audio": {"sample_rate": 22050}}))

    ws = WebSocket(
        {"type": "websocket", "path": "/", "query_string": b"", "headers": []},
        receive=None,  # type: ignore[arg-type]
        send=None,  # type: ignore[arg-type]
    )
    refused(
        lambda: FastAPIWebSocketAdapter(ws).call_stream(engine.audio_format),
        "8000, 16000, 24000, 44100, 48000",
    )
    refused(lambda: engine.configure_stt(object()), "transcribe(audio, language)")  # type: ignore[arg-type]


# -- the import paths --------------------------------------------------------------------


def test_every_module_path_of_the_document_is_an_alias_of_parley() -> None:
    import realtime_conversation

    real = parley.realtime_conversation
    names = [
        "",
        *(
            m.name.removeprefix(real.__name__)
            for m in pkgutil.walk_packages(real.__path__, real.__name__ + ".")
        ),
    ]
    for suffix in names:
        ours = importlib.import_module(real.__name__ + suffix)
        alias = importlib.import_module(realtime_conversation.__name__ + suffix)
        assert alias.__all__ == ours.__all__, suffix
        for name in ours.__all__:
            assert getattr(alias, name) is getattr(ours, name), f"{suffix}.{name}"
    # The document's tree, module by module.
    for path in (
        "core.interfaces",
        "core.engine",
        "core.pipeline",
        "adapters.websocket.fastapi",
        "adapters.websocket.base",
        "adapters.stt.whisper",
        "adapters.stt.base",
        "adapters.tts.chatterbox",
        "adapters.tts.base",
        "adapters.config.yaml",
        "adapters.config.env",
        "adapters.config.dict",
        "plugins.pause_detection.webrtc",
        "plugins.pause_detection.energy",
        "plugins.response_generation.echo",
        "plugins.response_generation.template",
        "plugins.middleware.logging",
        "plugins.middleware.timing",
        "plugins.middleware.auth",
        "plugins.middleware.analytics",
        "audio.codecs",
        "audio.processing",
    ):
        importlib.import_module(f"realtime_conversation.{path}")

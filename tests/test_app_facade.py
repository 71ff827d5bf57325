"""The Parley facade: decorators, typed events, tools, engine choice, run() checks."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from parley.app import Parley, ParleyBackend
from parley.audio import AudioFormat
from parley.config import (
    ConversationConfig,
    EngineKind,
    ParleySettings,
    engine_spec,
    load_settings,
)
from parley.engines.factory import EngineFactory
from parley.engines.loopback import LoopbackEngine
from parley.engines.spec import EngineRequest, EngineSpec
from parley.errors import ConfigError
from parley.events import AudioDelta, TranscriptFinal
from parley.protocols.browser import StartMessage, encode_client_message
from servers import serve_app


def loopback_app(config: ConversationConfig | None = None) -> Parley:
    return Parley(config, settings=ParleySettings(engine=EngineKind.LOOPBACK))


def test_backend_alias_and_asgi_built_once() -> None:
    assert ParleyBackend is Parley
    app = loopback_app(ConversationConfig(system_prompt="You are a helpful support agent"))
    assert app.asgi is app.asgi
    assert app.config.system_prompt == "You are a helpful support agent"


def test_tool_gets_a_json_schema_from_hints_and_docstring() -> None:
    app = loopback_app()

    @app.tool
    async def order_status(order_id: str, verbose: bool = False) -> str:
        """Look up an order.

        Args:
            order_id: The order number the caller read out.
        """
        return "shipped"

    @app.tool(name="refund")
    def make_refund(amount: float) -> str:
        """Refund money."""
        return "ok"

    specs = {s.name: s for s in app.tools.specs}
    assert set(specs) == {"order_status", "refund"}
    params = specs["order_status"].parameters
    assert params["required"] == ["order_id"]
    assert params["properties"]["order_id"] == {
        "type": "string",
        "description": "The order number the caller read out.",
    }
    assert specs["order_status"].description == "Look up an order."
    assert order_status.__name__ == "order_status"  # the decorator returns the function


def test_on_event_takes_event_classes_only() -> None:
    app = loopback_app()
    with pytest.raises(ConfigError, match="not a Parley event"):
        app.on_event(str)


def test_unknown_voices_are_rejected() -> None:
    # every feature switch is built now (tests/test_config.py checks the list)
    # The realtime engine fails over to the local cascade, so its voice must exist too.
    with pytest.raises(ConfigError, match="voice"):
        Parley(
            ConversationConfig(voice="nobody"), settings=ParleySettings(engine=EngineKind.REALTIME)
        )
    Parley(settings=ParleySettings(engine=EngineKind.REALTIME))
    with pytest.raises(ConfigError, match="voice"):
        Parley(ConversationConfig(voice="nobody"), settings=ParleySettings(engine=EngineKind.LOCAL))


def test_run_with_workers_needs_an_import_string() -> None:
    with pytest.raises(ConfigError, match="import string"):
        loopback_app().run(workers=2)


def banner(settings: ParleySettings) -> str:
    return Parley(settings=settings).engine_choice().banner()


def test_start_banner_names_what_is_configured() -> None:
    local = banner(ParleySettings())
    assert local.startswith("engine: local")
    assert "Silero VAD → Whisper tiny.en → echo (no LLM configured" in local
    assert "→ Piper joe" in local
    hosted = banner(ParleySettings(brain="openai:llama3", llm_base_url="http://localhost:11434/v1"))
    assert "llama3" in hosted and "localhost:11434" in hosted
    other = banner(ParleySettings(vad="webrtc", stt="openai:whisper-1", tts="openai:tts-1"))
    assert "WebRTC VAD → OpenAI STT whisper-1" in other and "OpenAI TTS tts-1" in other
    assert "Whisper" not in other and "Piper" not in other
    assert "loopback" in banner(ParleySettings(engine=EngineKind.LOOPBACK))


def test_a_custom_engine_factory_claims_no_models_and_warms_none() -> None:
    app = Parley(settings=ParleySettings(), engine_factory=lambda req: LoopbackEngine())
    assert app.engine_choice().reason == "custom engine_factory"
    assert "Whisper" not in app.engine_choice().banner()
    asyncio.run(app.switchboard.warmup())  # would load Whisper if it warmed the cascade
    from parley.providers.models import load_counts

    assert not any("whisper" in name for name in load_counts())


def test_realtime_without_a_key_is_said_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    app = Parley(settings=ParleySettings(engine=EngineKind.REALTIME))
    assert any("without an API key" in w for w in app.engine_choice().warnings)
    keyed = Parley(settings=ParleySettings(engine=EngineKind.REALTIME, realtime_api_key="sk-1"))
    assert keyed.engine_choice().warnings == ()


def test_factory_builds_loopback_at_the_transport_rate() -> None:
    factory = EngineFactory(engine_spec(ParleySettings(engine=EngineKind.LOOPBACK)))
    engine = factory.build(
        EngineRequest("c1", EngineKind.LOOPBACK, "echo", "joe", "", None, 8000, "ulaw")
    )
    assert isinstance(engine, LoopbackEngine) and engine.input_format.sample_rate == 8000
    assert engine.input_format.encoding == "ulaw"


@pytest.mark.parametrize("vad", ["silero", "webrtc", "energy"])
def test_factory_gives_a_phone_call_a_vad_at_the_line_rate(vad: str) -> None:
    # 8 kHz in: the VAD scores the line's audio as it is (no resample per frame).
    factory = EngineFactory(engine_spec(ParleySettings(engine=EngineKind.LOCAL, vad=vad)))
    phone = factory.build(EngineRequest("c1", EngineKind.LOCAL, "echo", "joe", "", None, 8000))
    page = factory.build(EngineRequest("c2", EngineKind.LOCAL, "echo", "joe", "", None, 24000))
    assert phone.input_format == AudioFormat("pcm16", 8000, 1)
    assert page.input_format == AudioFormat("pcm16", 16000, 1)  # the STT's rate
    assert factory.providers.vad(vad, 8000).sample_rate == 8000
    assert factory.providers.vad(vad) is factory.providers.vad(vad, 16000)


def test_provider_specs_are_checked_against_what_exists() -> None:
    with pytest.raises(ConfigError, match="unknown stt 'kaldi': use whisper"):
        load_settings(overrides={"stt": "kaldi"})
    with pytest.raises(ConfigError, match="not installed"):
        load_settings(overrides={"stt": "whisper:large-v3"})
    with pytest.raises(ConfigError, match="needs a model"):
        load_settings(overrides={"tts": "openai"})
    with pytest.raises(ConfigError, match="webrtc"):
        EngineFactory(EngineSpec(vad="vosk"))


async def test_hooks_run_with_session_and_user_and_a_failing_hook_is_contained() -> None:
    app = loopback_app()
    log: list[tuple[str, str, str | None]] = []
    audio: list[int] = []

    @app.on_conversation_start
    async def started(session_id: str, user_id: str | None) -> None:
        log.append(("start", session_id, user_id))

    @app.on_conversation_start
    async def broken(session_id: str, user_id: str | None) -> None:
        raise RuntimeError("a bug in user code")

    over = asyncio.Event()

    @app.on_conversation_end
    async def ended(session_id: str, user_id: str | None) -> None:
        log.append(("end", session_id, user_id))
        over.set()

    @app.on_event(AudioDelta)
    async def on_audio(session_id: str, event: AudioDelta) -> None:
        audio.append(len(event.audio))

    @app.on_event(TranscriptFinal)
    async def never(session_id: str, event: TranscriptFinal) -> None:
        raise AssertionError("loopback has no transcripts")

    async with serve_app(app) as server, websockets.connect(server.ws_url("/ws/audio")) as ws:
        await ws.send(encode_client_message(StartMessage(user_id="u-9")))
        await ws.recv()
        await ws.send(b"\x00\x01" * 480)
        assert isinstance(await asyncio.wait_for(ws.recv(), 5), bytes)
        await ws.close()
        await asyncio.wait_for(over.wait(), 5)
    ((_, call_id, _), _) = log
    assert log == [("start", call_id, "u-9"), ("end", call_id, "u-9")]
    assert not app.calls.records()  # ended calls leave memory: they live in the store
    stored = await app.session(call_id)
    assert stored is not None and stored.record.status == "ended"
    assert audio == [960]

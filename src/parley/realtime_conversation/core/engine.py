"""``ConversationEngine``: the document's orchestrator, running Parley calls.

``handle_conversation(adapter)`` is one real Parley call: the adapter becomes a
call stream (:meth:`WebSocketAdapter.call_stream`: the browser protocol's stream
for FastAPI, :class:`~parley.realtime_conversation.adapters.websocket.base.AdapterStream`
for a custom adapter); the configured STT, TTS, pause detector and response
generator become the providers of a :class:`~parley.engines.cascade.CascadeEngine`
(:mod:`.pipeline`), with the middleware chain as its request hook; and
:class:`~parley.conversation.Conversation` runs it — state machine, audio
conversion both ways, barge-in, transcript, per-turn metrics, a spoken apology
when a turn fails.

What is not configured comes from the configuration provider's sections (or their
defaults): ``WhisperSTTEngine(**stt_engine)``, ``ChatterboxTTSEngine(**tts_engine)``
(Piper), ``WebRTCPauseDetector(**pause_detection)``, and the generator of
``conversation.response_mode`` (``echo`` unless it says ``template``).

Errors: a turn that fails (an engine, the generator, a refusal by middleware) is
reported to the peer and apologised for, and the call goes on; a peer's malformed
frame closes that socket with 1007/1008 and the reason; a configuration error is
raised before the call starts; an exception from the adapter's own methods is
raised from ``handle_conversation`` as it was (the document's error-handling
example catches it there).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any, Final

from parley.audio.format import AudioFormat
from parley.conversation.middleware import Middleware, OnError
from parley.conversation.session import Conversation
from parley.engines.cascade import CascadeConfig, CascadeEngine
from parley.errors import AuthError, ConfigError, RemoteProtocolError
from parley.events import ErrorEvent, Event
from parley.realtime_conversation.adapters.config.settings import (
    ConfigurationProvider,
    EngineSettings,
    validate_settings,
)
from parley.realtime_conversation.adapters.stt.whisper import WhisperSTTEngine
from parley.realtime_conversation.adapters.tts.chatterbox import ChatterboxTTSEngine
from parley.realtime_conversation.core.interfaces import (
    ConversationMiddleware,
    PauseDetector,
    ResponseGenerator,
    STTEngine,
    TTSEngine,
    WebSocketAdapter,
)
from parley.realtime_conversation.core.pipeline import ProtocolSTT, ProtocolTTS, TurnPipeline
from parley.realtime_conversation.plugins.pause_detection.webrtc import WebRTCPauseDetector
from parley.realtime_conversation.plugins.response_generation.echo import EchoResponseGenerator
from parley.realtime_conversation.plugins.response_generation.template import (
    TemplateResponseGenerator,
)
from parley.transports.socket import CLOSE_POLICY

__all__ = ["HANDSHAKE_TIMEOUT_S", "ConversationEngine"]

log = logging.getLogger("parley.realtime_conversation")

#: A peer that connects but sends nothing within this time is closed (1008).
HANDSHAKE_TIMEOUT_S: Final = 10.0
_STT_RATE: Final = 16000


def _check(part: object, protocol: type, what: str, needs: str) -> None:
    # A check of user code, once at configuration time (not a capability probe).
    if not isinstance(part, protocol):
        raise ConfigError(f"{type(part).__name__} is not {what}: it needs {needs}", field=what)


@dataclass(frozen=True, slots=True)
class _Parts:
    stt: STTEngine
    tts: TTSEngine
    pause: PauseDetector
    generator: ResponseGenerator


class ConversationEngine:
    """See the module docstring. One engine serves any number of conversations at once;
    configure it before the first."""

    def __init__(self, config_provider: ConfigurationProvider | None = None) -> None:
        self.config = config_provider
        self.settings: EngineSettings = (
            EngineSettings()
            if config_provider is None
            else validate_settings(_sections(config_provider), repr(config_provider))
        )
        audio = self.settings.audio
        self.audio_format = AudioFormat("pcm16", audio.sample_rate, audio.channels)
        self._stt: STTEngine | None = None
        self._tts: TTSEngine | None = None
        self._voice_config: dict[str, Any] = {}
        self._pause: PauseDetector | None = None
        self._generator: ResponseGenerator | None = None
        self._middleware: list[tuple[ConversationMiddleware | Middleware, OnError]] = []
        self._warmed: _Parts | None = None

    # -- configuration (the document's methods) ------------------------------------------

    def configure_stt(self, stt_engine: STTEngine) -> None:
        _check(stt_engine, STTEngine, "stt", "async transcribe(audio, language) and model_loaded")
        self._stt = stt_engine

    def configure_tts(
        self, tts_engine: TTSEngine, voice_config: dict[str, Any] | None = None
    ) -> None:
        """``voice_config`` is what every ``synthesize(text, voice_config)`` gets."""
        _check(tts_engine, TTSEngine, "tts", "async synthesize(text, voice_config)")
        self._tts = tts_engine
        self._voice_config = dict(voice_config or {})

    def configure_pause_detection(self, pause_detector: PauseDetector) -> None:
        _check(pause_detector, PauseDetector, "pause_detection", "vad and turn_config()")
        if pause_detector.vad.sample_rate != _STT_RATE:
            raise ConfigError(
                f"the pause detector's VAD runs at {pause_detector.vad.sample_rate} Hz; the "
                f"STT engines take {_STT_RATE} Hz",
                field="pause_detection",
            )
        self._pause = pause_detector

    def configure_response_generation(self, response_generator: ResponseGenerator) -> None:
        _check(
            response_generator,
            ResponseGenerator,
            "response_generation",
            "async generate_response(text, context)",
        )
        self._generator = response_generator

    def add_middleware(
        self, middleware: ConversationMiddleware | Middleware, *, on_error: OnError = "skip"
    ) -> None:
        """Append to the chain (the first added runs first, outermost). A document
        middleware or a Parley one (``parley.conversation.middleware``): both have
        ``process(context, next)``. ``on_error``: what a bug in it does to a turn
        (``skip``: left out for that turn, reported; ``strict``: the turn fails)."""
        _check(middleware, ConversationMiddleware, "middleware", "async process(context, next)")
        if on_error not in ("skip", "strict"):
            raise ConfigError(f"must be 'skip' or 'strict', not {on_error!r}", field="on_error")
        self._middleware.append((middleware, on_error))

    @property
    def middleware(self) -> tuple[ConversationMiddleware | Middleware, ...]:
        return tuple(m for m, _ in self._middleware)

    # -- the parts, defaults from the configuration --------------------------------------

    @property
    def stt_engine(self) -> STTEngine:
        if self._stt is None:
            cfg = self.settings.stt_engine.model_dump(exclude_unset=True)
            self._stt = WhisperSTTEngine(**cfg)
        return self._stt

    @property
    def tts_engine(self) -> TTSEngine:
        if self._tts is None:
            self._tts = ChatterboxTTSEngine(
                **self.settings.tts_engine.model_dump(exclude_unset=True)
            )
        return self._tts

    @property
    def pause_detector(self) -> PauseDetector:
        if self._pause is None:
            cfg = self.settings.pause_detection.model_dump(exclude_unset=True)
            self._pause = WebRTCPauseDetector(**cfg)
        return self._pause

    @property
    def response_generator(self) -> ResponseGenerator:
        if self._generator is None:
            template = self.settings.conversation.response_mode == "template"
            self._generator = TemplateResponseGenerator() if template else EchoResponseGenerator()
        return self._generator

    def _parts(self) -> _Parts:
        return _Parts(
            self.stt_engine, self.tts_engine, self.pause_detector, self.response_generator
        )

    async def warmup(self) -> None:
        """Load the models before the first conversation: one second of silence through
        the STT engine and one word through the TTS engine (this calls your own
        engines too, once: a second call with the same parts does nothing)."""
        parts = self._parts()
        if parts == self._warmed:
            return
        await ProtocolSTT(parts.stt).transcribe(bytes(2 * _STT_RATE))
        async for _ in ProtocolTTS(parts.tts, sample_rate=_STT_RATE).synthesize("Hello."):
            pass
        self._warmed = parts

    # -- a conversation ------------------------------------------------------------------

    def _cascade(self, parts: _Parts, pipeline: TurnPipeline, out_rate: int) -> CascadeEngine:
        turn = parts.pause.turn_config()
        if "buffer_duration" in self.settings.audio.model_fields_set:
            turn = replace(turn, max_utterance_ms=self.settings.audio.buffer_duration * 1000)
        config = CascadeConfig(turn=turn, max_history=self.settings.conversation.max_history_length)
        engine = CascadeEngine(
            parts.pause.vad,
            ProtocolSTT(parts.stt, on_result=pipeline.heard, sample_rate=_STT_RATE),
            pipeline,
            ProtocolTTS(parts.tts, sample_rate=out_rate, voice_config=self._voice_config),
            config,
        )
        engine.set_text_hooks(request=pipeline.request)
        return engine

    async def handle_conversation(self, adapter: WebSocketAdapter) -> None:
        """Run one conversation over ``adapter`` until the peer leaves (see the module
        docstring for what is raised and what is reported)."""
        parts = self._parts()
        stream = adapter.call_stream(self.audio_format)
        who = type(adapter).__name__
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                caller = await stream.handshake()
        except TimeoutError:
            reason = f"nothing received within {HANDSHAKE_TIMEOUT_S:g} s"
            log.info("refused %s: %s", who, reason)
            await stream.end(CLOSE_POLICY, reason)
            return
        except (RemoteProtocolError, AuthError) as exc:
            log.info("refused %s: %s", who, exc)  # the stream closed it, saying why
            return
        if caller is None:
            return
        conversation_id = f"rc_{secrets.token_hex(6)}"
        await stream.ready(conversation_id)
        if not parts.stt.model_loaded:
            log.info(
                "conversation %s: %s has not loaded its model yet; the first utterance waits "
                "for it (await engine.warmup() at start avoids that)",
                conversation_id,
                type(parts.stt).__name__,
            )
        token = caller.metadata.get("token")
        engine: CascadeEngine | None = None
        conversation: Conversation | None = None

        async def skipped(middleware: Middleware, exc: Exception) -> None:
            message = f"{type(middleware).__name__} failed ({exc}); skipped for this turn"
            log.warning("conversation %s: %s", conversation_id, message)
            if conversation is not None:
                await conversation.report(ErrorEvent("middleware_error", message))

        pipeline = TurnPipeline(
            self._middleware,
            parts.generator,
            conversation_id=conversation_id,
            user_id=caller.user_id,
            token=token,
            metadata=caller.metadata,
            history=lambda: engine.history if engine is not None else (),
            on_skip=skipped,
        )
        engine = self._cascade(parts, pipeline, stream.output_format.sample_rate)

        async def on_event(conv: Conversation, event: Event) -> None:
            await stream.show(event, conv.state)

        conversation = Conversation(
            stream, engine, conversation_id=conversation_id, on_event=on_event
        )
        t0 = time.monotonic()
        log.info(
            "conversation %s started: adapter=%s user=%s",
            conversation_id,
            who,
            caller.user_id or "-",
        )
        try:
            await conversation.run()
        except ExceptionGroup as group:
            raise _first_leaf(group) from None
        finally:
            journal = conversation.journal
            fatal = [e for e in journal.errors if e.fatal]
            log.info(
                "conversation %s ended: adapter=%s duration=%.1fs turns=%d errors=%d%s",
                conversation_id,
                who,
                time.monotonic() - t0,
                len(journal.transcript),
                len(journal.errors),
                f" ({fatal[-1].message})" if fatal else "",
            )


def _sections(provider: ConfigurationProvider) -> dict[str, dict[str, Any]]:
    return {
        "stt_engine": provider.get_stt_config(),
        "tts_engine": provider.get_tts_config(),
        "conversation": provider.get_conversation_config(),
        "pause_detection": provider.get_pause_detection_config(),
        "audio": provider.get_audio_config(),
    }


def _first_leaf(group: BaseExceptionGroup[Exception]) -> Exception:
    """The first real error of a (possibly nested) group from the conversation's tasks."""
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first

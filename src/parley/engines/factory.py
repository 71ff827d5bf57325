"""Build one call's engine from an :class:`~parley.engines.spec.EngineSpec`.

The one factory every route uses (``/twilio/stream``, ``/ws/audio``, ``/v1/realtime``,
the framework hosts): ``local`` is the cascade of the spec's VAD, STT, brain and TTS
(providers from :class:`~parley.providers.registry.ProviderRegistry`, built once and
shared, their models loaded once per process); ``realtime`` is the Realtime API,
wrapped in a failover to that same cascade when ``spec.realtime.failover``;
``loopback`` echoes the caller. :meth:`EngineFactory.describe` is what the server
says at start, so the banner names what is really configured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from parley.engines.cascade import CascadeConfig, CascadeEngine
from parley.engines.cascade_config import DEFAULT_INPUT_QUEUE
from parley.engines.loopback import LoopbackEngine
from parley.engines.seams import CallEngine
from parley.engines.spec import EngineKind, EngineRequest, EngineSpec
from parley.errors import ConfigError
from parley.providers.registry import ProviderKind, ProviderRegistry, check_spec

__all__ = ["EngineChoice", "EngineFactory"]

#: The telephone rate: Silero, WebRTC and the energy VAD all run at it.
_PHONE_RATE = 8000


@dataclass(frozen=True, slots=True)
class EngineChoice:
    """What will answer calls, and why — the start banner's content."""

    engine: EngineKind
    brain: str
    reason: str
    warnings: tuple[str, ...] = ()

    def banner(self) -> str:
        if self.engine is EngineKind.LOOPBACK:
            return f"engine: loopback ({self.reason})"
        return f"engine: {self.engine.value}, brain: {self.brain} ({self.reason})"


class EngineFactory:
    """Makes engines for calls from one spec; providers come from ``providers``."""

    def __init__(self, spec: EngineSpec, providers: ProviderRegistry | None = None) -> None:
        self.spec = spec
        self.providers = providers or ProviderRegistry()
        for kind, text in self._parts(spec.brain).items():
            check_spec(kind, text)

    def _parts(self, brain: str) -> dict[ProviderKind, str]:
        s = self.spec
        return {"vad": s.vad, "stt": s.stt, "brain": brain, "tts": s.tts}

    def _needs_cascade(self, engine: EngineKind) -> bool:
        return engine is EngineKind.LOCAL or (
            engine is EngineKind.REALTIME and self.spec.realtime.failover
        )

    # -- checks and description ---------------------------------------------------------

    def check(self, engine: EngineKind, brain: str, voice: str) -> None:
        """Raise ``ConfigError`` now for a choice that cannot be built (REST → 422)."""
        check_spec("brain", brain)
        if self._needs_cascade(engine):
            self._check_voice(voice)

    def _check_voice(self, voice: str) -> None:
        tts = check_spec("tts", self.spec.tts)
        if tts.name == "piper" and voice != tts.model:
            raise ConfigError(
                f"voice {voice!r} is not installed (available: {tts.model})", field="voice"
            )

    def describe(self) -> EngineChoice:
        s = self.spec
        if s.engine is EngineKind.LOOPBACK:
            return EngineChoice(
                s.engine, "none", "callers hear their own audio; for transport tests"
            )
        cascade = self._cascade_description(s.brain)
        if s.engine is EngineKind.REALTIME:
            rt = s.realtime
            warnings: list[str] = []
            if rt.api_key is None and not os.environ.get("OPENAI_API_KEY"):
                warnings.append(
                    "--engine realtime without an API key (set PARLEY_REALTIME_API_KEY or "
                    "OPENAI_API_KEY): the upstream will refuse calls"
                    + (", so every call runs on the local cascade" if rt.failover else "")
                )
            fallback = f"; failover to the cascade: {cascade}" if rt.failover else "; no failover"
            return EngineChoice(
                s.engine, rt.model, f"Realtime API at {rt.url}{fallback}", tuple(warnings)
            )
        return EngineChoice(s.engine, s.brain, cascade)

    def _cascade_description(self, brain: str) -> str:
        p = self.providers
        return " → ".join(p.describe(kind, text) for kind, text in self._parts(brain).items())

    # -- lifecycle -----------------------------------------------------------------------

    async def warmup(self) -> None:
        """Load the models of the configured cascade now (off the event loop), so the
        first call does not wait for them; nothing for loopback or realtime-only."""
        if self._needs_cascade(self.spec.engine) and self.spec.engine is EngineKind.LOCAL:
            await self.providers.warmup(self._parts(self.spec.brain))

    async def aclose(self) -> None:
        """Close the providers' HTTP clients (hosted LLMs keep a connection pool)."""
        await self.providers.aclose()

    # -- building ------------------------------------------------------------------------

    def cascade(self, request: EngineRequest) -> CascadeEngine:
        """The cascade for ``request`` (also the text-mode engine of ``/v1/realtime``)."""
        p, s = self.providers, self.spec
        self._check_voice(request.voice)
        tools = request.tools if request.tools is not None and len(request.tools.specs) else None
        # A hosted TTS can fail like any provider: the apology then comes from Piper.
        apology_tts = None if p.is_local("tts", s.tts) else p.tts("piper")
        stt = p.stt(s.stt)
        # A phone line's 8 kHz goes to the VAD as it is (no resample per frame; the
        # utterance is upsampled once for the STT); other lines at the STT's rate.
        vad_rate = _PHONE_RATE if request.sample_rate == _PHONE_RATE else stt.sample_rate
        return CascadeEngine(
            p.vad(s.vad, vad_rate),
            stt,
            p.brain(request.brain),
            p.tts(s.tts, request.voice),
            CascadeConfig(
                instructions=request.instructions,
                apology_text=s.apology,
                input_queue_chunks=request.audio_queue or DEFAULT_INPUT_QUEUE,
            ),
            tools=tools,
            apology_tts=apology_tts,
        )

    def build(self, request: EngineRequest) -> CallEngine:
        """A fresh engine for one call (``request.sample_rate``/``line_encoding`` describe
        the transport's input: µ-law from a phone passes straight through to Realtime)."""
        self.check(request.engine, request.brain, request.voice)
        if request.engine is EngineKind.LOOPBACK:
            return LoopbackEngine(
                request.sample_rate,
                encoding=request.line_encoding,
                queue_chunks=request.audio_queue or 100,
            )
        if request.engine is EngineKind.LOCAL:
            return self.cascade(request)
        from parley.engines.failover import FailoverEngine
        from parley.engines.realtime import RealtimeConfig, RealtimeEngine

        rt = self.spec.realtime
        tools = request.tools if request.tools is not None and len(request.tools.specs) else None
        primary = RealtimeEngine(
            RealtimeConfig(
                url=rt.url,
                model=rt.model,
                api_key=rt.api_key,
                instructions=request.instructions,
                voice=rt.voice,
                audio="ulaw" if request.line_encoding == "ulaw" else "pcm16",
            ),
            tools=tools,
        )
        if not rt.failover:
            return primary
        return FailoverEngine(primary, lambda: self.cascade(request))

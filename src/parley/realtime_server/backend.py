"""What a local Realtime session runs on: the shared input side, and the engine seam.

The server does its own turn detection and transcription (so ``server_vad`` takes
the client's parameters and manual commit works the same way) with the models of
a :class:`RealtimeBackend`, shared by every session of a process. Each user turn
goes as text to the session's engine, which makes the reply (text and audio). The
engine comes from outside — one per session, built by whoever admits the
connection (the server's switchboard, with the app's brain, tools, middleware and
context) — and must be able to cancel a reply (:class:`RealtimeSessionEngine`).

For standalone use (``parley realtime-server``, tests) :func:`offline_backend` and
:func:`offline_engine_maker` are the offline defaults: Silero VAD and Whisper
tiny.en in, the echo brain and Piper out, every model loaded once per process.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from parley.engines.cascade import CascadeConfig, CascadeEngine
from parley.engines.seams import Cancellable, Engine
from parley.errors import ConfigError
from parley.providers.seams import LLM, STT, TTS, VAD

if TYPE_CHECKING:
    from parley.providers.piper import PiperTTS
    from parley.providers.silero import SileroVAD
    from parley.providers.whisper import WhisperSTT

__all__ = [
    "EngineMaker",
    "RealtimeBackend",
    "RealtimeSessionEngine",
    "cascade_maker",
    "offline_backend",
    "offline_engine_maker",
]


class RealtimeSessionEngine(Engine, Cancellable, Protocol):
    """What a session needs of its engine: the :class:`~parley.engines.seams.Engine`
    seam, and cancelling a reply (``response.cancel``, barge-in)."""


#: Builds one session's engine (called once per WebSocket connection).
EngineMaker = Callable[[], RealtimeSessionEngine]


@dataclass(frozen=True, slots=True)
class RealtimeBackend:
    """The input side shared by every session of a server.

    ``vad`` and ``stt`` run at one rate (the input pipeline's); ``voices`` are the
    names ``session.update`` may choose (the first is the default; an unknown voice
    leaves the voice unchanged and ``session.updated`` says so);
    ``transcription_model`` is the name reported in the session. ``warmups`` load
    the models (:meth:`warmup`).
    """

    vad: VAD
    stt: STT
    voices: tuple[str, ...] = ("default",)
    transcription_model: str = "parley-stt"
    response_start_timeout_s: float = 60.0  # engine silent this long → response failed
    # A function call the client leaves unanswered this long ends with an error result
    # to the model (OpenAI has no such limit; a stuck client must not hang the reply).
    tool_output_timeout_s: float = 120.0
    warmups: tuple[Callable[[], object], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.vad.sample_rate != self.stt.sample_rate:
            raise ConfigError(
                f"VAD rate {self.vad.sample_rate} Hz differs from STT rate "
                f"{self.stt.sample_rate} Hz",
                field="stt",
            )
        if not self.voices:
            raise ConfigError("at least one voice is needed", field="voices")

    @property
    def sample_rate(self) -> int:
        """The rate of the input pipeline (VAD and STT)."""
        return self.vad.sample_rate

    async def warmup(self) -> None:
        """Load every model now, off the event loop, so the first session is warm."""
        results = [w() for w in self.warmups]
        await asyncio.gather(*(r for r in results if asyncio.iscoroutine(r)))


def cascade_maker(
    vad: VAD, stt: STT, brain: LLM, tts: TTS, config: CascadeConfig | None = None
) -> EngineMaker:
    """An engine maker building a cascade on shared providers, one per session. The
    session hands it each user turn as text, so its own VAD and STT stay idle."""
    settings = config or CascadeConfig()

    def make() -> RealtimeSessionEngine:
        return CascadeEngine(vad, stt, brain, tts, settings)

    return make


@functools.cache
def _offline_models() -> tuple[SileroVAD, WhisperSTT, PiperTTS]:
    from parley.providers.piper import PiperTTS
    from parley.providers.silero import SileroVAD
    from parley.providers.whisper import WhisperSTT

    return SileroVAD(16000), WhisperSTT(), PiperTTS()


@functools.cache
def offline_backend() -> RealtimeBackend:
    """The offline input side: Silero VAD and Whisper tiny.en (voice: Piper's joe).

    Cached, so a process builds the providers once; models load on first use (or in
    :meth:`RealtimeBackend.warmup`) through the shared model registry.
    """
    vad, stt, tts = _offline_models()
    return RealtimeBackend(
        vad=vad,
        stt=stt,
        voices=("joe",),
        transcription_model="whisper-tiny.en",
        warmups=(vad.warmup, stt.warmup, tts.warmup),
    )


def offline_engine_maker() -> EngineMaker:
    """The offline default engine: the echo brain on the cascade, spoken by Piper."""
    from parley.providers.responders import EchoResponder

    vad, stt, tts = _offline_models()
    return cascade_maker(vad, stt, EchoResponder(), tts)

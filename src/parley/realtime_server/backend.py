"""What a local Realtime session runs on: the input side (VAD + STT) and the engine.

The server does its own turn detection and transcription (so ``server_vad`` takes
the client's parameters and manual commit works the same way) and hands each
user turn to a Parley :class:`~parley.engines.seams.Engine` as text; the engine
makes the reply (text and audio). Any engine fits; the default is the offline
cascade (Silero VAD, Whisper tiny.en, the echo brain, Piper), with every model
loaded once per process and shared by all sessions.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from parley.engines.seams import Engine
from parley.errors import ConfigError
from parley.providers.seams import STT, VAD

__all__ = ["EngineMaker", "RealtimeBackend", "offline_backend"]

#: Builds one session's engine (called once per WebSocket connection).
EngineMaker = Callable[[], Engine]


@dataclass(frozen=True, slots=True)
class RealtimeBackend:
    """Shared by every session of a server.

    ``voices`` are the names ``session.update`` may choose (the first is the
    default); an unknown voice leaves the voice unchanged and ``session.updated``
    says so. ``transcription_model`` is the name reported in the session.
    """

    vad: VAD
    stt: STT
    make_engine: EngineMaker
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


@functools.cache
def offline_backend() -> RealtimeBackend:
    """The offline default: Silero + Whisper tiny.en in, the echo brain and Piper out.

    Cached, so a process builds the providers once; models load on first use (or in
    :meth:`RealtimeBackend.warmup`) through the shared model registry.
    """
    from parley.engines.cascade import CascadeConfig, CascadeEngine
    from parley.providers.piper import PiperTTS
    from parley.providers.responders import EchoResponder
    from parley.providers.silero import SileroVAD
    from parley.providers.whisper import WhisperSTT

    vad, stt, tts, brain = SileroVAD(16000), WhisperSTT(), PiperTTS(), EchoResponder()

    def make_engine() -> Engine:
        return CascadeEngine(vad, stt, brain, tts, CascadeConfig())

    return RealtimeBackend(
        vad=vad,
        stt=stt,
        make_engine=make_engine,
        voices=("joe",),
        transcription_model="whisper-tiny.en",
        warmups=(vad.warmup, stt.warmup, tts.warmup),
    )

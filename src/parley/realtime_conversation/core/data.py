"""The document's data types: audio chunks, transcriptions and syntheses.

Plain frozen values, shared by the protocols (:mod:`.interfaces`), the adapters and
the engines; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from parley.errors import ConfigError

__all__ = ["AudioData", "SynthesisResult", "TranscriptionResult"]


@dataclass(frozen=True, slots=True)
class AudioData:
    """A chunk of audio: raw PCM16 little-endian samples (interleaved when stereo).

    Other containers (WAV) are decoded first
    (:func:`parley.realtime_conversation.audio.codecs.decode_wav`).
    """

    data: bytes
    sample_rate: int = 16000
    channels: int = 1
    format: str = "pcm16"

    def __post_init__(self) -> None:
        if self.format != "pcm16":
            raise ConfigError(
                f"AudioData holds raw PCM16 (format='pcm16'), not {self.format!r}; decode WAV "
                "with realtime_conversation.audio.codecs.decode_wav",
                field="format",
            )
        if self.channels not in (1, 2):
            raise ConfigError(f"channels must be 1 or 2, not {self.channels}", field="channels")
        if self.sample_rate <= 0:
            raise ConfigError(f"sample rate must be positive, not {self.sample_rate}")

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return len(self.data) / (2 * self.channels * self.sample_rate)


@dataclass(frozen=True, slots=True)
class TranscriptionResult:
    """What an STT engine heard. Parley's Whisper decodes without timestamps (for
    latency), so its ``segments`` are ``[]`` and its ``confidence`` is ``None``."""

    text: str
    language: str | None = None
    segments: list[dict[str, Any]] = field(default_factory=list)
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class SynthesisResult:
    """What a TTS engine made of ``text``."""

    audio: AudioData
    text: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.audio.duration

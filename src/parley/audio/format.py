"""Audio formats: what a byte stream on some wire means.

An :class:`AudioFormat` names an encoding, a sample rate and a channel count; the
constants below are the formats the platforms Parley talks to actually use
(protocols.md §2, §4, §5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

from parley.errors import ConfigError

__all__ = [
    "BROWSER_FORMAT",
    "DISCORD_FORMAT",
    "OPENAI_PCM_FORMAT",
    "TWILIO_FORMAT",
    "AudioFormat",
    "Encoding",
]

Encoding = Literal["pcm16", "ulaw", "alaw", "opus"]

_ENCODINGS: Final = frozenset(get_args(Encoding))
# Opus only runs at these rates (RFC 6716 §2); G.711 is defined at 8 kHz but we allow
# any rate so a test or a wideband variant can use the same codec tables.
_OPUS_RATES: Final = frozenset({8000, 12000, 16000, 24000, 48000})
_MIN_RATE: Final = 1000
_MAX_RATE: Final = 384_000


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """Encoding, sample rate (Hz) and channel count (1 or 2) of an audio stream.

    Invalid combinations raise :class:`~parley.errors.ConfigError` at construction,
    so a format that exists is a format the codecs can handle.
    """

    encoding: Encoding
    sample_rate: int
    channels: int = 1

    def __post_init__(self) -> None:
        if self.encoding not in _ENCODINGS:
            raise ConfigError(
                f"unknown encoding {self.encoding!r}; expected one of {sorted(_ENCODINGS)}",
                field="encoding",
            )
        if (
            not isinstance(self.sample_rate, int)
            or isinstance(self.sample_rate, bool)
            or not _MIN_RATE <= self.sample_rate <= _MAX_RATE
        ):
            raise ConfigError(
                f"sample rate must be an integer in [{_MIN_RATE}, {_MAX_RATE}] Hz, "
                f"got {self.sample_rate!r}",
                field="sample_rate",
            )
        if self.channels not in (1, 2) or isinstance(self.channels, bool):
            raise ConfigError(f"channels must be 1 or 2, got {self.channels!r}", field="channels")
        if self.encoding == "opus" and self.sample_rate not in _OPUS_RATES:
            raise ConfigError(
                f"Opus runs at {sorted(_OPUS_RATES)} Hz, not {self.sample_rate}",
                field="sample_rate",
            )

    @property
    def sample_width(self) -> int:
        """Bytes per sample per channel (2 for PCM16, 1 for G.711); 0 for Opus (compressed)."""
        if self.encoding == "pcm16":
            return 2
        if self.encoding in ("ulaw", "alaw"):
            return 1
        return 0

    def samples_per_frame(self, ms: int = 20) -> int:
        """Samples per channel in ``ms`` milliseconds (must come out whole)."""
        samples, rest = divmod(self.sample_rate * ms, 1000)
        if rest or samples <= 0:
            raise ConfigError(
                f"{ms} ms is not a whole number of samples at {self.sample_rate} Hz",
                field="frame_ms",
            )
        return samples

    def frame_bytes(self, ms: int = 20) -> int:
        """Bytes in ``ms`` milliseconds of this format (160 for 20 ms of Twilio µ-law).

        Opus frames vary in size, so asking an Opus format raises ``ConfigError``; use the
        decoded PCM16 format (``AudioFormat("pcm16", 48000, 2)``) instead.
        """
        if self.encoding == "opus":
            raise ConfigError("Opus packets have no fixed size", field="encoding")
        return self.samples_per_frame(ms) * self.channels * self.sample_width

    def duration_ms(self, nbytes: int) -> float:
        """Milliseconds of audio in ``nbytes`` bytes of this (uncompressed) format."""
        if self.encoding == "opus":
            raise ConfigError("Opus packets have no fixed size", field="encoding")
        return nbytes * 1000 / (self.sample_rate * self.channels * self.sample_width)


TWILIO_FORMAT: Final = AudioFormat("ulaw", 8000, 1)
"""Twilio Media Streams: G.711 µ-law, 8 kHz, mono, 160 bytes per 20 ms."""

BROWSER_FORMAT: Final = AudioFormat("pcm16", 24000, 1)
"""Parley's browser protocol: PCM16 little-endian, 24 kHz, mono."""

OPENAI_PCM_FORMAT: Final = AudioFormat("pcm16", 24000, 1)
"""OpenAI Realtime ``audio/pcm``: PCM16 little-endian, 24 kHz, mono."""

DISCORD_FORMAT: Final = AudioFormat("opus", 48000, 2)
"""Discord voice: Opus, 48 kHz, stereo, 20 ms frames."""

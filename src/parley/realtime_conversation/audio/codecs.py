"""Audio formats for the document's ``AudioData``: raw PCM16, WAV, float samples.

Thin over :mod:`parley.audio.wav` and :mod:`parley.audio.pcm`; other encodings
(µ-law, A-law, Opus) are Parley's transports' business (``parley.audio``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from parley.audio.wav import read_wav, wav_bytes
from parley.realtime_conversation.core.data import AudioData

__all__ = ["decode_wav", "encode_wav", "float32_to_pcm16", "pcm16_to_float32"]


def decode_wav(data: bytes) -> AudioData:
    """A PCM WAV file's bytes → ``AudioData`` (8-, 16-, 24- and 32-bit PCM become PCM16)."""
    pcm, rate, channels = read_wav(data)
    return AudioData(pcm, rate, channels)


def encode_wav(audio: AudioData) -> bytes:
    """``AudioData`` → a 16-bit PCM WAV file's bytes."""
    return wav_bytes(audio.data, audio.sample_rate, audio.channels)


def pcm16_to_float32(data: bytes) -> npt.NDArray[np.float32]:
    """PCM16 little-endian → float32 samples in [-1, 1)."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) * np.float32(1.0 / 32768.0)


def float32_to_pcm16(samples: npt.NDArray[np.floating]) -> bytes:
    """Float samples in [-1, 1] → PCM16 little-endian (clipped)."""
    scaled = np.clip(np.asarray(samples, dtype=np.float64) * 32768.0, -32768, 32767)
    return bytes(scaled.astype("<i2").tobytes())

"""Audio processing for the document's ``AudioData``: format conversion and level.

Thin over :mod:`parley.audio` (one soxr resampler per conversion, G.711-free PCM16
paths). Whole chunks only: a conversation's streaming audio is converted by the
conversation itself, once per direction.
"""

from __future__ import annotations

import math

import numpy as np

from parley.audio.format import AudioFormat
from parley.audio.transcode import Transcoder
from parley.realtime_conversation.core.data import AudioData

__all__ = ["convert", "rms_dbfs", "to_mono_pcm16"]


def convert(audio: AudioData, sample_rate: int, channels: int = 1) -> AudioData:
    """``audio`` as PCM16 at ``sample_rate`` with ``channels`` (a copy only when needed)."""
    if audio.sample_rate == sample_rate and audio.channels == channels:
        return audio
    src = AudioFormat("pcm16", audio.sample_rate, audio.channels)
    transcoder = Transcoder(src, AudioFormat("pcm16", sample_rate, channels))
    data = transcoder.process(audio.data) + transcoder.flush()
    return AudioData(data, sample_rate, channels)


def to_mono_pcm16(audio: AudioData, sample_rate: int) -> bytes:
    """The samples of ``audio`` as PCM16 mono at ``sample_rate`` (what STT engines take)."""
    return convert(audio, sample_rate, 1).data


def rms_dbfs(audio: AudioData) -> float:
    """RMS level in dB relative to full scale (-100 for digital silence)."""
    samples = np.frombuffer(audio.data, dtype="<i2").astype(np.float64)
    if samples.size == 0:
        return -100.0
    power = float(np.mean(samples * samples)) / (32768.0 * 32768.0)
    return 10.0 * math.log10(power) if power > 1e-10 else -100.0

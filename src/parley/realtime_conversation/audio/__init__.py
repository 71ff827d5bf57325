"""Audio utilities of the document's library: formats (:mod:`.codecs`) and
processing (:mod:`.processing`) of ``AudioData``, over :mod:`parley.audio`."""

from __future__ import annotations

from parley.realtime_conversation.audio.codecs import (
    decode_wav,
    encode_wav,
    float32_to_pcm16,
    pcm16_to_float32,
)
from parley.realtime_conversation.audio.processing import convert, rms_dbfs, to_mono_pcm16

__all__ = [
    "convert",
    "decode_wav",
    "encode_wav",
    "float32_to_pcm16",
    "pcm16_to_float32",
    "rms_dbfs",
    "to_mono_pcm16",
]

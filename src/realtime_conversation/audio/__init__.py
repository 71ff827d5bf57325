"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.audio`.
"""

from __future__ import annotations

from parley.realtime_conversation.audio import (
    convert,
    decode_wav,
    encode_wav,
    float32_to_pcm16,
    pcm16_to_float32,
    rms_dbfs,
    to_mono_pcm16,
)

__all__ = [
    "convert",
    "decode_wav",
    "encode_wav",
    "float32_to_pcm16",
    "pcm16_to_float32",
    "rms_dbfs",
    "to_mono_pcm16",
]

"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.audio.codecs`.
"""

from __future__ import annotations

from parley.realtime_conversation.audio.codecs import (
    decode_wav,
    encode_wav,
    float32_to_pcm16,
    pcm16_to_float32,
)

__all__ = ["decode_wav", "encode_wav", "float32_to_pcm16", "pcm16_to_float32"]

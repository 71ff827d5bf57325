"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.audio.processing`.
"""

from __future__ import annotations

from parley.realtime_conversation.audio.processing import (
    convert,
    rms_dbfs,
    to_mono_pcm16,
)

__all__ = ["convert", "rms_dbfs", "to_mono_pcm16"]

"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.adapters.stt.whisper`.
"""

from __future__ import annotations

from parley.realtime_conversation.adapters.stt.whisper import (
    BUNDLED_MODEL,
    WHISPER_MODEL_SIZES,
    WhisperSTTEngine,
)

__all__ = ["BUNDLED_MODEL", "WHISPER_MODEL_SIZES", "WhisperSTTEngine"]

"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.adapters.stt`.
"""

from __future__ import annotations

from parley.realtime_conversation.adapters.stt import (
    BaseSTTEngine,
    STTEngine,
    WhisperSTTEngine,
)

__all__ = ["BaseSTTEngine", "STTEngine", "WhisperSTTEngine"]

"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.adapters.tts`.
"""

from __future__ import annotations

from parley.realtime_conversation.adapters.tts import (
    BaseTTSEngine,
    ChatterboxTTSEngine,
    TTSEngine,
)

__all__ = ["BaseTTSEngine", "ChatterboxTTSEngine", "TTSEngine"]

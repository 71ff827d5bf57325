"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.adapters.tts.chatterbox`.
"""

from __future__ import annotations

from parley.realtime_conversation.adapters.tts.chatterbox import (
    VOICE_CONFIG_KEYS,
    ChatterboxTTSEngine,
)

__all__ = ["VOICE_CONFIG_KEYS", "ChatterboxTTSEngine"]

"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.adapters.tts.base`.
"""

from __future__ import annotations

from parley.realtime_conversation.adapters.tts.base import (
    BaseTTSEngine,
)

__all__ = ["BaseTTSEngine"]

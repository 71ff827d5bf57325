"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.core.pipeline`.
"""

from __future__ import annotations

from parley.realtime_conversation.core.pipeline import (
    ProtocolSTT,
    ProtocolTTS,
    TurnPipeline,
)

__all__ = ["ProtocolSTT", "ProtocolTTS", "TurnPipeline"]

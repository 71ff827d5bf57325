"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.plugins.pause_detection.energy`.
"""

from __future__ import annotations

from parley.realtime_conversation.plugins.pause_detection.energy import (
    EnergyPauseDetector,
)

__all__ = ["EnergyPauseDetector"]

"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.plugins.pause_detection`.
"""

from __future__ import annotations

from parley.realtime_conversation.plugins.pause_detection import (
    EnergyPauseDetector,
    PauseDetector,
    WebRTCPauseDetector,
)

__all__ = ["EnergyPauseDetector", "PauseDetector", "WebRTCPauseDetector"]

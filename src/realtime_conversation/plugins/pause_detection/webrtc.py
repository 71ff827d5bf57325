"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.plugins.pause_detection.webrtc`.
"""

from __future__ import annotations

from parley.realtime_conversation.plugins.pause_detection.webrtc import (
    WebRTCPauseDetector,
)

__all__ = ["WebRTCPauseDetector"]

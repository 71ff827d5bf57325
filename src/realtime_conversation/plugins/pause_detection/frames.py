"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.plugins.pause_detection.frames`.
"""

from __future__ import annotations

from parley.realtime_conversation.plugins.pause_detection.frames import (
    turn_config_from_frames,
)

__all__ = ["turn_config_from_frames"]

"""Pause detection (the document's ``plugins.pause_detection``): a Parley VAD plus
where a pause ends the turn."""

from __future__ import annotations

from parley.realtime_conversation.core.interfaces import PauseDetector
from parley.realtime_conversation.plugins.pause_detection.energy import EnergyPauseDetector
from parley.realtime_conversation.plugins.pause_detection.webrtc import WebRTCPauseDetector

__all__ = ["EnergyPauseDetector", "PauseDetector", "WebRTCPauseDetector"]

"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.core.data`.
"""

from __future__ import annotations

from parley.realtime_conversation.core.data import (
    AudioData,
    SynthesisResult,
    TranscriptionResult,
)

__all__ = ["AudioData", "SynthesisResult", "TranscriptionResult"]

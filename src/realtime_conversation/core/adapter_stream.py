"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.core.adapter_stream`.
"""

from __future__ import annotations

from parley.realtime_conversation.core.adapter_stream import (
    AdapterStream,
    AudioPeer,
)

__all__ = ["AdapterStream", "AudioPeer"]

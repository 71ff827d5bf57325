"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.adapters.websocket.base`.
"""

from __future__ import annotations

from parley.realtime_conversation.adapters.websocket.base import (
    AdapterStream,
    AudioPeer,
    WebSocketAdapter,
)

__all__ = ["AdapterStream", "AudioPeer", "WebSocketAdapter"]

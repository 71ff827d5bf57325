"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.adapters.websocket`.
"""

from __future__ import annotations

from parley.realtime_conversation.adapters.websocket import (
    AdapterStream,
    FastAPIWebSocketAdapter,
    WebSocketAdapter,
)

__all__ = ["AdapterStream", "FastAPIWebSocketAdapter", "WebSocketAdapter"]

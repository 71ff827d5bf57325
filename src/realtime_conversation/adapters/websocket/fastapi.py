"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.adapters.websocket.fastapi`.
"""

from __future__ import annotations

from parley.realtime_conversation.adapters.websocket.fastapi import (
    FastAPIWebSocketAdapter,
)

__all__ = ["FastAPIWebSocketAdapter"]

"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.compat`.
"""

from __future__ import annotations

from parley.realtime_conversation.compat import (
    get_conversation_engine,
    router,
    set_conversation_engine,
    websocket_conversation_v2,
)

__all__ = [
    "get_conversation_engine",
    "router",
    "set_conversation_engine",
    "websocket_conversation_v2",
]

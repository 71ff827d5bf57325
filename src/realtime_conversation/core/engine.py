"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.core.engine`.
"""

from __future__ import annotations

from parley.realtime_conversation.core.engine import (
    HANDSHAKE_TIMEOUT_S,
    ConversationEngine,
)

__all__ = ["HANDSHAKE_TIMEOUT_S", "ConversationEngine"]

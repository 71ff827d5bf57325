"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.plugins.middleware`.
"""

from __future__ import annotations

from parley.realtime_conversation.plugins.middleware import (
    AnalyticsMiddleware,
    AuthenticationMiddleware,
    ConversationContext,
    ConversationMiddleware,
    LoggingMiddleware,
    NextMiddleware,
    TimingMiddleware,
    TokenAuthenticationMiddleware,
)

__all__ = [
    "AnalyticsMiddleware",
    "AuthenticationMiddleware",
    "ConversationContext",
    "ConversationMiddleware",
    "LoggingMiddleware",
    "NextMiddleware",
    "TimingMiddleware",
    "TokenAuthenticationMiddleware",
]

"""Pipeline middleware (the document's ``plugins.middleware``): each a thin layer over
Parley's middleware (:mod:`parley.conversation.middleware`)."""

from __future__ import annotations

from parley.realtime_conversation.core.interfaces import (
    ConversationContext,
    ConversationMiddleware,
    NextMiddleware,
)
from parley.realtime_conversation.plugins.middleware.analytics import AnalyticsMiddleware
from parley.realtime_conversation.plugins.middleware.auth import (
    AuthenticationMiddleware,
    TokenAuthenticationMiddleware,
)
from parley.realtime_conversation.plugins.middleware.logging import LoggingMiddleware
from parley.realtime_conversation.plugins.middleware.timing import TimingMiddleware

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

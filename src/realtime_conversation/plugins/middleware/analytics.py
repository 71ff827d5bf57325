"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.plugins.middleware.analytics`.
"""

from __future__ import annotations

from parley.realtime_conversation.plugins.middleware.analytics import (
    AnalyticsMiddleware,
)

__all__ = ["AnalyticsMiddleware"]

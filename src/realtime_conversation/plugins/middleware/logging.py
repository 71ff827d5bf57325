"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.plugins.middleware.logging`.
"""

from __future__ import annotations

from parley.realtime_conversation.plugins.middleware.logging import (
    LoggingMiddleware,
)

__all__ = ["LoggingMiddleware"]

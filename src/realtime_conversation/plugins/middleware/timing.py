"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.plugins.middleware.timing`.
"""

from __future__ import annotations

from parley.realtime_conversation.plugins.middleware.timing import (
    TimingMiddleware,
)

__all__ = ["TimingMiddleware"]

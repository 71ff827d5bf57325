"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.adapters.stt.base`.
"""

from __future__ import annotations

from parley.realtime_conversation.adapters.stt.base import (
    BaseSTTEngine,
)

__all__ = ["BaseSTTEngine"]

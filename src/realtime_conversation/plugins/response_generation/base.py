"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.plugins.response_generation.base`.
"""

from __future__ import annotations

from parley.realtime_conversation.plugins.response_generation.base import (
    LLMResponseGenerator,
)

__all__ = ["LLMResponseGenerator"]

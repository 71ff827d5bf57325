"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.adapters.config.dict`.
"""

from __future__ import annotations

from parley.realtime_conversation.adapters.config.dict import (
    DictConfigurationProvider,
)

__all__ = ["DictConfigurationProvider"]

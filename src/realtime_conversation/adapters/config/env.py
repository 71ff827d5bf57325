"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.adapters.config.env`.
"""

from __future__ import annotations

from parley.realtime_conversation.adapters.config.env import (
    EnvConfigurationProvider,
)

__all__ = ["EnvConfigurationProvider"]

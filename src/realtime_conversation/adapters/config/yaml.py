"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.adapters.config.yaml`.
"""

from __future__ import annotations

from parley.realtime_conversation.adapters.config.yaml import (
    YAMLConfigurationProvider,
)

__all__ = ["YAMLConfigurationProvider"]

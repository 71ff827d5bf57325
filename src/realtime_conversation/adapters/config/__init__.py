"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.adapters.config`.
"""

from __future__ import annotations

from parley.realtime_conversation.adapters.config import (
    ConfigurationProvider,
    DictConfigurationProvider,
    EngineSettings,
    EnvConfigurationProvider,
    YAMLConfigurationProvider,
)

__all__ = [
    "ConfigurationProvider",
    "DictConfigurationProvider",
    "EngineSettings",
    "EnvConfigurationProvider",
    "YAMLConfigurationProvider",
]

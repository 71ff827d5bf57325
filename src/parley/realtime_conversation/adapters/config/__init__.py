"""Configuration providers (the document's ``adapters.config``): YAML, environment
variables, a dict — one set of keys (:mod:`.settings`)."""

from __future__ import annotations

from parley.realtime_conversation.adapters.config.dict import DictConfigurationProvider
from parley.realtime_conversation.adapters.config.env import EnvConfigurationProvider
from parley.realtime_conversation.adapters.config.settings import (
    ConfigurationProvider,
    EngineSettings,
)
from parley.realtime_conversation.adapters.config.yaml import YAMLConfigurationProvider

__all__ = [
    "ConfigurationProvider",
    "DictConfigurationProvider",
    "EngineSettings",
    "EnvConfigurationProvider",
    "YAMLConfigurationProvider",
]

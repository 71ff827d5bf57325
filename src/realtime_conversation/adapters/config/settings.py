"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.adapters.config.settings`.
"""

from __future__ import annotations

from parley.realtime_conversation.adapters.config.settings import (
    SECTIONS,
    AudioSettings,
    ConfigurationProvider,
    ConversationSettings,
    EngineSettings,
    PauseDetectionSettings,
    SectionedConfiguration,
    STTSettings,
    TTSSettings,
    validate_settings,
)

__all__ = [
    "SECTIONS",
    "AudioSettings",
    "ConfigurationProvider",
    "ConversationSettings",
    "EngineSettings",
    "PauseDetectionSettings",
    "STTSettings",
    "SectionedConfiguration",
    "TTSSettings",
    "validate_settings",
]

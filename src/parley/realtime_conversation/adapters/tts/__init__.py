"""TTS engine adapters (the document's ``adapters.tts``)."""

from __future__ import annotations

from parley.realtime_conversation.adapters.tts.base import BaseTTSEngine
from parley.realtime_conversation.adapters.tts.chatterbox import ChatterboxTTSEngine
from parley.realtime_conversation.core.interfaces import TTSEngine

__all__ = ["BaseTTSEngine", "ChatterboxTTSEngine", "TTSEngine"]

"""STT engine adapters (the document's ``adapters.stt``)."""

from __future__ import annotations

from parley.realtime_conversation.adapters.stt.base import BaseSTTEngine
from parley.realtime_conversation.adapters.stt.whisper import WhisperSTTEngine
from parley.realtime_conversation.core.interfaces import STTEngine

__all__ = ["BaseSTTEngine", "STTEngine", "WhisperSTTEngine"]

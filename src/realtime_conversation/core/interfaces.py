"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.core.interfaces`.
"""

from __future__ import annotations

from parley.realtime_conversation.core.interfaces import (
    AudioData,
    ConversationContext,
    ConversationMiddleware,
    NextMiddleware,
    PauseDetector,
    ResponseGenerator,
    STTEngine,
    SynthesisResult,
    TranscriptionResult,
    TTSEngine,
    WebSocketAdapter,
)

__all__ = [
    "AudioData",
    "ConversationContext",
    "ConversationMiddleware",
    "NextMiddleware",
    "PauseDetector",
    "ResponseGenerator",
    "STTEngine",
    "SynthesisResult",
    "TTSEngine",
    "TranscriptionResult",
    "WebSocketAdapter",
]

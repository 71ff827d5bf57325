"""Seed 003's "Real-time WebSocket Conversation Library", as thin layers over Parley.

``from realtime_conversation import ConversationEngine`` (the document's import
path, an alias package of this one) and every module path the document shows work
as written; each name is a documented layer over Parley's typed core — the cascade
engine, the provider seams, the conversation, the middleware chain, the browser
protocol — never a second implementation. docs/seeds.md (§003) maps every name and
says what Parley cannot honour (Chatterbox needs torch: Piper speaks; one Whisper
model, tiny.en; the CPU).
"""

from __future__ import annotations

from parley.realtime_conversation.adapters.config import (
    DictConfigurationProvider,
    EnvConfigurationProvider,
    YAMLConfigurationProvider,
)
from parley.realtime_conversation.adapters.config.settings import ConfigurationProvider
from parley.realtime_conversation.adapters.stt import BaseSTTEngine, WhisperSTTEngine
from parley.realtime_conversation.adapters.tts import BaseTTSEngine, ChatterboxTTSEngine
from parley.realtime_conversation.adapters.websocket import FastAPIWebSocketAdapter
from parley.realtime_conversation.compat import (
    get_conversation_engine,
    router,
    set_conversation_engine,
    websocket_conversation_v2,
)
from parley.realtime_conversation.core.data import (
    AudioData,
    SynthesisResult,
    TranscriptionResult,
)
from parley.realtime_conversation.core.engine import ConversationEngine
from parley.realtime_conversation.core.interfaces import (
    ConversationContext,
    ConversationMiddleware,
    NextMiddleware,
    PauseDetector,
    ResponseGenerator,
    STTEngine,
    TTSEngine,
    WebSocketAdapter,
)
from parley.realtime_conversation.plugins.middleware import (
    AnalyticsMiddleware,
    AuthenticationMiddleware,
    LoggingMiddleware,
    TimingMiddleware,
    TokenAuthenticationMiddleware,
)
from parley.realtime_conversation.plugins.pause_detection import (
    EnergyPauseDetector,
    WebRTCPauseDetector,
)
from parley.realtime_conversation.plugins.response_generation import (
    EchoResponseGenerator,
    LLMResponseGenerator,
    TemplateResponseGenerator,
)

__all__ = [
    "AnalyticsMiddleware",
    "AudioData",
    "AuthenticationMiddleware",
    "BaseSTTEngine",
    "BaseTTSEngine",
    "ChatterboxTTSEngine",
    "ConfigurationProvider",
    "ConversationContext",
    "ConversationEngine",
    "ConversationMiddleware",
    "DictConfigurationProvider",
    "EchoResponseGenerator",
    "EnergyPauseDetector",
    "EnvConfigurationProvider",
    "FastAPIWebSocketAdapter",
    "LLMResponseGenerator",
    "LoggingMiddleware",
    "NextMiddleware",
    "PauseDetector",
    "ResponseGenerator",
    "STTEngine",
    "SynthesisResult",
    "TTSEngine",
    "TemplateResponseGenerator",
    "TimingMiddleware",
    "TokenAuthenticationMiddleware",
    "TranscriptionResult",
    "WebRTCPauseDetector",
    "WebSocketAdapter",
    "WhisperSTTEngine",
    "YAMLConfigurationProvider",
    "get_conversation_engine",
    "router",
    "set_conversation_engine",
    "websocket_conversation_v2",
]

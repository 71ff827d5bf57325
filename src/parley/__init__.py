"""Parley: real-time AI voice conversations, offline by default."""

from __future__ import annotations

from parley import errors, events
from parley.errors import (
    AuthError,
    ConfigError,
    LocalProtocolError,
    ParleyError,
    ProtocolError,
    ProviderError,
    RateLimited,
    RemoteProtocolError,
)

__version__ = "0.1.0"

# The facade is imported on first use, so `import parley.audio` (sans-I/O) stays light
# and does not pull the server (FastAPI, asyncio) in.
_LAZY = {
    "Parley": "parley.app",
    "ParleyBackend": "parley.app",
    "ConversationConfig": "parley.config",
    "ConversationMetrics": "parley.metrics",
    "AnalyticsResult": "parley.analytics",
    "Turn": "parley.conversation.transcript",
    "TriggerType": "parley.conversation.triggers",
    # seed 000's names (docs/seeds.md)
    "ContextTrigger": "parley.conversation.triggers",
    "Session": "parley.conversation.middleware",
    "OpenAIProvider": "parley.providers.fallback",
    "AnthropicProvider": "parley.providers.fallback",
    "RedisSessionStore": "parley.store.redis_sessions",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'parley' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "AnalyticsResult",
    "AnthropicProvider",
    "AuthError",
    "ConfigError",
    "ContextTrigger",
    "ConversationConfig",
    "ConversationMetrics",
    "LocalProtocolError",
    "OpenAIProvider",
    "Parley",
    "ParleyBackend",
    "ParleyError",
    "ProtocolError",
    "ProviderError",
    "RateLimited",
    "RedisSessionStore",
    "RemoteProtocolError",
    "Session",
    "TriggerType",
    "Turn",
    "__version__",
    "errors",
    "events",
]

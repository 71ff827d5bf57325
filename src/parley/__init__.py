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

__all__ = [
    "AuthError",
    "ConfigError",
    "LocalProtocolError",
    "ParleyError",
    "ProtocolError",
    "ProviderError",
    "RateLimited",
    "RemoteProtocolError",
    "__version__",
    "errors",
    "events",
]

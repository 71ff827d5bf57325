"""One error tree for all of Parley; each error says who is at fault.

``LocalProtocolError`` means *we* tried to do something the protocol forbids (a bug
in our code or in the caller's use of the API). ``RemoteProtocolError`` means the
peer sent something malformed; the connection that sent it is closed with the
error's reason, and no other call is affected.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConfigError",
    "LocalProtocolError",
    "ParleyError",
    "ProtocolError",
    "ProviderError",
    "RateLimited",
    "RemoteProtocolError",
]


class ParleyError(Exception):
    """Base of every error Parley raises on purpose.

    ``code`` is a short machine-readable slug for error events, REST and close
    reasons; each kind has its own (a protocol error carries the specific one).
    """

    code: str = "error"


class ProtocolError(ParleyError):
    """A wire-protocol violation.

    ``code`` is a short machine-readable slug (``bad_json``, ``media_before_start``,
    ``frame_too_large`` …) suitable for an error frame or a WebSocket close reason.
    """

    def __init__(self, message: str, *, code: str = "protocol_error") -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class LocalProtocolError(ProtocolError):
    """We were asked to send something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something malformed or out of order."""


class ProviderError(ParleyError):
    """A model provider (STT, LLM, TTS, VAD, realtime upstream) failed."""

    code = "provider_error"

    def __init__(self, message: str, *, provider: str = "", retryable: bool = False) -> None:
        super().__init__(message)
        self.provider = provider
        self.retryable = retryable


class ConfigError(ParleyError):
    """Invalid configuration; ``field`` names the offending setting."""

    code = "config_error"

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class AuthError(ParleyError):
    """Missing, invalid or reused credentials."""

    code = "auth_error"


class RateLimited(ParleyError):
    """Too many requests; ``retry_after`` is in seconds."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after

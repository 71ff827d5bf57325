"""Authentication of Twilio: webhook signatures and one-time Media Streams tokens.

The webhook (``POST /twilio/voice``) is checked with the official SDK's
``RequestValidator`` (HMAC-SHA1 of the URL and the sorted form parameters,
reference/protocols.md §2.5). Twilio cannot be made to sign the WebSocket in a way
that survives proxies, so the webhook mints a token that comes back in the stream's
``start.customParameters`` (the "robust alternative" of §2.5).

Tokens are stateless to verify: ``expiry.nonce.mac`` where the MAC (HMAC-SHA256
keyed with the auth token) covers the CallSid, the caller and the expiry, so any
worker process can check one, it cannot be moved to another call, and it expires.
One-time use is enforced per process (a used-set pruned at expiry); across worker
processes a replay inside the same call and the expiry window is not caught
without a shared store (Redis, a later layer).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from parley.errors import AuthError
from parley.protocols.twilio import Start

__all__ = ["TwilioTokens", "twilio_signature_valid"]


def twilio_signature_valid(
    auth_token: str, url: str, params: Mapping[str, Any], signature: str | None
) -> bool:
    """True if ``signature`` (the ``X-Twilio-Signature`` header) signs ``url`` + ``params``.

    ``params`` may be a Starlette ``FormData`` (repeated names are supported).
    """
    if not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TwilioTokens:
    """Mints and checks the one-time tokens passed to ``/twilio/stream``."""

    def __init__(
        self,
        secret: str,
        *,
        ttl_seconds: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = hashlib.sha256(b"parley-twilio-stream:" + secret.encode()).digest()
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._used: dict[str, float] = {}  # token -> expiry

    def _mac(self, call_sid: str, caller: str, expiry: int, nonce: str) -> str:
        msg = f"{call_sid}\x1f{caller}\x1f{expiry}\x1f{nonce}".encode()
        return _b64(hmac.new(self._key, msg, hashlib.sha256).digest()[:18])

    def issue(self, call_sid: str, caller: str = "") -> str:
        expiry = int(self._clock() + self.ttl_seconds) + 1
        nonce = _b64(secrets.token_bytes(9))
        return f"{expiry}.{nonce}.{self._mac(call_sid, caller, expiry, nonce)}"

    def check(self, token: str | None, call_sid: str, caller: str = "") -> None:
        """Accept ``token`` once for ``call_sid``; raise ``AuthError`` saying why not."""
        if not token:
            raise AuthError("missing token (no 'token' parameter in the stream's start)")
        parts = token.split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            raise AuthError("unknown token")
        expiry, nonce, mac = int(parts[0]), parts[1], parts[2]
        if not hmac.compare_digest(mac, self._mac(call_sid, caller, expiry, nonce)):
            raise AuthError("unknown token (not issued by this server for this call)")
        now = self._clock()
        if now > expiry:
            raise AuthError("expired token")
        self._prune(now)
        if token in self._used:
            raise AuthError("token already used")
        self._used[token] = expiry

    def check_start(self, start: Start) -> None:
        """Check the one-time token a Media Streams ``start`` carries in its
        ``customParameters`` (``token``, and the caller as ``from``)."""
        params = start.custom_parameters
        self.check(params.get("token"), start.call_sid, params.get("from", ""))

    def _prune(self, now: float) -> None:
        if len(self._used) > 64:
            for t in [t for t, exp in self._used.items() if exp < now]:
                del self._used[t]

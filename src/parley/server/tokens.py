"""One-time media-stream tokens, for every phone platform.

A phone platform asks our answer webhook (signed by the platform) how to handle a
call, then opens a media-stream WebSocket that no platform signs in a way that
survives proxies. So the webhook mints a token that comes back inside the stream's
first frames — Twilio's ``start.customParameters``, Telnyx's
``start.custom_parameters``, Plivo's ``extraHeaders``, Vonage's NCCO ``headers`` in
``websocket:connected`` — and the stream's handshake checks it.

Tokens are stateless to verify: ``expiry.nonce.mac`` where the MAC (HMAC-SHA256
keyed with a key derived from the platform's secret and the platform's name) covers
the call id, the caller and the expiry, so any worker process can check one, it
cannot be moved to another call or another platform, and it expires. One-time use
is enforced per process (a used-set pruned at expiry); across worker processes a
replay inside the same call and the expiry window is not caught without a shared
store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from parley.config import ParleySettings
from parley.errors import AuthError

__all__ = ["StreamTokens", "phone_tokens"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class StreamTokens:
    """Mints and checks the one-time tokens of one platform's media streams."""

    def __init__(
        self,
        secret: str,
        *,
        platform: str,
        ttl_seconds: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.platform = platform
        self._key = hashlib.sha256(f"parley-{platform}-stream:{secret}".encode()).digest()
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._used: dict[str, float] = {}  # token -> expiry

    def _mac(self, call_id: str, caller: str, expiry: int, nonce: str) -> str:
        msg = f"{call_id}\x1f{caller}\x1f{expiry}\x1f{nonce}".encode()
        return _b64(hmac.new(self._key, msg, hashlib.sha256).digest()[:18])

    def issue(self, call_id: str, caller: str = "") -> str:
        expiry = int(self._clock() + self.ttl_seconds) + 1
        nonce = _b64(secrets.token_bytes(9))
        return f"{expiry}.{nonce}.{self._mac(call_id, caller, expiry, nonce)}"

    def check(self, token: str | None, call_id: str, caller: str = "") -> None:
        """Accept ``token`` once for ``call_id``; raise ``AuthError`` saying why not."""
        if not token:
            raise AuthError("missing token (no 'token' parameter in the stream's start)")
        parts = token.split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            raise AuthError("unknown token")
        expiry, nonce, mac = int(parts[0]), parts[1], parts[2]
        if not hmac.compare_digest(mac, self._mac(call_id, caller, expiry, nonce)):
            raise AuthError("unknown token (not issued by this server for this call)")
        now = self._clock()
        if now > expiry:
            raise AuthError("expired token")
        self._prune(now)
        if token in self._used:
            raise AuthError("token already used")
        self._used[token] = expiry

    def _prune(self, now: float) -> None:
        if len(self._used) > 64:
            for t in [t for t, exp in self._used.items() if exp < now]:
                del self._used[t]


def phone_tokens(settings: ParleySettings) -> dict[str, StreamTokens]:
    """The one-time tokens of Telnyx, Vonage and Plivo streams, for those whose secret
    is configured (Twilio's are :class:`parley.server.auth.TwilioTokens`)."""
    ttl = settings.twilio_token_ttl_seconds
    secrets_ = {
        "telnyx": settings.telnyx_api_key,
        "vonage": settings.vonage_signature_secret,
        "plivo": settings.plivo_auth_token,
    }
    return {
        name: StreamTokens(secret.get_secret_value(), platform=name, ttl_seconds=ttl)
        for name, secret in secrets_.items()
        if secret is not None
    }

"""Authentication of Twilio: webhook signatures and one-time Media Streams tokens.

The webhook (``POST /twilio/voice``) is checked with the official SDK's
``RequestValidator`` (HMAC-SHA1 of the URL and the sorted form parameters,
reference/protocols.md §2.5). Twilio cannot be made to sign the WebSocket in a way
that survives proxies, so the webhook mints a token that comes back in the stream's
``start.customParameters`` (the "robust alternative" of §2.5).

The tokens are :class:`parley.server.tokens.StreamTokens` (every phone platform
has its own) keyed with the auth token and bound to the CallSid and the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from parley.protocols.twilio import Start
from parley.server.tokens import StreamTokens

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


class TwilioTokens(StreamTokens):
    """Mints and checks the one-time tokens passed to ``/twilio/stream``."""

    def __init__(
        self,
        secret: str,
        *,
        ttl_seconds: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(secret, platform="twilio", ttl_seconds=ttl_seconds, clock=clock)

    def check_start(self, start: Start) -> None:
        """Check the one-time token a Media Streams ``start`` carries in its
        ``customParameters`` (``token``, and the caller as ``from``)."""
        params = start.custom_parameters
        self.check(params.get("token"), start.call_sid, params.get("from", ""))

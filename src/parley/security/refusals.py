"""How a refusal from authentication, tenancy or limits is answered on each surface —
one table, so REST, every WebSocket route and the phone answer alike.

=================  ======  ==========================  =========================
refusal            HTTP    WebSocket close             phone (TwiML)
=================  ======  ==========================  =========================
``AuthError``      401     1008 policy violation       ``<Reject reason="rejected">``
``Deny(403)``      403     1008                        ``<Reject>``
``Deny(404)``      404     1008 (as "no such")         ``<Reject>``
``RateLimited``    429     1013 try again later        ``<Say>`` a short refusal
=================  ======  ==========================  =========================

A 401 carries ``WWW-Authenticate: Bearer``, a 429 ``Retry-After`` (whole seconds,
rounded up). Close reasons are ``code: message`` cut to the 123 bytes a close frame
allows; bodies are ``{"error": {"code", "message"}}`` and never echo the request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final

from parley.errors import AuthError, RateLimited
from parley.security.tenancy import Deny

__all__ = ["CLOSE_POLICY", "CLOSE_TRY_AGAIN", "RefusalSpec", "refusal_for"]

CLOSE_POLICY: Final = 1008
CLOSE_TRY_AGAIN: Final = 1013
_MAX_REASON: Final = 123


@dataclass(frozen=True, slots=True)
class RefusalSpec:
    status: int
    close_code: int
    reason: str  # the WebSocket close reason (≤ 123 UTF-8 bytes)
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    spoken: bool = False  # a phone call hears a short refusal rather than a <Reject>


def _reason(code: str, message: str) -> str:
    text = f"{code}: {message}"
    raw = text.encode()
    if len(raw) <= _MAX_REASON:
        return text
    return raw[: _MAX_REASON - 3].decode("utf-8", "ignore") + "..."


def refusal_for(refusal: AuthError | RateLimited | Deny) -> RefusalSpec:
    if isinstance(refusal, RateLimited):
        retry = max(1, math.ceil(refusal.retry_after))
        message = f"{refusal} (retry in {retry} s)"
        return RefusalSpec(
            429,
            CLOSE_TRY_AGAIN,
            _reason("rate_limited", message),
            {"error": {"code": "rate_limited", "message": message, "retry_after": retry}},
            {"retry-after": str(retry)},
            spoken=True,
        )
    if isinstance(refusal, Deny):
        code = "forbidden" if refusal.status == 403 else "not_found"
        return RefusalSpec(
            refusal.status,
            CLOSE_POLICY,
            _reason(code, refusal.reason),
            {"error": {"code": code, "message": refusal.reason}},
        )
    message = str(refusal) or "authentication failed"
    return RefusalSpec(
        401,
        CLOSE_POLICY,
        _reason("auth_error", message),
        {"error": {"code": "auth_error", "message": message}},
        {"www-authenticate": 'Bearer realm="parley"'},
    )

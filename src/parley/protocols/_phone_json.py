"""What the JSON phone protocols (Telnyx, Plivo, Vonage's control frames) share.

The typed decode is the fast path; this is the slow path for frames that failed
it: say precisely why (``bad_json``, ``not_an_object``, ``missing_event``,
``bad_base64``, ``invalid_message``) or hand back the raw object of an event name
the module does not know, so it can surface as ``Unknown``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

import msgspec

from parley.errors import RemoteProtocolError

__all__ = ["DTMF_DIGITS", "check_digit", "explain_invalid"]

#: The sixteen DTMF keys (RFC 4733 events 0–15).
DTMF_DIGITS: Final = frozenset("0123456789*#ABCD")


def check_digit(digit: str) -> str:
    """``digit`` if it is one DTMF key, else ``RemoteProtocolError(invalid_message)``."""
    if digit not in DTMF_DIGITS:
        raise RemoteProtocolError(
            f"DTMF digit {digit!r} is not one of 0-9 * # A-D", code="invalid_message"
        )
    return digit


def explain_invalid(
    frame: str | bytes,
    exc: msgspec.ValidationError,
    known: Collection[str],
    *,
    key: str = "event",
) -> tuple[str, dict[str, Any]]:
    """Raise the precise error for a frame that failed the typed decode.

    Returns ``(name, raw)`` when the frame is a JSON object whose ``key`` names an
    event outside ``known`` (the caller surfaces it as ``Unknown``).
    """
    try:
        raw = msgspec.json.decode(frame)
    except (msgspec.DecodeError, UnicodeError, RecursionError) as exc2:
        raise RemoteProtocolError(f"not valid JSON: {exc2}", code="bad_json") from None
    if not isinstance(raw, dict):
        raise RemoteProtocolError(
            f"expected a JSON object, got {type(raw).__name__}", code="not_an_object"
        )
    name = raw.get(key)
    if not isinstance(name, str):
        raise RemoteProtocolError(f"missing or non-string {key!r} field", code="missing_event")
    if name in known:
        detail = str(exc)
        code = "bad_base64" if detail.startswith("Invalid base64") else "invalid_message"
        raise RemoteProtocolError(f"invalid '{name}' message: {detail}", code=code)
    return name, raw

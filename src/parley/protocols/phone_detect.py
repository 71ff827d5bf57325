"""Which phone platform is on a shared WebSocket endpoint, from its first messages.

The rule is Pipecat's (``runner/utils.py::_detect_transport_type_from_message``,
reference/protocols.md §3.5), extended by Vonage, whose first frame names itself:

=========  ==================================================================
Vonage     first frame ``{"event":"websocket:connected", …}``
Twilio     ``start`` with ``start.streamSid`` and ``start.callSid``
Telnyx     ``start`` with a top-level ``stream_id`` and ``start.call_control_id``
Plivo      ``start`` with ``start.streamId`` and ``start.callId``
=========  ==================================================================

Twilio and Telnyx open with a ``connected`` frame and Plivo opens with ``start``,
so at most two frames are needed. :class:`ProviderDetector` is fed frames until it
answers; the shell then replays ``detector.frames`` into the chosen protocol (each
is a valid frame of it). A frame that is not a JSON object, a third frame without
an answer, or a ``start`` nobody claims is a ``RemoteProtocolError``
(``unknown_provider`` for the last two).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

import msgspec

from parley.errors import RemoteProtocolError
from parley.protocols.limits import MAX_TEXT_FRAME_BYTES, check_frame_size

__all__ = ["Provider", "ProviderDetector", "detect_provider"]

#: Frames a detector reads before giving up (``connected`` + ``start``).
_MAX_FRAMES: Final = 2


class Provider(StrEnum):
    TWILIO = "twilio"
    TELNYX = "telnyx"
    VONAGE = "vonage"
    PLIVO = "plivo"


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def detect_provider(message: dict[str, Any]) -> Provider | None:
    """The platform that sends ``message`` (a decoded frame), or None if it cannot say.

    None for a ``connected`` frame (Twilio and Telnyx both send one: wait for
    ``start``) and for anything else no platform is known to open with.
    """
    event = message.get("event")
    if event == "websocket:connected":
        return Provider.VONAGE
    if event != "start":
        return None
    start = message.get("start")
    if not isinstance(start, dict):
        return None
    if _text(start.get("streamSid")) and _text(start.get("callSid")):
        return Provider.TWILIO
    if _text(message.get("stream_id")) and _text(start.get("call_control_id")):
        return Provider.TELNYX
    if _text(start.get("streamId")) and _text(start.get("callId")):
        return Provider.PLIVO
    return None


class ProviderDetector:
    """Feed the first frames of a socket to ``feed()`` until it returns a provider."""

    __slots__ = ("_max_frame", "frames", "provider")

    def __init__(self, *, max_frame_bytes: int = MAX_TEXT_FRAME_BYTES) -> None:
        self._max_frame = max_frame_bytes
        #: Every frame fed so far, to replay into the provider's protocol.
        self.frames: list[str | bytes] = []
        self.provider: Provider | None = None

    def feed(self, frame: str | bytes) -> Provider | None:
        """Read one more frame; the provider once known, None while more are needed."""
        if self.provider is not None:
            return self.provider
        check_frame_size(frame, self._max_frame, "first frame")
        if isinstance(frame, bytes | bytearray | memoryview) and not self.frames:
            # Every platform opens with a text frame; binary first is nobody's protocol.
            raise RemoteProtocolError(
                "a binary frame before any text frame", code="unknown_provider"
            )
        try:
            message = msgspec.json.decode(frame)
        except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
            raise RemoteProtocolError(f"not valid JSON: {exc}", code="bad_json") from None
        if not isinstance(message, dict):
            raise RemoteProtocolError(
                f"expected a JSON object, got {type(message).__name__}", code="not_an_object"
            )
        self.frames.append(frame)
        self.provider = detect_provider(message)
        if self.provider is None and (
            len(self.frames) >= _MAX_FRAMES or message.get("event") != "connected"
        ):
            raise RemoteProtocolError(
                f"no phone platform opens a stream with {_describe(message)}",
                code="unknown_provider",
            )
        return self.provider


def _describe(message: dict[str, Any]) -> str:
    event = message.get("event")
    return f"an event {event!r}" if isinstance(event, str) else "a frame without 'event'"

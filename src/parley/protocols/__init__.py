"""Sans-I/O wire formats: bytes or JSON in, typed events out, and the reverse.

Nothing here imports asyncio or touches a socket; transports bind these to I/O.
Event names stay inside their module (``twilio.Media``, ``openai_realtime.ResponseDone``)
because the platforms reuse the same words.
"""

from __future__ import annotations

from parley.protocols import browser, openai_realtime, twilio
from parley.protocols.browser import AudioFrame, BrowserSession
from parley.protocols.limits import MAX_AUDIO_FRAME_BYTES, MAX_TEXT_FRAME_BYTES
from parley.protocols.twilio import MarkEcho, MarkTracker, TwilioEvent, TwilioStream

__all__ = [
    "MAX_AUDIO_FRAME_BYTES",
    "MAX_TEXT_FRAME_BYTES",
    "AudioFrame",
    "BrowserSession",
    "MarkEcho",
    "MarkTracker",
    "TwilioEvent",
    "TwilioStream",
    "browser",
    "openai_realtime",
    "twilio",
]

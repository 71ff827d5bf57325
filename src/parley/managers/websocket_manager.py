"""``WebSocketConnectionManager``: browser audio on a route of the user's app.

The wire is Parley's browser protocol (docs/protocol.md §1) in its legacy variant:
``start`` is optional (a first audio frame starts the session at 24 kHz), and audio
travels as JSON ``{"type": "audio", "data": <base64 PCM16 24 kHz mono>}`` both ways
— the document's minimal client — while binary PCM16 frames are accepted too. The
protocol's control messages (``ready``, ``transcript``, ``response_*``, ``error``)
are sent as usual; a client that only looks at ``audio`` ignores them.
"""

from __future__ import annotations

from parley.app import Parley
from parley.managers.base import StreamConnectionManager
from parley.transports.browser import BrowserPlatform

__all__ = ["WebSocketConnectionManager"]

#: The document's format for browsers: PCM16 at 24 kHz mono.
SAMPLE_RATE = 24000


class WebSocketConnectionManager(StreamConnectionManager):
    """Browser sessions; ``initial_message`` is said by the assistant when one starts."""

    queue_variable = "WEBSOCKET_AUDIO_QUEUE_SIZE"

    def __init__(self, app: Parley | None = None, *, initial_message: str = "") -> None:
        platform = BrowserPlatform(
            name="websocket",
            routes=(),
            start_optional=True,
            json_audio=True,
            implied_rate=SAMPLE_RATE,
        )
        super().__init__(platform, app=app, greeting=initial_message)

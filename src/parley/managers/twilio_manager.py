"""``TwilioConnectionManager``: Twilio Media Streams on a route of the user's app.

The platform is the switchboard's own Twilio platform (µ-law 8 kHz, marks,
``clear`` on barge-in; the one-time stream tokens when ``PARLEY_TWILIO_AUTH_TOKEN``
is set), so a call here is exactly a ``/twilio/stream`` call of ``parley serve``.
"""

from __future__ import annotations

from parley.app import Parley
from parley.managers.base import StreamConnectionManager, default_app
from parley.transports.twilio import TwilioPlatform

__all__ = ["TwilioConnectionManager"]


class TwilioConnectionManager(StreamConnectionManager):
    """Twilio calls; ``session_id`` (the document's ``call_sid``) is the call's id."""

    queue_variable = "TWILIO_AUDIO_QUEUE_SIZE"

    def __init__(self, app: Parley | None = None, *, initial_message: str = "") -> None:
        board = (app if app is not None else default_app()).switchboard
        twilio = next(p for p in board.platforms if isinstance(p, TwilioPlatform))
        super().__init__(twilio, app=app, greeting=initial_message)

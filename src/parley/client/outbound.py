"""Outbound phone calls through the official ``twilio`` SDK — the functions live in
:mod:`parley.transports.twilio_rest` (the server's ``POST /calls`` uses them too);
this module keeps the client-side import path."""

from __future__ import annotations

from parley.transports.twilio_rest import (
    TWILIO_API_BASE,
    place_twilio_call,
    place_twilio_call_async,
)

__all__ = ["TWILIO_API_BASE", "place_twilio_call", "place_twilio_call_async"]

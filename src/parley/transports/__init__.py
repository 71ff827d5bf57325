"""Thin shells binding wire protocols to sockets: one ``WireSocket`` seam, the
``Platform`` seam, and one shell per platform (Twilio, the browser page)."""

from __future__ import annotations

from parley.transports.browser import BrowserCallStream, BrowserPlatform
from parley.transports.platform import (
    Accept,
    Caller,
    Connection,
    Platform,
    PlatformStream,
    Refusal,
    match_route,
)
from parley.transports.socket import StarletteSocket, WireSocket, close_code_for
from parley.transports.twilio import TwilioCallStream, TwilioPlatform

__all__ = [
    "Accept",
    "BrowserCallStream",
    "BrowserPlatform",
    "Caller",
    "Connection",
    "Platform",
    "PlatformStream",
    "Refusal",
    "StarletteSocket",
    "TwilioCallStream",
    "TwilioPlatform",
    "WireSocket",
    "close_code_for",
    "match_route",
]

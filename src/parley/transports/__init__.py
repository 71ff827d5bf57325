"""Thin I/O shells binding wire protocols to sockets; ``serve_call`` is the shared core."""

from __future__ import annotations

from parley.transports.browser import BrowserCallStream
from parley.transports.serve import serve_call
from parley.transports.socket import StarletteSocket, WireSocket, close_code_for
from parley.transports.twilio import TwilioCallStream

__all__ = [
    "BrowserCallStream",
    "StarletteSocket",
    "TwilioCallStream",
    "WireSocket",
    "close_code_for",
    "serve_call",
]

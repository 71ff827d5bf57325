"""Thin I/O shells binding wire protocols to sockets; ``serve_call`` is the shared core."""

from __future__ import annotations

from parley.transports.browser import BrowserCallStream
from parley.transports.serve import serve_call
from parley.transports.socket import StarletteSocket, WireSocket, close_code_for
from parley.transports.twilio import TwilioCallStream
from parley.transports.websockets_server import WebsocketsSocket, serve_websockets

# parley.transports.django and parley.transports.socketio are imported by name only:
# their frameworks are optional (the ``adapters`` extra).

__all__ = [
    "BrowserCallStream",
    "StarletteSocket",
    "TwilioCallStream",
    "WebsocketsSocket",
    "WireSocket",
    "close_code_for",
    "serve_call",
    "serve_websockets",
]

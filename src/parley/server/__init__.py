"""The ASGI server: REST, browser and Twilio WebSockets, health, graceful shutdown."""

from __future__ import annotations

from parley.server.app import STATIC_DIR, create_app
from parley.server.auth import TwilioTokens, twilio_signature_valid
from parley.server.lifecycle import drain
from parley.server.registry import CallRecord, CallRegistry
from parley.server.run import DEFAULT_APP_FACTORY, default_app, run_server
from parley.server.twilio import twiml_connect

__all__ = [
    "DEFAULT_APP_FACTORY",
    "STATIC_DIR",
    "CallRecord",
    "CallRegistry",
    "TwilioTokens",
    "create_app",
    "default_app",
    "drain",
    "run_server",
    "twilio_signature_valid",
    "twiml_connect",
]

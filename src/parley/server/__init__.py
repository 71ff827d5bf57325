"""The server: the switchboard (every call's one composition root), the platform
registry, the FastAPI app (REST, WebSockets, health, graceful shutdown) and the
framework hosts."""

from __future__ import annotations

from parley.server.app import STATIC_DIR, create_app
from parley.server.auth import TwilioTokens, twilio_signature_valid
from parley.server.calls import CallRecord, CallRegistry, CallStatus
from parley.server.discord import discord_speaker
from parley.server.lifecycle import drain
from parley.server.platforms import platforms
from parley.server.run import run_server
from parley.server.setup import CallSetup
from parley.server.switchboard import Endpoint, Switchboard
from parley.server.tokens import StreamTokens
from parley.server.twilio import twiml_connect

__all__ = [
    "STATIC_DIR",
    "CallRecord",
    "CallRegistry",
    "CallSetup",
    "CallStatus",
    "Endpoint",
    "StreamTokens",
    "Switchboard",
    "TwilioTokens",
    "create_app",
    "discord_speaker",
    "drain",
    "platforms",
    "run_server",
    "twilio_signature_valid",
    "twiml_connect",
]

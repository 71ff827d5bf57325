"""Seed 001's connection managers and audio handlers (its ``managers.*`` modules).

    from parley.managers.twilio_manager import TwilioConnectionManager
    from parley.managers.websocket_manager import WebSocketConnectionManager
    from parley.managers.discord_manager import DiscordConnectionManager

Thin layers over the switchboard (:mod:`parley.managers.base`); a custom platform
subclasses :class:`BaseAudioConnectionManager` and :class:`AudioHandler`. ``run(app)``
serves the user's app on ``$HOST:$PORT``. docs/seeds.md (§001) maps every name.
"""

from __future__ import annotations

from parley.managers.audio_handler import AudioHandler, HandlerStream
from parley.managers.base import BaseConnectionManager, StreamConnectionManager, default_app
from parley.managers.custom import BaseAudioConnectionManager, VoiceAssistant
from parley.managers.discord_manager import DiscordConnectionManager
from parley.managers.server import listen_address, run
from parley.managers.twilio_manager import TwilioConnectionManager
from parley.managers.websocket_manager import WebSocketConnectionManager

__all__ = [
    "AudioHandler",
    "BaseAudioConnectionManager",
    "BaseConnectionManager",
    "DiscordConnectionManager",
    "HandlerStream",
    "StreamConnectionManager",
    "TwilioConnectionManager",
    "VoiceAssistant",
    "WebSocketConnectionManager",
    "default_app",
    "listen_address",
    "run",
]

"""``DiscordConnectionManager``: Discord voice sessions over a WebSocket relay.

Joining a voice channel needs Discord's gateway, which Parley cannot reach here
(docs/platforms.md: ``DiscordVoiceHub`` is the tested part below the gateway; the
glue from py-cord's voice connection to it is not written). This manager serves
what a bot process relays over a WebSocket instead: the browser protocol's legacy
variant (as :mod:`parley.managers.websocket_manager`) at Discord's rate, PCM16
**48 kHz** mono (the bot decodes Opus 48 kHz stereo and downmixes), one socket per
speaking user, session id ``guild:channel:user``; the call's kind is ``discord``.
Handed anything but a Starlette WebSocket, ``connect`` raises ``ConfigError``
saying so.
"""

from __future__ import annotations

from starlette.websockets import WebSocket

from parley.app import Parley
from parley.errors import ConfigError
from parley.managers.base import StreamConnectionManager
from parley.transports.browser import BrowserPlatform
from parley.transports.discord import RATE, session_id

__all__ = ["DiscordConnectionManager", "session_id"]


class DiscordConnectionManager(StreamConnectionManager):
    """One call per speaking user of a voice channel (see the module docstring)."""

    queue_variable = "DISCORD_AUDIO_QUEUE_SIZE"

    def __init__(self, app: Parley | None = None, *, initial_message: str = "") -> None:
        platform = BrowserPlatform(
            name="discord", routes=(), start_optional=True, json_audio=True, implied_rate=RATE
        )
        super().__init__(platform, app=app, greeting=initial_message)

    async def connect(self, websocket: WebSocket, session_id: str) -> None:
        if not isinstance(websocket, WebSocket):
            raise ConfigError(
                f"DiscordConnectionManager serves a WebSocket relay, not a "
                f"{type(websocket).__name__}: joining the voice channel itself needs the "
                "Discord gateway (see docs/platforms.md, Discord voice)",
                field="websocket",
            )
        await super().connect(websocket, session_id)

"""The one seam every framework adapter fills: a WebSocket that sends and receives frames.

``WireSocket`` is deliberately tiny (four coroutines) so that Starlette/FastAPI,
Django Channels, python-socketio or a plain ``websockets`` server can each be
adapted in a dozen lines; everything above it (the Twilio and browser call
streams, :func:`parley.transports.serve.serve_call`) is shared.
"""

from __future__ import annotations

import contextlib
from typing import Final, Protocol, runtime_checkable

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from parley.errors import ProtocolError

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_INVALID_DATA",
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "CLOSE_TOO_BIG",
    "CLOSE_TRY_AGAIN",
    "StarletteSocket",
    "WireSocket",
    "close_code_for",
    "close_reason",
]

CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001  # server shutting down: the drain time is over
CLOSE_INVALID_DATA: Final = 1007  # a frame whose content is not what the protocol says
CLOSE_POLICY: Final = 1008  # order violations, authentication failures
CLOSE_TOO_BIG: Final = 1009
CLOSE_TRY_AGAIN: Final = 1013  # draining or at capacity: call again later

# Codes that say the *content* of a frame was bad (1007) rather than its order (1008).
_INVALID_DATA: Final = frozenset(
    {
        "bad_json",
        "not_an_object",
        "missing_event",
        "missing_type",
        "bad_base64",
        "invalid_message",
        "odd_audio_length",
        "bad_audio_length",
        "unsupported_media_format",
        "unsupported_format",
    }
)


@runtime_checkable
class WireSocket(Protocol):
    """A connected WebSocket: text frames are ``str``, binary frames ``bytes``."""

    async def receive(self) -> str | bytes | None:
        """The next frame, or None once the peer has closed."""
        ...

    async def send_text(self, data: str) -> None: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None: ...


def close_code_for(error: ProtocolError) -> int:
    """The WebSocket close code for a peer's protocol error."""
    if error.code == "frame_too_large":
        return CLOSE_TOO_BIG
    return CLOSE_INVALID_DATA if error.code in _INVALID_DATA else CLOSE_POLICY


def close_reason(text: str) -> str:
    """``text`` cut to the 123 bytes of UTF-8 a close frame's reason may hold."""
    raw = text.encode()
    if len(raw) <= 123:
        return text
    return raw[:120].decode(errors="ignore") + "..."


class StarletteSocket:
    """A Starlette (FastAPI) ``WebSocket`` as a :class:`WireSocket`.

    The handler must have accepted it. Sending on a socket the peer already closed
    does nothing (the next ``receive()`` returns None), so a hang-up in the middle of
    a reply ends the call through one path only.
    """

    __slots__ = ("_closed", "_ws")

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def receive(self) -> str | bytes | None:
        if self._closed:
            return None
        try:
            message = await self._ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            # RuntimeError: Starlette's "receive after disconnect" on a racing close.
            self._closed = True
            return None
        if message["type"] == "websocket.disconnect":
            self._closed = True
            return None
        text = message.get("text")
        if text is not None:
            return str(text)
        data = message.get("bytes")
        return bytes(data) if data is not None else b""

    async def send_text(self, data: str) -> None:
        if self._closed:
            return
        try:
            await self._ws.send_text(data)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self._closed = True

    async def send_bytes(self, data: bytes) -> None:
        if self._closed:
            return
        try:
            await self._ws.send_bytes(data)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self._closed = True

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        if self._ws.application_state is WebSocketState.DISCONNECTED:
            return
        # The peer may have left first: then there is nothing to close.
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await self._ws.close(code, close_reason(reason))

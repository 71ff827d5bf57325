"""The transport seam: what a conversation needs from one side of a call.

A transport shell (Twilio, browser WebSocket, in-memory pair) adapts its wire
protocol to this: an iterator of inbound items that ends when the caller hangs
up, and three ways to talk back. Audio is in the stream's own formats; the
conversation converts to and from the engine's PCM16.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, TypeAlias, runtime_checkable

from parley.audio.format import AudioFormat
from parley.events import DTMFReceived

__all__ = ["CallStream", "Inbound", "PlaybackReport", "UserText"]


@dataclass(frozen=True, slots=True)
class UserText:
    """A typed message from the caller (a chat box next to the microphone)."""

    text: str


@dataclass(frozen=True, slots=True)
class PlaybackReport:
    """The caller has heard ``played_ms`` of reply ``response_id`` (Twilio marks,
    a browser's audio clock)."""

    response_id: str
    played_ms: float


# Raw bytes are audio in ``CallStream.input_format``.
Inbound: TypeAlias = bytes | UserText | PlaybackReport | DTMFReceived


@runtime_checkable
class CallStream(Protocol):
    @property
    def input_format(self) -> AudioFormat: ...

    @property
    def output_format(self) -> AudioFormat: ...

    def inbound(self) -> AsyncIterator[Inbound]:
        """Everything the caller sends, in order; ends when the caller hangs up."""
        ...

    async def send_audio(self, audio: bytes, *, response_id: str, text: str = "") -> None:
        """Reply audio in ``output_format``; ``text`` is what it says, when known."""

    async def clear(self, response_id: str) -> None:
        """Barge-in: drop whatever of ``response_id`` has not been played yet."""

    async def close(self) -> None: ...

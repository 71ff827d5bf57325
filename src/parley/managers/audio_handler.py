"""Seed 001's ``AudioHandler``: a custom platform's audio, as a Parley call stream.

A platform Parley has no protocol for (a custom WebSocket wire, a bot's voice
connection) subclasses :class:`AudioHandler`: it implements ``send_audio`` (reply
audio to its platform) and feeds what it hears to ``add_input_audio``. Parley reads
``receive_audio()``; :class:`HandlerStream` is the handler as a
:class:`~parley.transports.platform.PlatformStream`, so the switchboard runs the call
like any other (engine, barge-in, transcript, hooks, metrics).

Audio is PCM16 mono at ``sample_rate`` both ways. The input queue holds at most
``queue_size`` chunks: beyond that new audio is dropped and counted
(``dropped_chunks``), as every Parley engine does — a stalled engine never grows
memory.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from parley.audio.format import AudioFormat
from parley.conversation.state import ConversationState
from parley.conversation.stream import Inbound
from parley.errors import ConfigError
from parley.events import Event
from parley.transports.platform import Caller

__all__ = ["DEFAULT_QUEUE_SIZE", "AudioHandler", "HandlerStream"]

#: Input chunks a handler queues when its platform's ``*_AUDIO_QUEUE_SIZE`` is unset.
DEFAULT_QUEUE_SIZE = 100


class AudioHandler(ABC):
    """One session's audio between a platform and Parley (see the module docstring)."""

    def __init__(
        self, session_id: str = "", *, sample_rate: int = 24000, queue_size: int | None = None
    ) -> None:
        size = DEFAULT_QUEUE_SIZE if queue_size is None else queue_size
        if size <= 0:
            raise ConfigError(f"queue_size must be positive, not {size}", field="queue_size")
        if sample_rate not in (8000, 16000, 24000, 44100, 48000):
            raise ConfigError(
                f"sample_rate {sample_rate} is not one of 8000, 16000, 24000, 44100, 48000",
                field="sample_rate",
            )
        self.session_id = session_id
        self.sample_rate = sample_rate
        self.queue_size = size
        self._input: asyncio.Queue[bytes | None] = asyncio.Queue(size + 1)  # + the end mark
        self.dropped_chunks = 0
        self.is_shutdown = False

    # -- required -------------------------------------------------------------------------

    @abstractmethod
    async def send_audio(self, audio_data: bytes) -> None:
        """Reply audio (PCM16 mono at ``sample_rate``) to the platform."""

    # -- provided -------------------------------------------------------------------------

    async def receive_audio(self) -> bytes | None:
        """The next input chunk; None once the handler is shut down."""
        if self.is_shutdown and self._input.empty():
            return None
        return await self._input.get()

    async def add_input_audio(self, audio_data: bytes) -> None:
        """What the platform heard (PCM16 mono at ``sample_rate``); dropped and counted
        when ``queue_size`` chunks are already waiting."""
        if self.is_shutdown or not audio_data:
            return
        if self._input.qsize() >= self.queue_size:
            self.dropped_chunks += 1
            return
        self._input.put_nowait(audio_data)

    async def clear_audio_buffer(self) -> None:
        """Drop reply audio the platform has not played yet. Nothing by default (``send_audio``
        hands audio straight over); a platform that buffers playback overrides it."""
        return

    async def handle_speech_started(self) -> None:
        """The caller spoke over a reply (barge-in): its unplayed audio must go."""
        await self.clear_audio_buffer()

    async def shutdown(self) -> None:
        """End the session: ``receive_audio`` returns None after what is queued."""
        if not self.is_shutdown:
            self.is_shutdown = True
            if self._input.full():
                self._input.get_nowait()  # room for the end mark: the call must end
            self._input.put_nowait(None)


class HandlerStream:
    """An :class:`AudioHandler` as a ``PlatformStream`` (no handshake: it is set up)."""

    def __init__(self, handler: AudioHandler) -> None:
        self.handler = handler

    @property
    def closed(self) -> bool:
        return self.handler.is_shutdown

    @property
    def input_format(self) -> AudioFormat:
        return AudioFormat("pcm16", self.handler.sample_rate, 1)

    @property
    def output_format(self) -> AudioFormat:
        return self.input_format

    async def handshake(self) -> Caller | None:
        return None if self.handler.is_shutdown else Caller()

    async def inbound(self) -> AsyncIterator[Inbound]:
        while (chunk := await self.handler.receive_audio()) is not None:
            yield chunk

    async def send_audio(self, audio: bytes, *, response_id: str, text: str = "") -> None:
        if audio and not self.handler.is_shutdown:
            await self.handler.send_audio(audio)

    async def clear(self, response_id: str) -> None:
        await self.handler.handle_speech_started()

    async def ready(self, call_id: str) -> None:
        return

    async def reject(self, code: str, message: str, close_code: int) -> None:
        await self.handler.shutdown()

    async def show(self, event: Event, state: ConversationState) -> None:
        return

    async def close(self) -> None:
        await self.handler.shutdown()

    async def end(self, code: int, reason: str) -> None:
        await self.handler.shutdown()

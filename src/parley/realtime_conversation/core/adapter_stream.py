"""The base WebSocket adapter's call stream: ``receive_audio``/``send_audio`` as a
Parley :class:`~parley.transports.platform.PlatformStream`.

A user's adapter (a subclass of
:class:`~parley.realtime_conversation.core.interfaces.WebSocketAdapter`) knows only
how to move :class:`AudioData`; :class:`AdapterStream` makes that the stream a
:class:`~parley.conversation.Conversation` runs over. The conversation converts the
adapter's audio to the engine's PCM16 16 kHz and the reply back to the adapter's
format; every event goes to the adapter's ``on_event``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from parley.audio.format import AudioFormat
from parley.conversation.state import ConversationState
from parley.conversation.stream import Inbound
from parley.errors import LocalProtocolError
from parley.events import Event
from parley.realtime_conversation.core.data import AudioData
from parley.transports.platform import Caller

__all__ = ["AdapterStream", "AudioPeer"]


class AudioPeer(Protocol):
    """What :class:`AdapterStream` needs of an adapter (the ``WebSocketAdapter`` base has it)."""

    sample_rate: int | None
    channels: int | None
    token: str | None
    user_id: str | None

    async def receive_audio(self) -> AudioData | None: ...

    async def send_audio(self, audio: AudioData) -> None: ...

    async def send_json(self, message: Mapping[str, Any]) -> None: ...

    async def on_event(self, event: Event) -> None: ...

    async def close(self) -> None: ...


class AdapterStream:
    """A :class:`~parley.transports.platform.PlatformStream` over an adapter's
    ``receive_audio``/``send_audio``; ``audio`` is the format used where the adapter
    declares none."""

    def __init__(self, adapter: AudioPeer, audio: AudioFormat) -> None:
        self.adapter = adapter
        self._format = AudioFormat(
            "pcm16", adapter.sample_rate or audio.sample_rate, adapter.channels or audio.channels
        )
        self.closed = False

    @property
    def input_format(self) -> AudioFormat:
        return self._format

    @property
    def output_format(self) -> AudioFormat:
        return self._format

    async def handshake(self) -> Caller | None:
        adapter = self.adapter
        metadata = {"token": adapter.token} if adapter.token else {}
        return Caller(user_id=adapter.user_id, metadata=metadata)

    async def ready(self, call_id: str) -> None:
        return

    async def inbound(self) -> AsyncIterator[Inbound]:
        rate, channels = self._format.sample_rate, self._format.channels
        receive = self.adapter.receive_audio
        while not self.closed:
            audio = await receive()
            if audio is None:
                return
            if audio.sample_rate != rate or audio.channels != channels:
                # The adapter's own contract: it said what it delivers.
                raise LocalProtocolError(
                    f"{type(self.adapter).__name__} delivered AudioData at {audio.sample_rate} Hz "
                    f"x{audio.channels}, but its stream is {rate} Hz x{channels} (set the "
                    "adapter's sample_rate/channels)",
                    code="unsupported_format",
                )
            yield audio.data

    async def send_audio(self, audio: bytes, *, response_id: str, text: str = "") -> None:
        if not self.closed and audio:
            fmt = self._format
            await self.adapter.send_audio(AudioData(audio, fmt.sample_rate, fmt.channels))

    async def clear(self, response_id: str) -> None:
        # Barge-in reaches the adapter as the Interrupted event (on_event): the base
        # has no playback queue of its own to clear.
        return

    async def show(self, event: Event, state: ConversationState) -> None:
        if not self.closed:
            await self.adapter.on_event(event)

    async def reject(self, code: str, message: str, close_code: int) -> None:
        await self.adapter.send_json({"type": "error", "code": code, "message": message})
        await self.close()

    async def end(self, code: int, reason: str) -> None:
        await self.close()

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self.adapter.close()

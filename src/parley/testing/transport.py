"""An in-memory transport pair: a :class:`~parley.conversation.CallStream` for the
conversation and a :class:`MemoryPeer` for the test (the "phone").

Both directions are bounded queues, like a socket's buffers: a writer that runs
ahead waits (back-pressure). Audio travels in the pair's formats, so a test can
drive a µ-law 8 kHz call exactly as Twilio would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeAlias

from parley.audio.format import AudioFormat
from parley.conversation.state import ConversationState
from parley.conversation.stream import Inbound, PlaybackReport, UserText
from parley.events import DTMFReceived, Event
from parley.transports.platform import Caller

__all__ = [
    "ClearAudio",
    "MemoryCallStream",
    "MemoryPeer",
    "Outbound",
    "ReplyAudio",
    "memory_transport_pair",
]

PCM16_16K = AudioFormat("pcm16", 16000)


@dataclass(frozen=True, slots=True)
class ReplyAudio:
    response_id: str
    audio: bytes  # in the pair's output format
    text: str = ""


@dataclass(frozen=True, slots=True)
class ClearAudio:
    """The conversation asks the phone to drop unplayed audio of ``response_id``."""

    response_id: str


Outbound: TypeAlias = ReplyAudio | ClearAudio


class _End:
    pass


_END = _End()


class MemoryCallStream:
    """The conversation's side of the pair. It is also a
    :class:`~parley.transports.platform.PlatformStream` (its handshake is done at
    once), so a test can run it through the switchboard
    (``app.switchboard.run_call(record, stream)``) exactly as a socket's call runs;
    ``shown`` collects what the switchboard shows the peer (every event, in order)
    and ``on_show`` is called with each."""

    def __init__(
        self,
        inbound: asyncio.Queue[Inbound | _End],
        outbound: asyncio.Queue[Outbound | _End],
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> None:
        self._in, self._out = inbound, outbound
        self._input_format, self._output_format = input_format, output_format
        self.closed = False
        self.shown: list[Event] = []
        self.on_show: Callable[[Event], None] | None = None
        self.rejected: tuple[str, str, int] | None = None
        self.ended: tuple[int, str] | None = None
        self.caller = Caller()

    @property
    def input_format(self) -> AudioFormat:
        return self._input_format

    @property
    def output_format(self) -> AudioFormat:
        return self._output_format

    async def inbound(self) -> AsyncIterator[Inbound]:
        while not self.closed:
            item = await self._in.get()
            if isinstance(item, _End):
                return
            yield item

    async def send_audio(self, audio: bytes, *, response_id: str, text: str = "") -> None:
        if not self.closed:
            await self._out.put(ReplyAudio(response_id, audio, text))

    async def clear(self, response_id: str) -> None:
        if not self.closed:
            await self._out.put(ClearAudio(response_id))

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            while self._out.full():  # the end must get through even to a stalled reader
                self._out.get_nowait()
            self._out.put_nowait(_END)

    # -- PlatformStream ----------------------------------------------------------------

    async def handshake(self) -> Caller | None:
        return self.caller

    async def ready(self, call_id: str) -> None:
        return

    async def reject(self, code: str, message: str, close_code: int) -> None:
        self.rejected = (code, message, close_code)
        await self.close()

    async def show(self, event: Event, state: ConversationState) -> None:
        self.shown.append(event)
        if self.on_show is not None:
            self.on_show(event)

    async def end(self, code: int, reason: str) -> None:
        self.ended = (code, reason)
        await self.close()


class MemoryPeer:
    """The test's side of the pair: send what a caller sends, receive what it hears."""

    def __init__(
        self,
        inbound: asyncio.Queue[Inbound | _End],
        outbound: asyncio.Queue[Outbound | _End],
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> None:
        self._in, self._out = inbound, outbound
        self.input_format, self.output_format = input_format, output_format
        self.hung_up = False
        self.closed = False  # the conversation closed its side

    async def send_audio(self, audio: bytes) -> None:
        """Audio in ``input_format`` (the format the conversation listens in)."""
        if not self.hung_up:
            await self._in.put(audio)

    async def send_text(self, text: str) -> None:
        await self._in.put(UserText(text))

    async def report_playback(self, response_id: str, played_ms: float) -> None:
        if not self.hung_up:
            await self._in.put(PlaybackReport(response_id, played_ms))

    async def send_dtmf(self, digit: str) -> None:
        await self._in.put(DTMFReceived(digit))

    async def hangup(self) -> None:
        if not self.hung_up:
            self.hung_up = True
            await self._in.put(_END)

    async def receive(self) -> Outbound | None:
        """The next thing the conversation sent; None once it has closed its side."""
        if self.closed:
            return None
        item = await self._out.get()
        if isinstance(item, _End):
            self.closed = True
            return None
        return item

    async def __aiter__(self) -> AsyncIterator[Outbound]:
        while (item := await self.receive()) is not None:
            yield item


def memory_transport_pair(
    input_format: AudioFormat = PCM16_16K,
    output_format: AudioFormat | None = None,
    *,
    maxsize: int = 1000,
) -> tuple[MemoryCallStream, MemoryPeer]:
    """A connected (conversation side, phone side) pair; ``output_format`` defaults
    to ``input_format``."""
    out_fmt = output_format or input_format
    inbound: asyncio.Queue[Inbound | _End] = asyncio.Queue(maxsize)
    outbound: asyncio.Queue[Outbound | _End] = asyncio.Queue(maxsize)
    return (
        MemoryCallStream(inbound, outbound, input_format, out_fmt),
        MemoryPeer(inbound, outbound, input_format, out_fmt),
    )

"""One endpoint for every phone platform: ``/phone/stream``.

A provider's console takes one stream URL; with this platform it may be the same
URL for Twilio, Telnyx, Vonage and Plivo. The stream reads the first frames
(:class:`parley.protocols.phone_detect.ProviderDetector`: at most ``connected`` and
``start``), picks the platform that sends them, and from then on *is* that
platform's stream: its shell (opened on a socket that replays the frames read so
far, then reads on), its handshake and one-time token check, its barge-in. The
call's record says which (``Caller.platform``: its ``kind`` is ``"telnyx"``, not
``"phone"``).

After the handshake every call is forwarded to the chosen shell; the inbound
iterator is the shell's own, so the hot path is the same as on the platform's own
route.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import AsyncIterator, Mapping

from parley.audio.format import AudioFormat
from parley.conversation.state import ConversationState
from parley.conversation.stream import Inbound
from parley.errors import RemoteProtocolError
from parley.events import Event
from parley.protocols.phone_detect import ProviderDetector
from parley.transports.platform import Accept, Caller, Connection, Platform, PlatformStream, Refusal
from parley.transports.socket import CLOSE_NORMAL, WireSocket, close_code_for

__all__ = ["DetectingStream", "SharedPhonePlatform"]


class _Replay:
    """A socket that hands out ``frames`` first, then the real socket's frames."""

    def __init__(self, socket: WireSocket, frames: list[str | bytes]) -> None:
        self._socket = socket
        self._frames = deque(frames)
        self.send_text = socket.send_text
        self.send_bytes = socket.send_bytes
        self.close = socket.close

    async def receive(self) -> str | bytes | None:
        if not self._frames:
            return await self._socket.receive()
        frame = self._frames.popleft()
        if not self._frames:
            # Replayed: a shell that reads ``socket.receive`` from now on (its inbound
            # loop) gets the real socket's, with no hop per frame.
            self.receive = self._socket.receive  # type: ignore[method-assign]
        return frame


class DetectingStream:
    """A ``PlatformStream`` that becomes the stream of the platform on the line."""

    def __init__(
        self, socket: WireSocket, connection: Connection, platforms: Mapping[str, Platform]
    ) -> None:
        self.socket = socket
        self._connection = connection
        self._platforms = platforms
        self.inner: PlatformStream | None = None
        self._closed = False

    def _stream(self) -> PlatformStream:
        if self.inner is None:
            raise RuntimeError("the provider is not known before the handshake")
        return self.inner

    @property
    def closed(self) -> bool:
        return self.inner.closed if self.inner is not None else self._closed

    @property
    def input_format(self) -> AudioFormat:
        return self._stream().input_format

    @property
    def output_format(self) -> AudioFormat:
        return self._stream().output_format

    async def handshake(self) -> Caller | None:
        detector = ProviderDetector()
        provider = None
        while provider is None:
            frame = await self.socket.receive()
            if frame is None:
                self._closed = True
                return None
            try:
                provider = detector.feed(frame)
            except RemoteProtocolError as exc:
                await self._end(close_code_for(exc), f"{exc.code}: {exc.message}")
                raise
        platform = self._platforms.get(provider.value)
        if platform is None:
            reason = f"{provider.value} is not served on this endpoint"
            await self._end(CLOSE_NORMAL, reason)
            raise RemoteProtocolError(reason, code="unknown_provider")
        self.inner = platform.open(_Replay(self.socket, detector.frames), self._connection)
        caller = await self.inner.handshake()
        if caller is None:
            return None
        return dataclasses.replace(caller, platform=platform.name)

    def inbound(self) -> AsyncIterator[Inbound]:
        return self._stream().inbound()

    async def send_audio(self, audio: bytes, *, response_id: str, text: str = "") -> None:
        await self._stream().send_audio(audio, response_id=response_id, text=text)

    async def clear(self, response_id: str) -> None:
        await self._stream().clear(response_id)

    async def ready(self, call_id: str) -> None:
        if self.inner is not None:
            await self.inner.ready(call_id)

    async def reject(self, code: str, message: str, close_code: int) -> None:
        if self.inner is not None:
            await self.inner.reject(code, message, close_code)
        else:
            await self._end(close_code, f"{code}: {message}")

    async def show(self, event: Event, state: ConversationState) -> None:
        if self.inner is not None:
            await self.inner.show(event, state)

    async def close(self) -> None:
        await self.end(CLOSE_NORMAL, "")

    async def end(self, code: int, reason: str) -> None:
        if self.inner is not None:
            await self.inner.end(code, reason)
        else:
            await self._end(code, reason)

    async def _end(self, code: int, reason: str) -> None:
        if not self._closed:
            self._closed = True
            await self.socket.close(code, reason)


class SharedPhonePlatform:
    """``/phone/stream``: Twilio, Telnyx, Vonage or Plivo, told apart by their first
    frames; ``platforms`` are the registry's own (so their token checks apply)."""

    name = "phone"
    routes: tuple[str, ...] = ("/phone/stream",)

    def __init__(self, platforms: Mapping[str, Platform]) -> None:
        self._platforms = dict(platforms)

    def admit(self, connection: Connection) -> Accept | Refusal:
        return Accept()

    def open(self, socket: WireSocket, connection: Connection) -> DetectingStream:
        return DetectingStream(socket, connection, self._platforms)

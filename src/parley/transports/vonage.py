"""A Vonage Voice API WebSocket as a platform: ``/vonage/stream``.

The wire work is :class:`parley.protocols.vonage.VonageStream`. Unlike the JSON
phone streams, Vonage sends and takes audio as *binary* frames of PCM16 (16 kHz by
default, exactly 20 ms each way) and keeps text frames for control: the first frame
``websocket:connected`` (with the NCCO endpoint's ``headers``: the caller, the call's
uuid and a one-time token, see ``parley.server.phone_answers``), our ``notify``
checkpoints and their ``websocket:notify`` echoes, ``clear`` and its
``websocket:cleared``, and ``websocket:dtmf``. The call ends when the socket closes.

Outbound audio is cut into whole 20 ms frames; a partial frame waits for more, and
is padded and sent as soon as the output pauses (the next inbound frame finds
nothing sent since the one before) or the reply ends, like the Twilio shell's
``mark_ms`` tail. A ``notify`` follows every ``chunk_ms`` of frames.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

from parley.audio.format import AudioFormat
from parley.conversation.state import ConversationState
from parley.conversation.stream import Inbound, PlaybackReport
from parley.errors import AuthError, RemoteProtocolError
from parley.events import Event
from parley.protocols.playback import PlaybackTracker
from parley.protocols.vonage import DTMF, FRAME_MS, Cleared, Connected, Media, Notify, VonageStream
from parley.transports.phone import TokenCheck
from parley.transports.platform import Accept, Caller, Connection, Refusal
from parley.transports.socket import CLOSE_NORMAL, CLOSE_POLICY, WireSocket, close_code_for

__all__ = ["VonageCallStream", "VonagePlatform"]

_DEFAULT_CHUNK_MS: Final = 100


def _text(headers: dict[str, object], key: str) -> str:
    value = headers.get(key)
    return value if isinstance(value, str) else ""


class VonageCallStream:
    """One ``/vonage/stream`` WebSocket (a ``PlatformStream``)."""

    def __init__(
        self,
        socket: WireSocket,
        *,
        check: TokenCheck | None = None,
        chunk_ms: int = _DEFAULT_CHUNK_MS,
    ) -> None:
        if chunk_ms < FRAME_MS:
            raise ValueError(f"chunk_ms must be at least {FRAME_MS}")
        self.socket = socket
        self.protocol = VonageStream()
        self._check = check
        self._frames_per_mark = max(1, chunk_ms // FRAME_MS)
        self.marks = PlaybackTracker(bytes_per_ms=32)
        self.closed = False
        self.error: RemoteProtocolError | None = None
        self._format = AudioFormat("pcm16", 16000)
        self._unmarked = 0  # audio bytes sent after the last notify
        self._unmarked_frames = 0
        self._unmarked_response = ""
        self._sent_since_frame = False

    @property
    def input_format(self) -> AudioFormat:
        return self._format

    @property
    def output_format(self) -> AudioFormat:
        return self._format

    async def handshake(self) -> Caller | None:
        """Read ``websocket:connected``; None if the peer left first."""
        while True:
            frame = await self.socket.receive()
            if frame is None:
                self.closed = True
                return None
            event = await self._decode(frame)
            if isinstance(event, Connected):
                headers = event.headers
                caller, call = _text(headers, "from"), _text(headers, "call_uuid")
                if self._check is not None:
                    try:
                        await self._check(_text(headers, "token") or None, call, caller)
                    except AuthError as exc:
                        await self._close(CLOSE_POLICY, f"unauthorized: {exc}")
                        raise
                self._format = self.protocol.line_format
                self.marks = PlaybackTracker(bytes_per_ms=self._format.frame_bytes(1))
                return Caller(
                    user_id=caller or None,
                    call_sid=call,
                    metadata={
                        k: v for k, v in headers.items() if k != "token" and isinstance(v, str)
                    },
                    verified=self._check is not None,
                )

    async def _decode(self, frame: str | bytes) -> object:
        try:
            return self.protocol.receive(frame)
        except RemoteProtocolError as exc:
            await self._fail(exc)
            raise

    async def _fail(self, exc: RemoteProtocolError) -> None:
        self.error = exc
        await self._close(close_code_for(exc), f"{exc.code}: {exc.message}")

    async def inbound(self) -> AsyncIterator[Inbound]:
        receive, decode, marks = self.socket.receive, self.protocol.receive, self.marks
        while True:
            frame = await receive()
            if frame is None:
                self.closed = True
                return
            try:
                event = decode(frame)
            except RemoteProtocolError as exc:
                await self._fail(exc)
                raise
            if type(event) is Media:  # the hot path: 50 a second
                if not self._sent_since_frame and (self._unmarked or self.protocol.pending_audio):
                    await self._flush_tail()  # the output paused: send and mark the tail
                self._sent_since_frame = False
                yield event.payload
            elif isinstance(event, Notify):
                echo = marks.echo(event.name)
                if echo is not None and echo.played:
                    yield PlaybackReport(echo.response_id, echo.played_ms)
            elif isinstance(event, Cleared):
                marks.cleared()
            elif isinstance(event, DTMF):
                yield event.as_event()
            # a second connected is refused by the protocol; unknown events: ignored

    async def send_audio(self, audio: bytes, *, response_id: str, text: str = "") -> None:
        if self.closed or not audio or self.protocol.connected is None:
            return
        if response_id != self._unmarked_response and (
            self._unmarked or self.protocol.pending_audio
        ):
            await self._flush_tail()  # a notify never spans two responses
        self._unmarked_response = response_id
        self._sent_since_frame = True
        send = self.socket.send_bytes
        for frame in self.protocol.media(audio):
            await send(frame)
            self._unmarked += len(frame)
            self._unmarked_frames += 1
            if self._unmarked_frames >= self._frames_per_mark:
                await self._send_mark()

    async def _flush_tail(self) -> None:
        tail = self.protocol.flush_audio()
        if tail:
            await self.socket.send_bytes(tail)
            self._unmarked += len(tail)
        if self._unmarked:
            await self._send_mark()

    async def _send_mark(self) -> None:
        name = self.marks.add(self._unmarked, self._unmarked_response)
        self._unmarked = self._unmarked_frames = 0
        await self.socket.send_text(self.protocol.mark(name))

    async def clear(self, response_id: str) -> None:
        if self.closed or self.protocol.connected is None:
            return
        self.marks.clear()
        self._unmarked = self._unmarked_frames = 0
        await self.socket.send_text(self.protocol.clear())  # drops the held tail too

    async def ready(self, call_id: str) -> None:
        return

    async def reject(self, code: str, message: str, close_code: int) -> None:
        await self._close(close_code, f"{code}: {message}")

    async def show(self, event: Event, state: ConversationState) -> None:
        return

    async def close(self) -> None:
        await self._close(CLOSE_NORMAL, "")

    async def end(self, code: int, reason: str) -> None:
        await self._close(code, reason)

    async def _close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            await self.socket.close(code, reason)


class VonagePlatform:
    """The Vonage Voice API WebSocket on ``/vonage/stream``; ``check`` vets the
    one-time token in the NCCO headers of ``websocket:connected``."""

    name = "vonage"
    routes: tuple[str, ...] = ("/vonage/stream",)

    def __init__(self, check: TokenCheck | None = None) -> None:
        self._check = check

    def admit(self, connection: Connection) -> Accept | Refusal:
        return Accept()

    def open(self, socket: WireSocket, connection: Connection) -> VonageCallStream:
        return VonageCallStream(socket, check=self._check)

"""A Twilio Media Streams call as a :class:`~parley.conversation.CallStream`.

The wire work is :class:`parley.protocols.twilio.TwilioStream` (sans-I/O); this shell
moves its frames over a :class:`~parley.transports.socket.WireSocket`. Outbound
audio goes out as ``media`` messages of at most ``chunk_ms`` each; a ``mark`` follows
every ``mark_ms`` of audio; Twilio echoes a mark when the audio before it has been
played, and :class:`~parley.protocols.twilio.MarkTracker` turns the echoes into
``PlaybackReport``s — what the engine truncates a reply at on barge-in. A barge-in
sends ``clear``, after which Twilio echoes the pending marks at once; the tracker
counts those as flushed, not played.

The default cadence is one mark per 100 ms of audio (``mark_ms=100``), coalesced
over the chunks it spans, plus one closing the tail of a burst as soon as the
output pauses (the next inbound frame finds nothing sent since the one before) and
one before audio of another response. The playback truth this keeps: a report is
never ahead of what the caller heard, and at a barge-in it is at most ``mark_ms``
(plus the echo's way back) behind. Media messages are at most ``chunk_ms`` (100 ms
by default, the mark interval: a mark can only sit between two messages, so a
larger chunk would loosen that bound); audio handed over in bigger pieces (a TTS
clause, ready ahead of playback) goes out in such chunks, a 20 ms echo in 20 ms
messages. On the loopback's continuous 20 ms stream that is one mark per five media
messages instead of one per message: 60 messages a second each way instead of 100.
``python bench/bargein.py`` measures the truncation error of cadences against a
caller that echoes marks only when their audio has played.

Per inbound frame: one ``receive()``, one msgspec decode (base64 included), one
yield. No logging, no task, no pydantic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from parley.audio.format import TWILIO_FORMAT, AudioFormat
from parley.conversation.state import ConversationState
from parley.conversation.stream import Inbound, PlaybackReport
from parley.errors import AuthError, RemoteProtocolError
from parley.events import DTMFReceived, Event
from parley.protocols.twilio import (
    DTMF,
    ULAW_BYTES_PER_MS,
    Mark,
    MarkTracker,
    Media,
    Start,
    Stop,
    StreamState,
    TwilioStream,
)
from parley.transports.platform import Accept, Caller, Connection, Refusal
from parley.transports.socket import (
    CLOSE_NORMAL,
    CLOSE_POLICY,
    WireSocket,
    close_code_for,
)

__all__ = ["DEFAULT_MARK_MS", "TwilioCallStream", "TwilioPlatform"]

_DEFAULT_CHUNK_MS: Final = 100
#: One mark per this much audio: the playback truth's bound (module docstring).
DEFAULT_MARK_MS: Final = 100


class TwilioCallStream:
    """One ``/twilio/stream`` WebSocket. ``await handshake()`` first, then hand it to a
    :class:`~parley.conversation.Conversation`."""

    def __init__(
        self,
        socket: WireSocket,
        *,
        check: Callable[[Start], Awaitable[None]] | None = None,
        chunk_ms: int = _DEFAULT_CHUNK_MS,
        mark_ms: int = DEFAULT_MARK_MS,
    ) -> None:
        """``check(start)`` vets the stream's ``start`` (the one-time token) and may raise
        ``AuthError``. ``chunk_ms``: the longest ``media`` message. ``mark_ms``: 0 puts a
        mark after every chunk; N > 0 after each N ms of audio and at the end of each
        burst."""
        if chunk_ms <= 0:
            raise ValueError("chunk_ms must be positive")
        if mark_ms < 0:
            raise ValueError("mark_ms must be >= 0")
        self.socket = socket
        self._check = check
        self.protocol = TwilioStream()
        self.marks = MarkTracker()
        self._chunk_bytes = chunk_ms * ULAW_BYTES_PER_MS
        self._mark_bytes = mark_ms * ULAW_BYTES_PER_MS
        self._unmarked = 0  # audio bytes sent after the last mark
        self._unmarked_response = ""
        self._sent_since_frame = False  # audio went out since the last inbound frame
        self.closed = False
        #: The peer's protocol error that ended the call, if any.
        self.error: RemoteProtocolError | None = None
        self.frames_in = 0
        self.frames_out = 0

    @property
    def input_format(self) -> AudioFormat:
        return TWILIO_FORMAT

    @property
    def output_format(self) -> AudioFormat:
        return TWILIO_FORMAT

    @property
    def start(self) -> Start | None:
        return self.protocol.start

    async def handshake(self) -> Caller | None:
        """Read frames up to ``start`` and say who calls; None if the peer left before.

        The ``check`` may raise :class:`~parley.errors.AuthError` (a bad token): the
        socket is then closed with 1008 and the reason, and the error re-raised. A
        malformed frame closes it with 1007/1008 and re-raises the ``RemoteProtocolError``.
        """
        while True:
            frame = await self.socket.receive()
            if frame is None:
                self.closed = True
                return None
            event = await self._decode(frame)
            if isinstance(event, Start):
                if self._check is not None:
                    try:
                        await self._check(event)
                    except AuthError as exc:
                        await self._close(CLOSE_POLICY, f"unauthorized: {exc}")
                        raise
                params = event.custom_parameters
                return Caller(
                    user_id=params.get("from") or None,
                    call_sid=event.call_sid,
                    metadata={k: v for k, v in params.items() if k != "token"},
                    verified=self._check is not None,
                )
            if isinstance(event, Stop):
                await self._close(CLOSE_NORMAL, "")
                return None
            # connected, unknown events: keep waiting for start

    async def _decode(self, frame: str | bytes) -> object:
        try:
            return self.protocol.receive(frame)
        except RemoteProtocolError as exc:
            await self._fail(exc)
            raise

    async def _fail(self, exc: RemoteProtocolError) -> None:
        """A malformed frame: close this one call with the error's code and reason."""
        self.error = exc
        await self._close(close_code_for(exc), f"{exc.code}: {exc.message}")

    async def inbound(self) -> AsyncIterator[Inbound]:
        receive = self.socket.receive
        protocol_receive = self.protocol.receive
        while True:
            frame = await receive()
            if frame is None:
                self.closed = True
                return
            try:  # inline rather than _decode: no extra await per frame
                event = protocol_receive(frame)
            except RemoteProtocolError as exc:
                await self._fail(exc)
                raise
            self.frames_in += 1
            if type(event) is Media:  # the hot path: 50 a second
                if self._unmarked and not self._sent_since_frame:
                    await self._send_mark()  # the output paused: mark the tail now
                self._sent_since_frame = False
                yield event.payload
            elif isinstance(event, Mark):
                echo = self.marks.echo(event.name)
                if echo is not None and echo.played:
                    yield PlaybackReport(echo.response_id, echo.played_ms)
            elif isinstance(event, DTMF):
                yield DTMFReceived(event.digit)
            elif isinstance(event, Stop):
                return  # the caller hung up
            # connected, unknown: nothing to do

    async def send_audio(self, audio: bytes, *, response_id: str, text: str = "") -> None:
        if self.closed or not audio or self.protocol.state is not StreamState.STARTED:
            return  # hung up: the rest of the reply has nobody to hear it
        if self._unmarked and response_id != self._unmarked_response:
            await self._send_mark()  # a mark never spans two responses
        self._unmarked_response = response_id
        self._sent_since_frame = True
        send, media = self.socket.send_text, self.protocol.media
        step, mark_bytes = self._chunk_bytes, self._mark_bytes
        for i in range(0, len(audio), step):
            piece = audio[i : i + step]
            await send(media(piece).decode())
            self.frames_out += 1
            self._unmarked += len(piece)
            if self._unmarked >= mark_bytes:
                await self._send_mark()

    async def _send_mark(self) -> None:
        """A mark closing the audio sent since the previous one."""
        name = self.marks.add(self._unmarked, self._unmarked_response)
        self._unmarked = 0
        await self.socket.send_text(self.protocol.mark(name).decode())
        self.frames_out += 1

    async def clear(self, response_id: str) -> None:
        if self.closed or self.protocol.state is not StreamState.STARTED:
            return
        self.marks.clear()
        self._unmarked = 0  # flushed before any mark could report it played
        await self.socket.send_text(self.protocol.clear().decode())

    async def ready(self, call_id: str) -> None:
        return  # Twilio's stream has no "ready" message: audio may flow at once

    async def reject(self, code: str, message: str, close_code: int) -> None:
        await self._close(close_code, f"{code}: {message}")

    async def show(self, event: Event, state: ConversationState) -> None:
        return  # a phone shows nothing: the caller only hears

    async def close(self) -> None:
        await self._close(CLOSE_NORMAL, "")

    async def end(self, code: int, reason: str) -> None:
        """Close with a specific code (server shutdown, capacity)."""
        await self._close(code, reason)

    async def _close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            await self.socket.close(code, reason)


class TwilioPlatform:
    """Twilio Media Streams on ``/twilio/stream``; ``check`` vets each ``start``."""

    name = "twilio"
    #: ``/twilio/stream/{conversation_id}`` claims a conversation made ahead (an
    #: outbound call, ``POST /calls``).
    routes: tuple[str, ...] = ("/twilio/stream", "/twilio/stream/{conversation_id}")

    def __init__(self, check: Callable[[Start], Awaitable[None]] | None = None) -> None:
        self._check = check

    def admit(self, connection: Connection) -> Accept | Refusal:
        return Accept()  # authenticated in the stream: the start's one-time token

    def open(self, socket: WireSocket, connection: Connection) -> TwilioCallStream:
        return TwilioCallStream(socket, check=self._check)

"""What the phone shells share: a JSON media stream with checkpoints, bound to a socket.

Telnyx and Plivo stream the same way Twilio does — text frames of JSON, a ``start``,
base64 ``media``, a checkpoint we place after our audio that the platform echoes
once it has played, a ``clear`` for barge-in, ``dtmf`` and ``stop`` — and differ only
in names and details, which their sans-I/O modules (``parley.protocols.telnyx``,
``parley.protocols.plivo``) already hide behind the same builders (``media``,
``mark``, ``clear``, ``audio``). :class:`MarkedPhoneStream` is the one shell for
both; a :class:`PhoneDialect` says which event types mean what and how a ``start``
names the call and carries its one-time token. (Twilio keeps its own shell,
``transports/twilio.py``, tuned for the load test; Vonage sends binary audio and has
``transports/vonage.py``.)

Per inbound frame: one ``receive()``, one decode in the protocol module, one type
check, one yield. Outbound: ``media`` messages of at most ``chunk_ms``, each followed
by a checkpoint (:class:`~parley.protocols.playback.PlaybackTracker` turns the
echoes into ``PlaybackReport``s: what the engine truncates a reply at on barge-in).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

from parley.audio.format import AudioFormat
from parley.conversation.state import ConversationState
from parley.conversation.stream import Inbound, PlaybackReport
from parley.errors import AuthError, LocalProtocolError, RemoteProtocolError
from parley.events import Event
from parley.protocols.phone_audio import silence_byte, split_padded
from parley.protocols.playback import PlaybackTracker
from parley.transports.platform import Caller
from parley.transports.socket import CLOSE_NORMAL, CLOSE_POLICY, WireSocket, close_code_for

__all__ = ["MarkedPhoneStream", "MarkedProtocol", "PhoneDialect", "StartInfo", "TokenCheck"]

#: Checks a stream's one-time token: ``await check(token, call_id, caller)`` raises
#: :class:`~parley.errors.AuthError` saying why it is refused (async: single use is
#: claimed in the shared store, :class:`parley.security.twilio_once.SingleUseTokens`).
TokenCheck = Callable[[str | None, str, str], Awaitable[None]]

_DEFAULT_CHUNK_MS: Final = 100


class MarkedProtocol(Protocol):
    """The sans-I/O half of a JSON phone stream (``TelnyxStream``, ``PlivoStream``)."""

    @property
    def input_format(self) -> AudioFormat | None: ...

    @property
    def output_format(self) -> AudioFormat | None: ...

    def receive(self, frame: str | bytes) -> Any: ...

    def audio(self, media: Any) -> bytes: ...

    def media(self, audio: bytes) -> bytes: ...

    def mark(self, name: str) -> bytes: ...

    def clear(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class StartInfo:
    """What a ``start`` says of the call: who, which call, the token it carries."""

    caller: Caller
    call_id: str  # what the token is bound to (the provider's call id)
    from_: str  # the caller's number the token is bound to ("" if none)
    token: str | None


@dataclass(frozen=True, slots=True)
class PhoneDialect:
    """One provider's event types and how its ``start`` reads (see the module docstring)."""

    name: str
    protocol: Callable[[], MarkedProtocol]
    start: type[Any]
    media: type[Any]
    echoes: tuple[type[Any], ...]  # checkpoint echoes (they have ``.name``)
    dtmf: type[Any]  # has ``.as_event()``
    stop: type[Any]
    read_start: Callable[[Any], StartInfo]
    cleared: type[Any] | None = None  # the platform's acknowledgement of a clear
    flushed_marks_echo: bool = True  # see PlaybackTracker
    min_media_ms: int = 0  # a shorter last piece is padded with silence


class MarkedPhoneStream:
    """One JSON phone stream: ``await handshake()``, then hand it to a
    :class:`~parley.conversation.Conversation` (a ``PlatformStream``)."""

    def __init__(
        self,
        socket: WireSocket,
        dialect: PhoneDialect,
        *,
        check: TokenCheck | None = None,
        chunk_ms: int = _DEFAULT_CHUNK_MS,
    ) -> None:
        if chunk_ms < max(20, dialect.min_media_ms):
            raise ValueError("chunk_ms must be at least 20 ms and the platform's minimum")
        self.socket = socket
        self.dialect = dialect
        self.protocol = dialect.protocol()
        self._check = check
        self._chunk_ms = chunk_ms
        self.marks = PlaybackTracker(flushed_marks_echo=dialect.flushed_marks_echo)
        self.closed = False
        self.started = False
        #: The peer's protocol error that ended the call, if any.
        self.error: RemoteProtocolError | None = None
        self._in = self._out = AudioFormat("ulaw", 8000)
        self._chunk_bytes = self._min_bytes = 0
        self._pad = b"\xff"

    @property
    def input_format(self) -> AudioFormat:
        return self._in

    @property
    def output_format(self) -> AudioFormat:
        return self._out

    async def handshake(self) -> Caller | None:
        """Read frames up to ``start``; None if the peer left (or stopped) first. A bad
        token closes with 1008 and raises ``AuthError``; a malformed frame closes with
        1007/1008 and raises ``RemoteProtocolError``."""
        d = self.dialect
        while True:
            frame = await self.socket.receive()
            if frame is None:
                self.closed = True
                return None
            event = await self._decode(frame)
            if isinstance(event, d.start):
                info = d.read_start(event)
                if self._check is not None:
                    try:
                        await self._check(info.token, info.call_id, info.from_)
                    except AuthError as exc:
                        await self._close(CLOSE_POLICY, f"unauthorized: {exc}")
                        raise
                self._started()
                # a checked token proves the call came through our signed webhook
                return replace(info.caller, verified=self._check is not None)
            if isinstance(event, d.stop):
                await self._close(CLOSE_NORMAL, "")
                return None
            # connected, errors, unknown events: keep waiting for start

    def _started(self) -> None:
        p = self.protocol
        assert p.input_format is not None and p.output_format is not None  # set by start
        self._in, self._out = p.input_format, p.output_format
        self._chunk_bytes = self._out.frame_bytes(self._chunk_ms)
        self._min_bytes = (
            self._out.frame_bytes(self.dialect.min_media_ms) if self.dialect.min_media_ms else 0
        )
        self._pad = silence_byte(self._out)
        self.marks = PlaybackTracker(
            bytes_per_ms=self._out.frame_bytes(1),
            flushed_marks_echo=self.dialect.flushed_marks_echo,
        )
        self.started = True

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
        d = self.dialect
        receive, decode, audio = self.socket.receive, self.protocol.receive, self.protocol.audio
        media_type, echoes, marks = d.media, d.echoes, self.marks
        while True:
            frame = await receive()
            if frame is None:
                self.closed = True
                return
            try:
                event = decode(frame)
                if type(event) is media_type:  # the hot path: 50 a second
                    yield audio(event)
                    continue
            except RemoteProtocolError as exc:
                await self._fail(exc)
                raise
            if isinstance(event, echoes):
                echo = marks.echo(event.name)
                if echo is not None and echo.played:
                    yield PlaybackReport(echo.response_id, echo.played_ms)
            elif d.cleared is not None and isinstance(event, d.cleared):
                marks.cleared()
            elif isinstance(event, d.dtmf):
                yield event.as_event()
            elif isinstance(event, d.stop):
                return  # the caller hung up
            # errors, skipped (late or other-track) media, unknown: nothing to do

    async def send_audio(self, audio: bytes, *, response_id: str, text: str = "") -> None:
        if self.closed or not audio or not self.started:
            return  # hung up: the rest of the reply has nobody to hear it
        send, p, marks = self.socket.send_text, self.protocol, self.marks
        for piece in split_padded(
            audio, self._chunk_bytes, min_bytes=self._min_bytes, pad=self._pad
        ):
            try:
                media, mark = p.media(piece), p.mark(marks.add(len(piece), response_id))
            except LocalProtocolError:
                return  # the stream stopped while the reply was being sent
            await send(media.decode())
            await send(mark.decode())

    async def clear(self, response_id: str) -> None:
        if self.closed or not self.started:
            return
        self.marks.clear()
        try:
            frame = self.protocol.clear()
        except LocalProtocolError:
            return  # already stopped
        await self.socket.send_text(frame.decode())

    async def ready(self, call_id: str) -> None:
        return  # phone streams have no "ready": audio may flow at once

    async def reject(self, code: str, message: str, close_code: int) -> None:
        await self._close(close_code, f"{code}: {message}")

    async def show(self, event: Event, state: ConversationState) -> None:
        return  # a phone shows nothing: the caller only hears

    async def close(self) -> None:
        await self._close(CLOSE_NORMAL, "")

    async def end(self, code: int, reason: str) -> None:
        await self._close(code, reason)

    async def _close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            await self.socket.close(code, reason)

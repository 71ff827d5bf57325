"""Twilio Media Streams (bidirectional ``<Connect><Stream>``), sans-I/O.

One WebSocket text frame in, one typed event out; commands in, JSON text out.
No sockets and no asyncio here: a transport feeds ``TwilioStream.receive()`` and
sends what the builders return (as *text* frames; the builders return ASCII
``bytes``, e.g. ``ws.send(data, text=True)`` with websockets ≥ 13 or
``send_text(data.decode())`` with Starlette).

Wire facts (reference/protocols.md §2): every numeric-looking field arrives as a
JSON string (``"sequenceNumber":"3"``, ``"chunk":"1"``, ``"timestamp":"52"``);
the decoder is lax so strings and numbers both become ``int``. Media payloads
are base64 µ-law 8 kHz mono without a header; msgspec decodes the base64 string
straight into ``Media.payload``, so a media frame costs one ``decode`` call.

Events Twilio may add later are surfaced as ``Unknown`` rather than rejected;
malformed or out-of-order frames raise ``RemoteProtocolError`` with a ``code``
(docs/protocol.md lists them).
"""

from __future__ import annotations

import binascii
import enum
from collections import deque
from dataclasses import dataclass
from typing import Annotated, Any, Final, NoReturn, TypeAlias

import msgspec

from parley.errors import LocalProtocolError, RemoteProtocolError
from parley.protocols.limits import MAX_TEXT_FRAME_BYTES, check_frame_size

__all__ = [
    "DTMF",
    "ULAW_BYTES_PER_MS",
    "Connected",
    "Mark",
    "MarkEcho",
    "MarkTracker",
    "Media",
    "MediaFormat",
    "Start",
    "Stop",
    "StreamState",
    "TwilioEvent",
    "TwilioStream",
    "Unknown",
]

#: µ-law at 8 kHz: one byte per sample, 8 bytes per millisecond.
ULAW_BYTES_PER_MS: Final = 8

_Count = Annotated[int, msgspec.Meta(ge=0)]

# --------------------------------------------------------------------------- events


class MediaFormat(msgspec.Struct, frozen=True, rename="camel"):
    """``start.mediaFormat``; Twilio always sends µ-law, 8 kHz, mono."""

    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000
    channels: int = 1


class Connected(msgspec.Struct, frozen=True):
    """First frame of every stream: ``{"event":"connected","protocol":"Call",...}``."""

    protocol: str = ""
    version: str = ""


class Start(msgspec.Struct, frozen=True, rename="camel"):
    """The stream's metadata; ``custom_parameters`` are the TwiML ``<Parameter>`` pairs."""

    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...] = ("inbound",)
    custom_parameters: dict[str, str] = {}
    media_format: MediaFormat = MediaFormat()


class Media(msgspec.Struct, frozen=True, gc=False):
    """One chunk of caller audio; ``payload`` is the decoded µ-law bytes (160 per 20 ms).

    ``chunk`` counts per track from 1; ``timestamp`` is milliseconds since the
    stream started (the first chunk of a real call says 52, not 0).
    """

    track: str
    chunk: _Count
    timestamp: _Count
    payload: bytes


class DTMF(msgspec.Struct, frozen=True):
    """A key press (bidirectional streams only); ``digit`` is one of ``0-9 * # A-D``."""

    digit: str
    track: str = "inbound_track"


class Mark(msgspec.Struct, frozen=True):
    """Echo of a mark we sent: the audio before it was played *or* flushed by ``clear``."""

    name: str


class Stop(msgspec.Struct, frozen=True, rename="camel"):
    """The stream ended (caller hung up, or the call left the ``<Connect>``)."""

    account_sid: str = ""
    call_sid: str = ""


class Unknown(msgspec.Struct, frozen=True):
    """An event name this module does not know (Twilio may add some); ``data`` is the frame."""

    event: str
    data: dict[str, Any]


TwilioEvent: TypeAlias = Connected | Start | Media | DTMF | Mark | Stop | Unknown

# ----------------------------------------------------------------- wire envelopes
# The public events above are the *inner* objects of Twilio's messages, so the
# envelope decode hands them out without a copy.


class _ConnectedMsg(msgspec.Struct, tag_field="event", tag="connected", frozen=True):
    protocol: str = ""
    version: str = ""


class _StartMsg(msgspec.Struct, tag_field="event", tag="start", rename="camel", frozen=True):
    start: Start
    stream_sid: str = ""  # repeated at top level; checked against start.streamSid if present
    sequence_number: _Count | None = None


class _MediaMsg(
    msgspec.Struct, tag_field="event", tag="media", rename="camel", frozen=True, gc=False
):
    media: Media
    stream_sid: str
    sequence_number: _Count | None = None


class _DTMFMsg(msgspec.Struct, tag_field="event", tag="dtmf", rename="camel", frozen=True):
    dtmf: DTMF
    stream_sid: str
    sequence_number: _Count | None = None


class _MarkMsg(msgspec.Struct, tag_field="event", tag="mark", rename="camel", frozen=True):
    mark: Mark
    stream_sid: str
    sequence_number: _Count | None = None


class _StopMsg(msgspec.Struct, tag_field="event", tag="stop", rename="camel", frozen=True):
    stream_sid: str
    stop: Stop = Stop()
    sequence_number: _Count | None = None


_Inbound: TypeAlias = _MediaMsg | _StartMsg | _ConnectedMsg | _DTMFMsg | _MarkMsg | _StopMsg
_KNOWN_EVENTS: Final = frozenset({"connected", "start", "media", "dtmf", "mark", "stop"})
# strict=False: Twilio sends numbers as strings ("chunk":"1"); lax mode turns them into ints.
_DECODER: Final[msgspec.json.Decoder[_Inbound]] = msgspec.json.Decoder(_Inbound, strict=False)
_DTMF_DIGITS: Final = frozenset("0123456789*#ABCD")


class _OutMarkBody(msgspec.Struct, frozen=True):
    name: str


class _OutMark(msgspec.Struct, tag_field="event", tag="mark", rename="camel", frozen=True):
    stream_sid: str
    mark: _OutMarkBody


class _OutClear(msgspec.Struct, tag_field="event", tag="clear", rename="camel", frozen=True):
    stream_sid: str


_ENCODER: Final = msgspec.json.Encoder()

# ------------------------------------------------------------------ state machine


class StreamState(enum.Enum):
    AWAITING_START = "awaiting_start"
    STARTED = "started"
    STOPPED = "stopped"


class TwilioStream:
    """One Media Streams WebSocket: ``AWAITING_START → STARTED → STOPPED``.

    ``receive()`` turns each inbound text frame into one event and enforces the
    order (no media, DTMF or mark before ``start``; nothing after ``stop``; the
    ``streamSid`` of every frame must be the one from ``start``). The builders
    ``media()``, ``mark()`` and ``clear()`` need the stream sid, so they raise
    ``LocalProtocolError`` before ``start`` and after ``stop``.
    """

    __slots__ = (
        "_clear_frame",
        "_max_frame",
        "_media_prefix",
        "last_sequence_number",
        "latest_timestamp",
        "start",
        "state",
    )

    def __init__(self, *, max_frame_bytes: int = MAX_TEXT_FRAME_BYTES) -> None:
        self._max_frame = max_frame_bytes
        self.state = StreamState.AWAITING_START
        #: The ``start`` event once received (stream/call sids, custom parameters).
        self.start: Start | None = None
        #: Last ``sequenceNumber`` seen (0 before any).
        self.last_sequence_number = 0
        #: ``media.timestamp`` of the latest inbound chunk, in ms since stream start
        #: (the clock the Twilio barge-in algorithm measures played audio against).
        self.latest_timestamp = 0
        self._media_prefix = b""
        self._clear_frame = b""

    @property
    def stream_sid(self) -> str:
        """The stream sid from ``start`` ("" before it)."""
        return self.start.stream_sid if self.start is not None else ""

    # -- inbound -----------------------------------------------------------------

    def receive(self, frame: str | bytes) -> TwilioEvent:
        """Parse one text frame from Twilio; raise ``RemoteProtocolError`` if it is bad."""
        check_frame_size(frame, self._max_frame, "Twilio frame")
        try:
            msg = _DECODER.decode(frame)
        except msgspec.ValidationError as exc:
            return self._not_a_known_message(frame, exc)
        except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
            raise RemoteProtocolError(f"not valid JSON: {exc}", code="bad_json") from None

        if isinstance(msg, _MediaMsg):  # the hot path: 50 frames a second
            if self.state is not StreamState.STARTED:
                self._reject_out_of_order("media")
            self._check_sid(msg.stream_sid)
            if msg.sequence_number is not None:
                self.last_sequence_number = msg.sequence_number
            media = msg.media
            self.latest_timestamp = media.timestamp
            return media
        if isinstance(msg, _ConnectedMsg):
            if self.state is not StreamState.AWAITING_START:
                self._reject_out_of_order("connected")
            return Connected(protocol=msg.protocol, version=msg.version)
        if isinstance(msg, _StartMsg):
            return self._on_start(msg)
        if isinstance(msg, _StopMsg):
            if self.state is StreamState.STOPPED:
                self._reject_out_of_order("stop")
            if self.start is not None:
                self._check_sid(msg.stream_sid)
            self._track_sequence(msg.sequence_number)
            self.state = StreamState.STOPPED
            return msg.stop
        # dtmf or mark
        if self.state is not StreamState.STARTED:
            self._reject_out_of_order("dtmf" if isinstance(msg, _DTMFMsg) else "mark")
        self._check_sid(msg.stream_sid)
        self._track_sequence(msg.sequence_number)
        if isinstance(msg, _DTMFMsg):
            if msg.dtmf.digit not in _DTMF_DIGITS:
                raise RemoteProtocolError(
                    f"DTMF digit {msg.dtmf.digit!r} is not one of 0-9 * # A-D",
                    code="invalid_message",
                )
            return msg.dtmf
        return msg.mark

    def _on_start(self, msg: _StartMsg) -> Start:
        if self.state is not StreamState.AWAITING_START:
            if self.state is StreamState.STARTED:
                raise RemoteProtocolError("a second 'start' on one stream", code="duplicate_start")
            self._reject_out_of_order("start")
        start = msg.start
        if not start.stream_sid:
            raise RemoteProtocolError("'start.streamSid' is empty", code="invalid_message")
        if msg.stream_sid and msg.stream_sid != start.stream_sid:
            raise RemoteProtocolError(
                f"top-level streamSid {msg.stream_sid!r} differs from start.streamSid "
                f"{start.stream_sid!r}",
                code="stream_sid_mismatch",
            )
        fmt = start.media_format
        if (fmt.encoding, fmt.sample_rate, fmt.channels) != ("audio/x-mulaw", 8000, 1):
            raise RemoteProtocolError(
                f"media format {fmt.encoding} {fmt.sample_rate} Hz x{fmt.channels} is not "
                "audio/x-mulaw 8000 Hz mono",
                code="unsupported_media_format",
            )
        self._track_sequence(msg.sequence_number)
        self.start = start
        self.state = StreamState.STARTED
        # Pre-built JSON around the base64 payload (see media()); msgspec escapes the sid.
        sid = _ENCODER.encode(start.stream_sid)
        self._media_prefix = b'{"event":"media","streamSid":' + sid + b',"media":{"payload":"'
        self._clear_frame = _ENCODER.encode(_OutClear(stream_sid=start.stream_sid))
        return start

    def _track_sequence(self, sequence_number: int | None) -> None:
        if sequence_number is not None:
            self.last_sequence_number = sequence_number

    def _check_sid(self, stream_sid: str) -> None:
        if self.start is not None and stream_sid != self.start.stream_sid:
            raise RemoteProtocolError(
                f"streamSid {stream_sid!r} is not this stream's {self.start.stream_sid!r}",
                code="stream_sid_mismatch",
            )

    def _reject_out_of_order(self, event: str) -> NoReturn:
        if self.state is StreamState.STOPPED:
            raise RemoteProtocolError(f"'{event}' after 'stop'", code="event_after_stop")
        if self.state is StreamState.AWAITING_START:
            code = "media_before_start" if event == "media" else "event_before_start"
            raise RemoteProtocolError(f"'{event}' before 'start'", code=code)
        raise RemoteProtocolError(f"'{event}' after 'start'", code="unexpected_event")

    def _not_a_known_message(self, frame: str | bytes, exc: msgspec.ValidationError) -> Unknown:
        # Slow path, only for frames that failed the typed decode: say precisely why,
        # or surface an event name we do not know as ``Unknown``.
        try:
            raw = msgspec.json.decode(frame)
        except (msgspec.DecodeError, UnicodeError, RecursionError) as exc2:
            raise RemoteProtocolError(f"not valid JSON: {exc2}", code="bad_json") from None
        if not isinstance(raw, dict):
            raise RemoteProtocolError(
                f"expected a JSON object, got {type(raw).__name__}", code="not_an_object"
            )
        event = raw.get("event")
        if not isinstance(event, str):
            raise RemoteProtocolError(
                "missing or non-string 'event' field", code="missing_event"
            ) from None
        if event in _KNOWN_EVENTS:
            detail = str(exc)
            code = "bad_base64" if detail.startswith("Invalid base64") else "invalid_message"
            raise RemoteProtocolError(f"invalid '{event}' message: {detail}", code=code) from None
        if self.state is StreamState.STOPPED:
            self._reject_out_of_order(event)
        return Unknown(event=event, data=raw)

    # -- outbound ----------------------------------------------------------------

    def media(self, ulaw: bytes) -> bytes:
        """A ``media`` message carrying ``ulaw`` (raw µ-law 8 kHz mono, any length).

        Built as prefix + base64 + suffix: measured as fast as encoding a msgspec
        Struct with a ``bytes`` field (~0.25 µs for 160 bytes) with one allocation
        fewer; the prefix is built once per stream with the sid JSON-escaped.
        """
        if self.state is not StreamState.STARTED:
            self._cannot_send("media")
        return b"".join((self._media_prefix, binascii.b2a_base64(ulaw, newline=False), b'"}}'))

    def mark(self, name: str) -> bytes:
        """A ``mark`` message; Twilio echoes ``name`` when the audio before it is done."""
        if self.state is not StreamState.STARTED:
            self._cannot_send("mark")
        if not name:
            raise LocalProtocolError("a mark needs a non-empty name", code="invalid_mark")
        return _ENCODER.encode(_OutMark(stream_sid=self.stream_sid, mark=_OutMarkBody(name)))

    def clear(self) -> bytes:
        """A ``clear`` message: Twilio drops buffered audio and echoes pending marks."""
        if self.state is not StreamState.STARTED:
            self._cannot_send("clear")
        return self._clear_frame

    def _cannot_send(self, what: str) -> NoReturn:
        if self.state is StreamState.STOPPED:
            raise LocalProtocolError(f"cannot send '{what}': stream stopped", code="stream_stopped")
        raise LocalProtocolError(
            f"cannot send '{what}' before 'start' (no streamSid yet)", code="not_started"
        )


# ------------------------------------------------------------------------- marks


@dataclass(frozen=True, slots=True)
class MarkEcho:
    """What one echoed mark tells: the audio it closed was heard, or flushed by ``clear``."""

    name: str
    response_id: str
    played: bool  # False: flushed by a clear, never heard
    ms: float  # duration of the audio between the previous mark and this one
    played_ms: float  # total audio of ``response_id`` heard so far


@dataclass(slots=True)
class _PendingMark:
    name: str
    response_id: str
    n_bytes: int
    flushed: bool = False


class MarkTracker:
    """Names a mark per outbound chunk and turns echoes into milliseconds played.

    Send ``stream.mark(tracker.add(len(chunk), response_id))`` after each
    ``stream.media(chunk)``. Twilio plays in order and echoes each mark when its
    audio finished; ``echo(name)`` then credits that chunk as played. After a
    ``clear`` Twilio echoes the pending marks at once, so ``clear()`` flags them
    and their echoes count as flushed, not played. ``played_ms(response_id)`` is
    the ``audio_end_ms`` to truncate a reply at on barge-in (protocols.md §2.7).
    """

    __slots__ = ("_bytes_per_ms", "_counter", "_pending", "_played", "_prefix")

    def __init__(self, *, bytes_per_ms: int = ULAW_BYTES_PER_MS, prefix: str = "parley-") -> None:
        if bytes_per_ms <= 0:
            raise ValueError("bytes_per_ms must be positive")
        self._bytes_per_ms = bytes_per_ms
        self._prefix = prefix
        self._counter = 0
        self._pending: deque[_PendingMark] = deque()  # oldest first, as Twilio plays them
        self._played: dict[str, int] = {}  # response_id -> bytes heard

    def add(self, n_bytes: int, response_id: str = "") -> str:
        """Record ``n_bytes`` of audio just sent; return the name of the mark to send next."""
        if n_bytes < 0:
            raise ValueError("n_bytes must be >= 0")
        self._counter += 1
        name = f"{self._prefix}{self._counter}"
        self._pending.append(_PendingMark(name, response_id, n_bytes))
        return name

    def echo(self, name: str) -> MarkEcho | None:
        """Account for Twilio's echo of ``name``; ``None`` if it is not one of ours.

        Marks still pending before ``name`` are settled with it (Twilio plays in
        order, so their audio finished too).
        """
        if not any(pending.name == name for pending in self._pending):
            return None
        while True:
            pending = self._pending.popleft()
            if not pending.flushed:
                rid = pending.response_id
                self._played[rid] = self._played.get(rid, 0) + pending.n_bytes
            if pending.name == name:
                return MarkEcho(
                    name=name,
                    response_id=pending.response_id,
                    played=not pending.flushed,
                    ms=pending.n_bytes / self._bytes_per_ms,
                    played_ms=self.played_ms(pending.response_id),
                )

    def clear(self) -> float:
        """Flag pending marks as flushed (call it when sending ``clear``); return the ms dropped."""
        dropped = 0
        for pending in self._pending:
            if not pending.flushed:
                pending.flushed = True
                dropped += pending.n_bytes
        return dropped / self._bytes_per_ms

    def played_ms(self, response_id: str = "") -> float:
        """Milliseconds of ``response_id``'s audio confirmed played so far."""
        return self._played.get(response_id, 0) / self._bytes_per_ms

    @property
    def pending_ms(self) -> float:
        """Audio sent whose mark has not come back and was not flushed."""
        total = sum(p.n_bytes for p in self._pending if not p.flushed)
        return total / self._bytes_per_ms

    @property
    def pending_marks(self) -> int:
        """Marks sent and not yet echoed (flushed ones included)."""
        return len(self._pending)

    def forget(self, response_id: str) -> None:
        """Drop the played total of a finished response (keeps a long call's memory flat)."""
        self._played.pop(response_id, None)

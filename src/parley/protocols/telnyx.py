"""Telnyx Media Streaming (bidirectional, RTP mode), sans-I/O.

One WebSocket text frame in, one typed event out; commands in, JSON text out (as
ASCII ``bytes``, sent as *text* frames, like :mod:`parley.protocols.twilio`).

Wire facts (reference/protocols.md §3.1; Telnyx's AsyncAPI "Stream call media over
WebSocket", developers.telnyx.com/api-reference/websockets/stream-call-media-over-websocket;
TeXML ``<Stream>``, developers.telnyx.com/docs/voice/programmable-voice/texml-verbs/stream):

* Telnyx → us: ``connected`` (``version``; ``x-telnyx-streaming-auth-token`` when a
  stream auth token is configured), ``start`` (top-level ``stream_id``,
  ``sequence_number``; ``start.call_control_id``, ``custom_parameters``,
  ``media_format{encoding, sample_rate, channels}``), ``media``
  (``media{track, chunk, timestamp, payload}``, base64 RTP payload without the RTP
  header), ``dtmf`` (``dtmf.digit``), ``mark`` (echo of ours), ``error``
  (``payload{code, title, detail}``) and ``stop``. Names are snake_case and numbers
  arrive as strings (``"sequence_number":"1"``); the decoder is lax, as for Twilio.
* Us → Telnyx: ``{"event":"media","media":{"payload":…}}`` carrying **20 ms to 30 s**
  of audio in the stream's bidirectional codec, ``{"event":"mark","mark":{"name":…}}``
  (echoed when the audio before it has played, or at once if none is queued) and
  ``{"event":"clear"}`` (drops queued audio; "queued marks are sent back"). No
  stream id is sent (Pipecat's serializer sends none either).
* Codecs: PCMU and PCMA at 8 kHz and L16 at 8 or 16 kHz are accepted; L16 is RTP's
  big-endian (:mod:`parley.protocols.phone_audio`). G722, OPUS and AMR-WB are
  refused with ``unsupported_media_format``: Parley has no decoder for them.
* "Media frame order is not guaranteed": an inbound chunk at or below the last one
  delivered comes back as :class:`SkippedMedia` (late audio played out of order is
  worse than a 20 ms gap), as does audio of another track (``both_tracks``).

Malformed or out-of-order frames raise ``RemoteProtocolError`` with a ``code``.

A shell, per frame: ``Media`` → ``stream.audio(media)`` (in ``input_format``);
``Mark`` → ``tracker.echo(name)`` with ``PlaybackTracker(bytes_per_ms=
output_format.frame_bytes(1))``; ``DTMF`` → ``as_event()``; ``Stop`` → hang up;
anything else is ignored. Out: ``for piece in stream.chunks(audio)``: send
``media(piece)`` then ``mark(tracker.add(len(piece), response_id))``; barge-in:
``tracker.clear()`` and send ``clear()``.
"""

from __future__ import annotations

import binascii
import enum
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, NoReturn, TypeAlias

import msgspec

from parley.audio.format import AudioFormat
from parley.errors import ConfigError, LocalProtocolError, RemoteProtocolError
from parley.events import DTMFReceived
from parley.protocols._phone_json import check_digit, explain_invalid
from parley.protocols.limits import MAX_TEXT_FRAME_BYTES, check_frame_size
from parley.protocols.phone_audio import (
    l16_be_from_pcm16,
    pcm16_from_l16_be,
    silence_byte,
    split_padded,
)

__all__ = [
    "DTMF",
    "MAX_MEDIA_MS",
    "MIN_MEDIA_MS",
    "Codec",
    "Connected",
    "Error",
    "Mark",
    "Media",
    "MediaFormat",
    "SkippedMedia",
    "Start",
    "Stop",
    "StreamState",
    "TelnyxEvent",
    "TelnyxStream",
    "Unknown",
    "line_format",
]

Codec = Literal["PCMU", "PCMA", "L16"]
#: Shortest and longest audio one outbound ``media`` message may carry (RTP mode).
MIN_MEDIA_MS: Final = 20
MAX_MEDIA_MS: Final = 30_000

_Count = Annotated[int, msgspec.Meta(ge=0)]
_G711: Final = {"PCMU": "ulaw", "PCMA": "alaw"}
_L16_RATES: Final = frozenset({8000, 16000})


def line_format(encoding: str, sample_rate: int, channels: int = 1) -> AudioFormat:
    """The :class:`AudioFormat` of a Telnyx codec, or ``RemoteProtocolError`` if unsupported."""
    ok = channels == 1 and (
        (encoding in _G711 and sample_rate == 8000)
        or (encoding == "L16" and sample_rate in _L16_RATES)
    )
    if not ok:
        raise RemoteProtocolError(
            f"media format {encoding} {sample_rate} Hz x{channels} is not PCMU/PCMA at 8 kHz "
            "or L16 at 8/16 kHz, mono",
            code="unsupported_media_format",
        )
    if encoding == "L16":
        return AudioFormat("pcm16", sample_rate)
    return AudioFormat("ulaw" if encoding == "PCMU" else "alaw", 8000)


# --------------------------------------------------------------------------- events


class MediaFormat(msgspec.Struct, frozen=True):
    """``start.media_format``: the codec of the inbound audio."""

    encoding: str = "PCMU"
    sample_rate: int = 8000
    channels: int = 1


class Connected(msgspec.Struct, frozen=True):
    """First frame: ``{"event":"connected","version":"1.0.0"}``."""

    version: str = ""
    #: ``x-telnyx-streaming-auth-token``: the ``stream_auth_token`` of the Call Control
    #: command, when one was set (Telnyx also sends it as a header).
    auth_token: str = msgspec.field(default="", name="x-telnyx-streaming-auth-token")


class Start(msgspec.Struct, frozen=True, rename={"from_": "from"}):
    """The stream's metadata; ``stream_id`` is copied in from the top level.

    The optional fields may be JSON ``null`` (Telnyx writes ``"client_state": null``
    in its webhooks when none was set); ``None`` then.
    """

    call_control_id: str
    user_id: str | None = None
    call_session_id: str | None = None
    from_: str | None = None
    to: str | None = None
    tags: tuple[str, ...] | None = None
    client_state: str | None = None
    custom_parameters: dict[str, str] | None = None
    media_format: MediaFormat = MediaFormat()
    stream_id: str = ""

    @property
    def parameters(self) -> dict[str, str]:
        """``custom_parameters``, ``{}`` when absent (where a one-time stream token travels)."""
        return self.custom_parameters or {}


class Media(msgspec.Struct, frozen=True, gc=False):
    """One chunk of call audio as sent (``payload`` decoded from base64, RTP payload only).

    Use ``TelnyxStream.audio(media)`` for it in the stream's ``input_format``.
    """

    track: str
    chunk: _Count
    timestamp: _Count
    payload: bytes


class DTMF(msgspec.Struct, frozen=True):
    """A key press; ``digit`` is one of ``0-9 * # A-D``."""

    digit: str

    def as_event(self) -> DTMFReceived:
        return DTMFReceived(self.digit)


class Mark(msgspec.Struct, frozen=True):
    """Echo of a mark we sent: the audio before it played, or a ``clear`` flushed it."""

    name: str


class Error(msgspec.Struct, frozen=True):
    """Telnyx reports a streaming error (often about a frame *we* sent)."""

    code: int | str | None = None
    title: str | None = None
    detail: str | None = None


class Stop(msgspec.Struct, frozen=True):
    """The stream ended (hang-up, ``streaming_stop``)."""

    user_id: str | None = None
    call_control_id: str | None = None


class Unknown(msgspec.Struct, frozen=True):
    """An event name this module does not know; ``data`` is the frame."""

    event: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SkippedMedia:
    """Audio not to play: ``reason`` is ``"late"`` (out of order) or ``"other_track"``."""

    media: Media
    reason: str


TelnyxEvent: TypeAlias = (
    Connected | Start | Media | SkippedMedia | DTMF | Mark | Error | Stop | Unknown
)

# ----------------------------------------------------------------- wire envelopes


class _ConnectedMsg(msgspec.Struct, tag_field="event", tag="connected", frozen=True):
    version: str = ""
    auth_token: str = msgspec.field(default="", name="x-telnyx-streaming-auth-token")


class _StartMsg(msgspec.Struct, tag_field="event", tag="start", frozen=True):
    start: Start
    stream_id: str
    sequence_number: _Count | None = None


class _MediaMsg(msgspec.Struct, tag_field="event", tag="media", frozen=True, gc=False):
    media: Media
    stream_id: str = ""
    sequence_number: _Count | None = None


class _DTMFMsg(msgspec.Struct, tag_field="event", tag="dtmf", frozen=True):
    dtmf: DTMF
    stream_id: str = ""
    sequence_number: _Count | None = None


class _MarkMsg(msgspec.Struct, tag_field="event", tag="mark", frozen=True):
    mark: Mark
    stream_id: str = ""
    sequence_number: _Count | None = None


class _ErrorMsg(msgspec.Struct, tag_field="event", tag="error", frozen=True):
    payload: Error = Error()
    stream_id: str = ""
    sequence_number: _Count | None = None


class _StopMsg(msgspec.Struct, tag_field="event", tag="stop", frozen=True):
    stop: Stop = Stop()
    stream_id: str = ""
    sequence_number: _Count | None = None


_Inbound: TypeAlias = (
    _MediaMsg | _StartMsg | _ConnectedMsg | _DTMFMsg | _MarkMsg | _ErrorMsg | _StopMsg
)
_KNOWN_EVENTS: Final = frozenset({"connected", "start", "media", "dtmf", "mark", "error", "stop"})
_DECODER: Final[msgspec.json.Decoder[_Inbound]] = msgspec.json.Decoder(_Inbound, strict=False)
_ENCODER: Final = msgspec.json.Encoder()
_MEDIA_PREFIX: Final = b'{"event":"media","media":{"payload":"'
_CLEAR: Final = b'{"event":"clear"}'


class _OutMarkBody(msgspec.Struct, frozen=True):
    name: str


class _OutMark(msgspec.Struct, tag_field="event", tag="mark", frozen=True):
    mark: _OutMarkBody


# ------------------------------------------------------------------ state machine


class StreamState(enum.Enum):
    AWAITING_START = "awaiting_start"
    STARTED = "started"
    STOPPED = "stopped"


class TelnyxStream:
    """One Telnyx media-streaming WebSocket: ``AWAITING_START → STARTED → STOPPED``.

    ``receive()`` turns each inbound text frame into one event and enforces the
    order (no media, DTMF or mark before ``start``; nothing after ``stop``; every
    frame's ``stream_id``, when present, is the one from ``start``). The builders
    raise ``LocalProtocolError`` before ``start`` and after ``stop``.

    ``bidirectional_codec``/``bidirectional_rate``: what the Call Control command or
    TeXML ``<Stream bidirectionalCodec=… bidirectionalSamplingRate=…>`` asked Telnyx
    to accept back (the ``output_format``); ``None`` mirrors the inbound format.
    """

    __slots__ = (
        "_bidi_codec",
        "_bidi_rate",
        "_last_chunk",
        "_max_frame",
        "_media_bytes",
        "input_format",
        "last_sequence_number",
        "output_format",
        "skipped_media",
        "start",
        "state",
    )

    def __init__(
        self,
        *,
        bidirectional_codec: Codec | None = None,
        bidirectional_rate: int | None = None,
        max_frame_bytes: int = MAX_TEXT_FRAME_BYTES,
    ) -> None:
        if bidirectional_codec is not None:
            rate = bidirectional_rate or (8000 if bidirectional_codec in _G711 else 16000)
            try:
                line_format(bidirectional_codec, rate)
            except RemoteProtocolError as exc:
                raise ConfigError(exc.message, field="bidirectional_codec") from None
        elif bidirectional_rate is not None:
            raise ConfigError("a rate needs a codec", field="bidirectional_rate")
        self._bidi_codec = bidirectional_codec
        self._bidi_rate = bidirectional_rate
        self._max_frame = max_frame_bytes
        self.state = StreamState.AWAITING_START
        #: The ``start`` event once received (ids, custom parameters, media format).
        self.start: Start | None = None
        #: Audio formats of the line (set by ``start``): what ``audio()`` returns and
        #: what ``media()`` takes.
        self.input_format: AudioFormat | None = None
        self.output_format: AudioFormat | None = None
        #: Highest ``sequence_number`` seen (frames may come out of order).
        self.last_sequence_number = 0
        #: Inbound media frames returned as ``SkippedMedia``.
        self.skipped_media = 0
        self._last_chunk = -1
        self._media_bytes = (0, 0)  # outbound media size range, set by start

    @property
    def stream_id(self) -> str:
        return self.start.stream_id if self.start is not None else ""

    # -- inbound -----------------------------------------------------------------

    def receive(self, frame: str | bytes) -> TelnyxEvent:
        """Parse one frame from Telnyx; raise ``RemoteProtocolError`` if it is bad."""
        check_frame_size(frame, self._max_frame, "Telnyx frame")
        try:
            msg = _DECODER.decode(frame)
        except msgspec.ValidationError as exc:
            name, raw = explain_invalid(frame, exc, _KNOWN_EVENTS)
            if self.state is StreamState.STOPPED:
                self._reject_out_of_order(name)
            return Unknown(event=name, data=raw)
        except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
            raise RemoteProtocolError(f"not valid JSON: {exc}", code="bad_json") from None

        if isinstance(msg, _MediaMsg):  # the hot path: 50 frames a second
            if self.state is not StreamState.STARTED:
                self._reject_out_of_order("media")
            self._check_id(msg.stream_id, msg.sequence_number)
            media = msg.media
            if media.track != "inbound":
                self.skipped_media += 1
                return SkippedMedia(media, "other_track")
            if media.chunk <= self._last_chunk:
                self.skipped_media += 1
                return SkippedMedia(media, "late")
            self._last_chunk = media.chunk
            return media
        if isinstance(msg, _ConnectedMsg):
            if self.state is not StreamState.AWAITING_START:
                self._reject_out_of_order("connected")
            return Connected(version=msg.version, auth_token=msg.auth_token)
        if isinstance(msg, _StartMsg):
            return self._on_start(msg)
        if isinstance(msg, _StopMsg):
            if self.state is StreamState.STOPPED:
                self._reject_out_of_order("stop")
            self._check_id(msg.stream_id, msg.sequence_number)
            self.state = StreamState.STOPPED
            return msg.stop
        if isinstance(msg, _ErrorMsg):  # may come at any time before stop
            if self.state is StreamState.STOPPED:
                self._reject_out_of_order("error")
            self._check_id(msg.stream_id, msg.sequence_number)
            return msg.payload
        if self.state is not StreamState.STARTED:
            self._reject_out_of_order("dtmf" if isinstance(msg, _DTMFMsg) else "mark")
        self._check_id(msg.stream_id, msg.sequence_number)
        if isinstance(msg, _DTMFMsg):
            check_digit(msg.dtmf.digit)
            return msg.dtmf
        return msg.mark

    def _on_start(self, msg: _StartMsg) -> Start:
        if self.state is not StreamState.AWAITING_START:
            if self.state is StreamState.STARTED:
                raise RemoteProtocolError("a second 'start' on one stream", code="duplicate_start")
            self._reject_out_of_order("start")
        if not msg.stream_id:
            raise RemoteProtocolError("'stream_id' is empty", code="invalid_message")
        if not msg.start.call_control_id:
            raise RemoteProtocolError("'start.call_control_id' is empty", code="invalid_message")
        fmt = msg.start.media_format
        self.input_format = line_format(fmt.encoding, fmt.sample_rate, fmt.channels)
        if self._bidi_codec is None:
            self.output_format = self.input_format
        else:
            rate = self._bidi_rate or (8000 if self._bidi_codec in _G711 else fmt.sample_rate)
            self.output_format = line_format(self._bidi_codec, rate)
        out = self.output_format
        self._media_bytes = (out.frame_bytes(MIN_MEDIA_MS), out.frame_bytes(MAX_MEDIA_MS))
        if msg.sequence_number is not None:
            self.last_sequence_number = max(self.last_sequence_number, msg.sequence_number)
        self.start = msgspec.structs.replace(msg.start, stream_id=msg.stream_id)
        self.state = StreamState.STARTED
        return self.start

    def _check_id(self, stream_id: str, sequence_number: int | None) -> None:
        if stream_id and self.start is not None and stream_id != self.start.stream_id:
            raise RemoteProtocolError(
                f"stream_id {stream_id!r} is not this stream's {self.start.stream_id!r}",
                code="stream_id_mismatch",
            )
        if sequence_number is not None and sequence_number > self.last_sequence_number:
            self.last_sequence_number = sequence_number

    def _reject_out_of_order(self, event: str) -> NoReturn:
        if self.state is StreamState.STOPPED:
            raise RemoteProtocolError(f"'{event}' after 'stop'", code="event_after_stop")
        if self.state is StreamState.AWAITING_START:
            code = "media_before_start" if event == "media" else "event_before_start"
            raise RemoteProtocolError(f"'{event}' before 'start'", code=code)
        raise RemoteProtocolError(f"'{event}' after 'start'", code="unexpected_event")

    def audio(self, media: Media) -> bytes:
        """``media``'s audio in ``input_format`` (L16 swapped to little-endian)."""
        fmt = self.input_format
        if fmt is not None and fmt.encoding == "pcm16":
            return pcm16_from_l16_be(media.payload)
        return media.payload

    # -- outbound ----------------------------------------------------------------

    def media(self, audio: bytes) -> bytes:
        """A ``media`` message carrying ``audio`` (``output_format``, 20 ms to 30 s)."""
        fmt = self._started_format("media")
        n = len(audio)
        low, high = self._media_bytes
        if not low <= n <= high:
            raise LocalProtocolError(
                f"a Telnyx media message carries {MIN_MEDIA_MS} ms to 30 s of audio, "
                f"not {fmt.duration_ms(n):.1f} ms",
                code="bad_audio_length",
            )
        if fmt.encoding == "pcm16":
            audio = l16_be_from_pcm16(audio)
        return b"".join((_MEDIA_PREFIX, binascii.b2a_base64(audio, newline=False), b'"}}'))

    def chunks(self, audio: bytes, chunk_ms: int = 100) -> list[bytes]:
        """``audio`` cut for ``media()``: at most ``chunk_ms`` each, the last padded to 20 ms."""
        fmt = self._started_format("media")
        if not MIN_MEDIA_MS <= chunk_ms <= MAX_MEDIA_MS:
            raise ValueError(f"chunk_ms must be in [{MIN_MEDIA_MS}, {MAX_MEDIA_MS}]")
        return split_padded(
            audio,
            fmt.frame_bytes(chunk_ms),
            min_bytes=fmt.frame_bytes(MIN_MEDIA_MS),
            pad=silence_byte(fmt),
        )

    def mark(self, name: str) -> bytes:
        """A ``mark`` message; Telnyx echoes ``name`` when the audio before it is done."""
        self._started_format("mark")
        if not name:
            raise LocalProtocolError("a mark needs a non-empty name", code="invalid_mark")
        return _ENCODER.encode(_OutMark(mark=_OutMarkBody(name)))

    def clear(self) -> bytes:
        """A ``clear`` message: Telnyx drops queued audio and sends queued marks back."""
        self._started_format("clear")
        return _CLEAR

    def _started_format(self, what: str) -> AudioFormat:
        if self.state is StreamState.STARTED and self.output_format is not None:
            return self.output_format
        if self.state is StreamState.STOPPED:
            raise LocalProtocolError(f"cannot send '{what}': stream stopped", code="stream_stopped")
        raise LocalProtocolError(f"cannot send '{what}' before 'start'", code="not_started")

"""Plivo Audio Streaming (XML ``<Stream bidirectional="true">``), sans-I/O.

One WebSocket text frame in, one typed event out; commands in, JSON text out (as
ASCII ``bytes``, sent as *text* frames, like :mod:`parley.protocols.twilio`).

Wire facts (reference/protocols.md §3.3; Plivo's "Stream Event Protocol",
plivo.com/docs/voice/audio-streaming/audio-streaming, and "Audio Streaming Protocol
Reference", docs.plivo.com/docs/voice-agents/audio-streaming/concepts/audio-streaming-reference;
the checkpoint page plivo.com/docs/voice/xml/the-stream-element/checkpoint-event;
Plivo's stream SDK for Java, ``StopEvent``/``MediaData``):

* Plivo → us: ``start`` first (no ``connected``): ``sequenceNumber`` (a JSON number),
  ``start{callId, streamId, accountId, tracks, mediaFormat{encoding, sampleRate}}``
  and top-level ``extra_headers`` (the XML ``extraHeaders``); ``media``
  (``media{track, timestamp, chunk, payload}``: ``timestamp`` is wall-clock unix ms as
  a string, ``chunk`` a number); ``dtmf`` (``dtmf.digit``); ``playedStream``
  (``name``: "emitted only if the preceding events were played successfully"; the
  support article calls it ``played``, accepted too); ``clearedAudio``; ``stop``.
* Us → Plivo: ``{"event":"playAudio","media":{"contentType","sampleRate","payload"},
  "streamId"}``, ``{"event":"checkpoint","streamId","name"}`` (→ ``playedStream``),
  ``{"event":"clearAudio","streamId"}`` (→ ``clearedAudio``). "Don't switch codec
  between playAudio events": the play format is fixed per stream.
* Formats: ``audio/x-mulaw`` 8 kHz and ``audio/x-l16`` 8 or 16 kHz. Plivo does not
  say L16's byte order; little-endian is assumed (``l16_big_endian=True`` switches).

Barge-in: flushed checkpoints never echo, so a ``playedStream`` always means played
(``PlaybackTracker(flushed_marks_echo=False)``) and ``clearedAudio`` is the moment to
forget the rest (``tracker.cleared()``).

A shell, per frame: ``Media`` → ``stream.audio(media)``; ``PlayedStream`` →
``tracker.echo(name)``; ``ClearedAudio`` → ``tracker.cleared()``; ``DTMF`` →
``as_event()``; ``Stop`` → hang up. Out: ``media(piece)`` then
``mark(tracker.add(len(piece), response_id))`` per chunk (any length); barge-in:
``tracker.clear()`` and send ``clear()``. The one-time token: ``start.headers``.
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
from parley.protocols.phone_audio import l16_be_from_pcm16, pcm16_from_l16_be

__all__ = [
    "DTMF",
    "ClearedAudio",
    "ContentType",
    "Media",
    "MediaFormat",
    "PlayedStream",
    "PlivoEvent",
    "PlivoStream",
    "SkippedMedia",
    "Start",
    "Stop",
    "StreamState",
    "Unknown",
    "line_format",
    "parse_extra_headers",
]

ContentType = Literal["audio/x-mulaw", "audio/x-l16"]
_Count = Annotated[int, msgspec.Meta(ge=0)]
_L16_RATES: Final = frozenset({8000, 16000})


def line_format(encoding: str, sample_rate: int) -> AudioFormat:
    """The :class:`AudioFormat` of a Plivo content type, or ``RemoteProtocolError``."""
    if encoding == "audio/x-mulaw" and sample_rate == 8000:
        return AudioFormat("ulaw", 8000)
    if encoding == "audio/x-l16" and sample_rate in _L16_RATES:
        return AudioFormat("pcm16", sample_rate)
    raise RemoteProtocolError(
        f"media format {encoding} {sample_rate} Hz is not audio/x-mulaw 8 kHz or "
        "audio/x-l16 8/16 kHz",
        code="unsupported_media_format",
    )


def parse_extra_headers(value: str) -> dict[str, str]:
    """``"k=v;k2=v2"`` (or comma-separated, as the XML attribute is written) → a dict."""
    out: dict[str, str] = {}
    for part in value.replace(",", ";").split(";"):
        key, sep, val = part.partition("=")
        if sep and key.strip():
            out[key.strip()] = val.strip()
    return out


# --------------------------------------------------------------------------- events


class MediaFormat(msgspec.Struct, frozen=True, rename="camel"):
    """``start.mediaFormat``."""

    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000


class Start(msgspec.Struct, frozen=True, rename="camel"):
    """The stream's metadata; ``extra_headers`` is copied in from the top level."""

    call_id: str
    stream_id: str
    account_id: str | None = None
    tracks: tuple[str, ...] = ("inbound",)
    media_format: MediaFormat = MediaFormat()
    extra_headers: str | None = msgspec.field(default=None, name="extra_headers")

    @property
    def headers(self) -> dict[str, str]:
        """``extra_headers`` as a dict (where a one-time stream token travels)."""
        return parse_extra_headers(self.extra_headers or "")


class Media(msgspec.Struct, frozen=True, gc=False):
    """One chunk of caller audio; ``timestamp`` is unix time in ms, ``payload`` decoded."""

    track: str
    timestamp: _Count
    chunk: _Count
    payload: bytes


class DTMF(msgspec.Struct, frozen=True):
    """A key press; ``digit`` is one of ``0-9 * # A-D``."""

    digit: str
    track: str = "inbound"

    def as_event(self) -> DTMFReceived:
        return DTMFReceived(self.digit)


class PlayedStream(msgspec.Struct, frozen=True):
    """The audio sent before our checkpoint ``name`` has been played."""

    name: str


class ClearedAudio(msgspec.Struct, frozen=True):
    """Plivo emptied its playback buffer after our ``clearAudio``."""


class Stop(msgspec.Struct, frozen=True):
    """The stream ended."""

    reason: str | None = None


class Unknown(msgspec.Struct, frozen=True):
    """An event name this module does not know; ``data`` is the frame."""

    event: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SkippedMedia:
    """Audio not to feed the conversation: ``reason`` is ``"other_track"``."""

    media: Media
    reason: str


PlivoEvent: TypeAlias = (
    Start | Media | SkippedMedia | DTMF | PlayedStream | ClearedAudio | Stop | Unknown
)

# ----------------------------------------------------------------- wire envelopes


class _StartMsg(msgspec.Struct, tag_field="event", tag="start", rename="camel", frozen=True):
    start: Start
    sequence_number: _Count | None = None
    extra_headers: str | None = msgspec.field(default=None, name="extra_headers")


class _MediaMsg(
    msgspec.Struct, tag_field="event", tag="media", rename="camel", frozen=True, gc=False
):
    media: Media
    stream_id: str = ""
    sequence_number: _Count | None = None


class _DTMFMsg(msgspec.Struct, tag_field="event", tag="dtmf", rename="camel", frozen=True):
    dtmf: DTMF
    stream_id: str = ""
    sequence_number: _Count | None = None


class _PlayedStreamMsg(
    msgspec.Struct, tag_field="event", tag="playedStream", rename="camel", frozen=True
):
    name: str
    stream_id: str = ""
    sequence_number: _Count | None = None


class _PlayedMsg(msgspec.Struct, tag_field="event", tag="played", rename="camel", frozen=True):
    name: str
    stream_id: str = ""
    sequence_number: _Count | None = None


class _ClearedAudioMsg(
    msgspec.Struct, tag_field="event", tag="clearedAudio", rename="camel", frozen=True
):
    stream_id: str = ""
    sequence_number: _Count | None = None


class _StopMsg(msgspec.Struct, tag_field="event", tag="stop", rename="camel", frozen=True):
    reason: str | None = None
    stream_id: str = ""
    sequence_number: _Count | None = None


_Inbound: TypeAlias = (
    _MediaMsg | _StartMsg | _DTMFMsg | _PlayedStreamMsg | _PlayedMsg | _ClearedAudioMsg | _StopMsg
)
_KNOWN_EVENTS: Final = frozenset(
    {"start", "media", "dtmf", "playedStream", "played", "clearedAudio", "stop"}
)
_DECODER: Final[msgspec.json.Decoder[_Inbound]] = msgspec.json.Decoder(_Inbound, strict=False)
_ENCODER: Final = msgspec.json.Encoder()
_CLEARED: Final = ClearedAudio()


class _OutCheckpoint(msgspec.Struct, tag_field="event", tag="checkpoint", rename="camel"):
    stream_id: str
    name: str


class _OutClear(msgspec.Struct, tag_field="event", tag="clearAudio", rename="camel"):
    stream_id: str


# ------------------------------------------------------------------ state machine


class StreamState(enum.Enum):
    AWAITING_START = "awaiting_start"
    STARTED = "started"
    STOPPED = "stopped"


class PlivoStream:
    """One Plivo audio stream: ``AWAITING_START → STARTED → STOPPED``.

    ``receive()`` enforces the order (nothing but ``start`` first, nothing after
    ``stop``; every frame's ``streamId``, when present, is the one from ``start``).
    ``play_content_type``/``play_rate`` fix the ``playAudio`` format; ``None`` mirrors
    the inbound format.
    """

    __slots__ = (
        "_big_endian",
        "_clear_frame",
        "_max_frame",
        "_media_prefix",
        "_play",
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
        play_content_type: ContentType | None = None,
        play_rate: int | None = None,
        l16_big_endian: bool = False,
        max_frame_bytes: int = MAX_TEXT_FRAME_BYTES,
    ) -> None:
        self._play: tuple[str, int] | None = None
        if play_content_type is not None:
            rate = play_rate or (8000 if play_content_type == "audio/x-mulaw" else 16000)
            try:
                line_format(play_content_type, rate)
            except RemoteProtocolError as exc:
                raise ConfigError(exc.message, field="play_content_type") from None
            self._play = (play_content_type, rate)
        elif play_rate is not None:
            raise ConfigError("a rate needs a content type", field="play_rate")
        self._big_endian = l16_big_endian
        self._max_frame = max_frame_bytes
        self.state = StreamState.AWAITING_START
        self.start: Start | None = None
        #: Line formats (set by ``start``): what ``audio()`` returns, what ``media()`` takes.
        self.input_format: AudioFormat | None = None
        self.output_format: AudioFormat | None = None
        self.last_sequence_number = 0
        self.skipped_media = 0
        self._media_prefix = b""
        self._clear_frame = b""

    @property
    def stream_id(self) -> str:
        return self.start.stream_id if self.start is not None else ""

    # -- inbound -----------------------------------------------------------------

    def receive(self, frame: str | bytes) -> PlivoEvent:
        """Parse one frame from Plivo; raise ``RemoteProtocolError`` if it is bad."""
        check_frame_size(frame, self._max_frame, "Plivo frame")
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
            if msg.media.track != "inbound":
                self.skipped_media += 1
                return SkippedMedia(msg.media, "other_track")
            return msg.media
        if isinstance(msg, _StartMsg):
            return self._on_start(msg)
        if isinstance(msg, _StopMsg):
            if self.state is StreamState.STOPPED:
                self._reject_out_of_order("stop")
            self._check_id(msg.stream_id, msg.sequence_number)
            self.state = StreamState.STOPPED
            return Stop(msg.reason)
        if self.state is not StreamState.STARTED:
            self._reject_out_of_order(_event_name(msg))
        self._check_id(msg.stream_id, msg.sequence_number)
        if isinstance(msg, _DTMFMsg):
            check_digit(msg.dtmf.digit)
            return msg.dtmf
        if isinstance(msg, _ClearedAudioMsg):
            return _CLEARED
        return PlayedStream(msg.name)

    def _on_start(self, msg: _StartMsg) -> Start:
        if self.state is not StreamState.AWAITING_START:
            if self.state is StreamState.STARTED:
                raise RemoteProtocolError("a second 'start' on one stream", code="duplicate_start")
            self._reject_out_of_order("start")
        start = msg.start
        if not start.stream_id or not start.call_id:
            raise RemoteProtocolError(
                "'start.streamId' and 'start.callId' must not be empty", code="invalid_message"
            )
        fmt = start.media_format
        self.input_format = line_format(fmt.encoding, fmt.sample_rate)
        content_type, rate = self._play or (fmt.encoding, fmt.sample_rate)
        self.output_format = line_format(content_type, rate)
        if msg.extra_headers:
            start = msgspec.structs.replace(start, extra_headers=msg.extra_headers)
        self._check_id("", msg.sequence_number)
        self.start = start
        self.state = StreamState.STARTED
        sid = _ENCODER.encode(start.stream_id)
        head = b'{"event":"playAudio","streamId":' + sid + b',"media":{"contentType":'
        self._media_prefix = (
            head + _ENCODER.encode(content_type) + b',"sampleRate":%d,"payload":"' % rate
        )
        self._clear_frame = _ENCODER.encode(_OutClear(stream_id=start.stream_id))
        return start

    def _check_id(self, stream_id: str, sequence_number: int | None) -> None:
        if stream_id and self.start is not None and stream_id != self.start.stream_id:
            raise RemoteProtocolError(
                f"streamId {stream_id!r} is not this stream's {self.start.stream_id!r}",
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
        """``media``'s audio in ``input_format`` (PCM16 little-endian for L16)."""
        fmt = self.input_format
        if fmt is not None and fmt.encoding == "pcm16":
            if self._big_endian:
                return pcm16_from_l16_be(media.payload)
            if len(media.payload) % 2:
                raise RemoteProtocolError(
                    f"L16 audio of {len(media.payload)} bytes is not whole samples",
                    code="odd_audio_length",
                )
        return media.payload

    # -- outbound ----------------------------------------------------------------

    def media(self, audio: bytes) -> bytes:
        """A ``playAudio`` message carrying ``audio`` in ``output_format`` (any length)."""
        fmt = self._started_format("playAudio")
        if fmt.encoding == "pcm16":
            if self._big_endian:
                audio = l16_be_from_pcm16(audio)
            elif len(audio) % 2:
                raise LocalProtocolError(
                    f"PCM16 of {len(audio)} bytes is not whole samples", code="bad_pcm_length"
                )
        return b"".join((self._media_prefix, binascii.b2a_base64(audio, newline=False), b'"}}'))

    def mark(self, name: str) -> bytes:
        """A ``checkpoint``; Plivo answers ``playedStream`` once the audio before it played."""
        self._started_format("checkpoint")
        if not name:
            raise LocalProtocolError("a checkpoint needs a non-empty name", code="invalid_mark")
        return _ENCODER.encode(_OutCheckpoint(stream_id=self.stream_id, name=name))

    def clear(self) -> bytes:
        """A ``clearAudio``: Plivo drops buffered audio and answers ``clearedAudio``."""
        self._started_format("clearAudio")
        return self._clear_frame

    def _started_format(self, what: str) -> AudioFormat:
        if self.state is StreamState.STARTED and self.output_format is not None:
            return self.output_format
        if self.state is StreamState.STOPPED:
            raise LocalProtocolError(f"cannot send '{what}': stream stopped", code="stream_stopped")
        raise LocalProtocolError(f"cannot send '{what}' before 'start'", code="not_started")


def _event_name(msg: _DTMFMsg | _PlayedStreamMsg | _PlayedMsg | _ClearedAudioMsg) -> str:
    if isinstance(msg, _DTMFMsg):
        return "dtmf"
    if isinstance(msg, _ClearedAudioMsg):
        return "clearedAudio"
    return "playedStream"

"""The *Plivo* side of an audio stream, sans-I/O (for tests and test phones).

:mod:`parley.protocols.plivo` is the server's half; :class:`PlivoCaller` is the
mirror image: it builds the frames Plivo sends (``start``, ``media``, ``dtmf``,
``playedStream``, ``clearedAudio``, ``stop``) as Plivo's Stream Event Protocol shows
them — camelCase, ``sequenceNumber`` a JSON number from 1 (the ``start``), ``chunk``
a number, ``timestamp`` unix ms as a string — and parses what a server sends
(``playAudio``, ``checkpoint``, ``clearAudio``), rejecting anything Plivo would not
take: another ``streamId``, a ``playAudio`` in another format than the stream's, an
empty checkpoint name.

Use :class:`parley.protocols.playback.Playout` for when to answer ``playedStream``;
on ``clearAudio`` Plivo never reports the flushed checkpoints: drop them and send
``cleared_audio()``.
"""

from __future__ import annotations

import binascii
import uuid
from typing import Final, TypeAlias

import msgspec

from parley.audio.format import AudioFormat
from parley.errors import LocalProtocolError, RemoteProtocolError
from parley.protocols._phone_json import DTMF_DIGITS
from parley.protocols.limits import check_frame_size
from parley.protocols.plivo import ContentType, line_format

__all__ = [
    "MAX_SERVER_FRAME_BYTES",
    "ClearAudio",
    "OutboundCheckpoint",
    "OutboundMedia",
    "PlivoCaller",
    "ServerEvent",
]

MAX_SERVER_FRAME_BYTES: Final = 4 * 1024 * 1024


class OutboundMedia(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    """``playAudio.media``: audio the server wants played (``payload`` decoded)."""

    content_type: str
    sample_rate: int
    payload: bytes


class OutboundCheckpoint(msgspec.Struct, frozen=True):
    """A checkpoint the server placed after its audio."""

    name: str


class ClearAudio(msgspec.Struct, frozen=True):
    """The server asks to drop buffered audio (barge-in)."""


ServerEvent: TypeAlias = OutboundMedia | OutboundCheckpoint | ClearAudio


class _PlayMsg(msgspec.Struct, tag_field="event", tag="playAudio", rename="camel", frozen=True):
    media: OutboundMedia
    stream_id: str


class _CheckpointMsg(
    msgspec.Struct, tag_field="event", tag="checkpoint", rename="camel", frozen=True
):
    name: str
    stream_id: str


class _ClearMsg(msgspec.Struct, tag_field="event", tag="clearAudio", rename="camel", frozen=True):
    stream_id: str


_DECODER: Final[msgspec.json.Decoder[_PlayMsg | _CheckpointMsg | _ClearMsg]] = msgspec.json.Decoder(
    _PlayMsg | _CheckpointMsg | _ClearMsg
)
_ENCODER: Final = msgspec.json.Encoder()
_CLEAR: Final = ClearAudio()


class PlivoCaller:
    """One audio stream as Plivo drives it: ``start()``, ``media()``…, ``stop()``.

    ``content_type``/``sample_rate`` are the XML ``contentType``; the server must
    play back in the same format. ``start_ms`` is the unix-ms clock of the first chunk.
    """

    __slots__ = (
        "_chunk",
        "_max_frame",
        "_seq",
        "_state",
        "_timestamp",
        "account_id",
        "call_id",
        "content_type",
        "extra_headers",
        "line_format",
        "sample_rate",
        "stream_id",
    )

    def __init__(
        self,
        *,
        content_type: ContentType = "audio/x-mulaw",
        sample_rate: int = 8000,
        extra_headers: str = "",
        stream_id: str | None = None,
        call_id: str | None = None,
        start_ms: int = 1_700_000_000_000,
        max_frame_bytes: int = MAX_SERVER_FRAME_BYTES,
    ) -> None:
        try:
            self.line_format: AudioFormat = line_format(content_type, sample_rate)
        except RemoteProtocolError as exc:
            raise ValueError(exc.message) from None
        self.content_type = content_type
        self.sample_rate = sample_rate
        self.extra_headers = extra_headers
        self.stream_id = stream_id or str(uuid.uuid4())
        self.call_id = call_id or str(uuid.uuid4())
        self.account_id = "MA" + uuid.uuid4().hex[:18].upper()
        self._max_frame = max_frame_bytes
        self._state = "new"  # new → started → stopped
        self._seq = 0
        self._chunk = 0
        self._timestamp = start_ms

    @property
    def sequence_number(self) -> int:
        return self._seq

    # -- Plivo → server -------------------------------------------------------------

    def start(self) -> bytes:
        self._expect("new", "start")
        self._state = "started"
        return _ENCODER.encode(
            {
                "event": "start",
                "sequenceNumber": self._next_seq(),
                "start": {
                    "callId": self.call_id,
                    "streamId": self.stream_id,
                    "accountId": self.account_id,
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": self.content_type, "sampleRate": self.sample_rate},
                },
                "extra_headers": self.extra_headers,
            }
        )

    def media(self, payload: bytes) -> bytes:
        """One ``media`` message (``payload`` in the stream's format)."""
        self._expect("started", "media")
        self._chunk += 1
        ts = self._timestamp
        self._timestamp += round(self.line_format.duration_ms(len(payload)))
        return _ENCODER.encode(
            {
                "event": "media",
                "sequenceNumber": self._next_seq(),
                "streamId": self.stream_id,
                "media": {
                    "track": "inbound",
                    "timestamp": str(ts),
                    "chunk": self._chunk,
                    "payload": binascii.b2a_base64(payload, newline=False).decode(),
                },
            }
        )

    def dtmf(self, digit: str) -> bytes:
        self._expect("started", "dtmf")
        if len(digit) != 1 or digit not in DTMF_DIGITS:
            raise LocalProtocolError(f"DTMF digit {digit!r} is not one of 0-9 * # A-D")
        return _ENCODER.encode(
            {
                "event": "dtmf",
                "sequenceNumber": self._next_seq(),
                "streamId": self.stream_id,
                "dtmf": {"track": "inbound", "digit": digit},
            }
        )

    def played_stream(self, name: str) -> bytes:
        """``playedStream``: the audio before the server's checkpoint ``name`` played."""
        self._expect("started", "playedStream")
        return _ENCODER.encode(
            {
                "event": "playedStream",
                "sequenceNumber": self._next_seq(),
                "streamId": self.stream_id,
                "name": name,
            }
        )

    def cleared_audio(self) -> bytes:
        """``clearedAudio``: the acknowledgement of a server's ``clearAudio``."""
        self._expect("started", "clearedAudio")
        return _ENCODER.encode(
            {
                "sequenceNumber": self._next_seq(),
                "event": "clearedAudio",
                "streamId": self.stream_id,
            }
        )

    def stop(self, reason: str = "hangup") -> bytes:
        self._expect("started", "stop")
        self._state = "stopped"
        return _ENCODER.encode(
            {
                "event": "stop",
                "sequenceNumber": self._next_seq(),
                "streamId": self.stream_id,
                "reason": reason,
            }
        )

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _expect(self, state: str, what: str) -> None:
        if self._state != state:
            raise LocalProtocolError(
                f"cannot send '{what}' in state {self._state!r} (needs {state!r})",
                code="out_of_order",
            )

    # -- server → Plivo -------------------------------------------------------------

    def receive(self, frame: str | bytes) -> ServerEvent:
        """Parse one server frame; ``RemoteProtocolError`` if Plivo would reject it."""
        check_frame_size(frame, self._max_frame, "server frame")
        try:
            msg = _DECODER.decode(frame)
        except msgspec.ValidationError as exc:
            raise RemoteProtocolError(
                f"not a Plivo command: {exc}", code="invalid_message"
            ) from None
        except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
            raise RemoteProtocolError(f"not valid JSON: {exc}", code="bad_json") from None
        if msg.stream_id != self.stream_id:
            raise RemoteProtocolError(
                f"streamId {msg.stream_id!r} is not this stream's {self.stream_id!r}",
                code="stream_id_mismatch",
            )
        if isinstance(msg, _PlayMsg):
            media = msg.media
            if (media.content_type, media.sample_rate) != (self.content_type, self.sample_rate):
                raise RemoteProtocolError(
                    f"playAudio in {media.content_type} {media.sample_rate} Hz on a "
                    f"{self.content_type} {self.sample_rate} Hz stream",
                    code="unsupported_media_format",
                )
            if not media.payload or (self.line_format.sample_width == 2 and len(media.payload) % 2):
                raise RemoteProtocolError(
                    f"playAudio of {len(media.payload)} bytes", code="bad_audio_length"
                )
            return media
        if isinstance(msg, _CheckpointMsg):
            if not msg.name:
                raise RemoteProtocolError("a checkpoint needs a name", code="invalid_message")
            return OutboundCheckpoint(msg.name)
        return _CLEAR

"""The *Telnyx* side of a media-streaming WebSocket, sans-I/O (for tests and test phones).

:mod:`parley.protocols.telnyx` is the server's half; :class:`TelnyxCaller` is the
mirror image: it builds the frames Telnyx sends (``connected``, ``start``,
``media``, ``dtmf``, ``mark`` echoes, ``error``, ``stop``) as protocols.md §3.1 and
Telnyx's AsyncAPI show them — snake_case, numbers as strings, one
``sequence_number`` per message from ``"1"`` (the ``start``), a ``chunk`` counter
from ``"1"``, ``timestamp`` in ms — and parses what a server sends (``media``,
``mark``, ``clear``), rejecting what Telnyx would reject (audio outside 20 ms–30 s,
anything else) with :class:`~parley.errors.RemoteProtocolError`.

Use :class:`parley.protocols.playback.Playout` for when marks come back: Telnyx
echoes a mark once the audio before it played, and every queued mark on ``clear``.
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
from parley.protocols.phone_audio import pcm16_from_l16_be
from parley.protocols.telnyx import MAX_MEDIA_MS, MIN_MEDIA_MS, Codec, line_format

__all__ = [
    "MAX_SERVER_FRAME_BYTES",
    "Clear",
    "OutboundMark",
    "OutboundMedia",
    "ServerEvent",
    "TelnyxCaller",
]

#: Largest server frame accepted: 30 s of L16 16 kHz as base64 in JSON is ~1.3 MB.
MAX_SERVER_FRAME_BYTES: Final = 2 * 1024 * 1024


class OutboundMedia(msgspec.Struct, frozen=True, gc=False):
    """Audio the server wants played, as sent (RTP payload of the bidirectional codec)."""

    payload: bytes


class OutboundMark(msgspec.Struct, frozen=True):
    """A mark the server placed after its audio."""

    name: str


class Clear(msgspec.Struct, frozen=True):
    """The server asks to drop queued audio (barge-in); queued marks echo at once."""


ServerEvent: TypeAlias = OutboundMedia | OutboundMark | Clear


class _MediaMsg(msgspec.Struct, tag_field="event", tag="media", frozen=True):
    media: OutboundMedia


class _MarkMsg(msgspec.Struct, tag_field="event", tag="mark", frozen=True):
    mark: OutboundMark


class _ClearMsg(msgspec.Struct, tag_field="event", tag="clear", frozen=True):
    pass


_ServerMsg: TypeAlias = _MediaMsg | _MarkMsg | _ClearMsg
_DECODER: Final[msgspec.json.Decoder[_ServerMsg]] = msgspec.json.Decoder(_ServerMsg)
_ENCODER: Final = msgspec.json.Encoder()
_CLEAR: Final = Clear()


class TelnyxCaller:
    """One media-streaming connection as Telnyx drives it.

    ``connected()`` then ``start()`` once, ``media()`` per 20 ms chunk, ``dtmf()`` /
    ``mark()`` / ``error()`` as they happen, ``stop()`` last; send each as a text
    frame. ``receive()`` parses one server frame. Out-of-order use raises
    ``LocalProtocolError``.

    ``encoding``/``sample_rate`` are the inbound ``media_format``;
    ``bidirectional_codec`` is what the server must send back (PCMU unless the
    stream was set up otherwise).
    """

    __slots__ = (
        "_chunk",
        "_max_frame",
        "_seq",
        "_state",
        "_timestamp",
        "call_control_id",
        "custom_parameters",
        "input_format",
        "media_format",
        "output_format",
        "stream_id",
    )

    def __init__(
        self,
        *,
        encoding: Codec = "PCMU",
        sample_rate: int = 8000,
        bidirectional_codec: Codec = "PCMU",
        bidirectional_rate: int | None = None,
        custom_parameters: dict[str, str] | None = None,
        stream_id: str | None = None,
        call_control_id: str | None = None,
        max_frame_bytes: int = MAX_SERVER_FRAME_BYTES,
    ) -> None:
        try:
            #: What this phone sends (``media_format``) and what it accepts back.
            self.input_format: AudioFormat = line_format(encoding, sample_rate)
            rate = bidirectional_rate or (8000 if bidirectional_codec != "L16" else sample_rate)
            self.output_format: AudioFormat = line_format(bidirectional_codec, rate)
        except RemoteProtocolError as exc:
            raise ValueError(exc.message) from None
        self.media_format = {"encoding": encoding, "sample_rate": sample_rate, "channels": 1}
        self.stream_id = stream_id or str(uuid.uuid4()).upper()
        self.call_control_id = call_control_id or "v3:" + uuid.uuid4().hex
        self.custom_parameters = dict(custom_parameters or {})
        self._max_frame = max_frame_bytes
        self._state = "new"  # new → connected → started → stopped
        self._seq = 0
        self._chunk = 0
        self._timestamp = 0

    @property
    def sequence_number(self) -> int:
        return self._seq

    # -- Telnyx → server ------------------------------------------------------------

    def connected(self, auth_token: str = "") -> bytes:
        self._expect("new", "connected")
        self._state = "connected"
        msg: dict[str, object] = {"event": "connected", "version": "1.0.0"}
        if auth_token:
            msg["x-telnyx-streaming-auth-token"] = auth_token
        return _ENCODER.encode(msg)

    def start(self) -> bytes:
        self._expect("connected", "start")
        self._state = "started"
        return _ENCODER.encode(
            {
                "event": "start",
                "sequence_number": self._next_seq(),
                "stream_id": self.stream_id,
                "start": {
                    "user_id": str(uuid.uuid4()),
                    "call_control_id": self.call_control_id,
                    "call_session_id": str(uuid.uuid4()),
                    "from": "+13122010094",
                    "to": "+13122123456",
                    "tags": [],
                    "client_state": "",
                    "custom_parameters": self.custom_parameters,
                    "media_format": self.media_format,
                },
            }
        )

    def media(self, payload: bytes, *, track: str = "inbound", chunk: int | None = None) -> bytes:
        """One ``media`` message (``payload`` is the RTP payload: big-endian for L16).

        ``chunk`` overrides the counter (to replay a frame out of order).
        """
        self._expect("started", "media")
        if chunk is None:
            self._chunk += 1
            chunk = self._chunk
        ts = self._timestamp
        self._timestamp += round(self.input_format.duration_ms(len(payload)))
        return _ENCODER.encode(
            {
                "event": "media",
                "sequence_number": self._next_seq(),
                "media": {
                    "track": track,
                    "chunk": str(chunk),
                    "timestamp": str(ts),
                    "payload": binascii.b2a_base64(payload, newline=False).decode(),
                },
                "stream_id": self.stream_id,
            }
        )

    def dtmf(self, digit: str) -> bytes:
        self._expect("started", "dtmf")
        if len(digit) != 1 or digit not in DTMF_DIGITS:
            raise LocalProtocolError(f"DTMF digit {digit!r} is not one of 0-9 * # A-D")
        return _ENCODER.encode(
            {
                "event": "dtmf",
                "stream_id": self.stream_id,
                "occurred_at": "2024-01-01T00:00:00.000000Z",
                "sequence_number": self._next_seq(),
                "dtmf": {"digit": digit},
            }
        )

    def mark(self, name: str) -> bytes:
        """The echo of a server's mark."""
        self._expect("started", "mark")
        return _ENCODER.encode(
            {
                "event": "mark",
                "sequence_number": self._next_seq(),
                "stream_id": self.stream_id,
                "mark": {"name": name},
            }
        )

    def error(self, code: int, title: str, detail: str = "") -> bytes:
        """An ``error`` frame (Telnyx reporting a problem, e.g. with a server frame)."""
        if self._state not in ("connected", "started"):
            self._expect("started", "error")
        return _ENCODER.encode(
            {
                "event": "error",
                "sequence_number": self._next_seq(),
                "stream_id": self.stream_id,
                "payload": {"code": code, "title": title, "detail": detail},
            }
        )

    def stop(self) -> bytes:
        self._expect("started", "stop")
        self._state = "stopped"
        return _ENCODER.encode(
            {
                "event": "stop",
                "sequence_number": self._next_seq(),
                "stop": {"user_id": "", "call_control_id": self.call_control_id},
                "stream_id": self.stream_id,
            }
        )

    def _next_seq(self) -> str:
        self._seq += 1
        return str(self._seq)

    def _expect(self, state: str, what: str) -> None:
        if self._state != state:
            raise LocalProtocolError(
                f"cannot send '{what}' in state {self._state!r} (needs {state!r})",
                code="out_of_order",
            )

    # -- server → Telnyx ------------------------------------------------------------

    def receive(self, frame: str | bytes) -> ServerEvent:
        """Parse one server frame; ``RemoteProtocolError`` if Telnyx would reject it."""
        check_frame_size(frame, self._max_frame, "server frame")
        try:
            msg = _DECODER.decode(frame)
        except msgspec.ValidationError as exc:
            raise RemoteProtocolError(
                f"not a Telnyx command: {exc}", code="invalid_message"
            ) from None
        except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
            raise RemoteProtocolError(f"not valid JSON: {exc}", code="bad_json") from None
        if isinstance(msg, _MediaMsg):
            fmt, n = self.output_format, len(msg.media.payload)
            if not fmt.frame_bytes(MIN_MEDIA_MS) <= n <= fmt.frame_bytes(MAX_MEDIA_MS):
                raise RemoteProtocolError(
                    f"media of {fmt.duration_ms(n):.1f} ms is outside 20 ms to 30 s",
                    code="bad_audio_length",
                )
            return msg.media
        if isinstance(msg, _MarkMsg):
            if not msg.mark.name:
                raise RemoteProtocolError("a mark needs a non-empty name", code="invalid_message")
            return msg.mark
        return _CLEAR

    def audio(self, media: OutboundMedia) -> bytes:
        """A server media payload in ``output_format`` (L16 swapped to little-endian)."""
        if self.output_format.encoding == "pcm16":
            return pcm16_from_l16_be(media.payload)
        return media.payload

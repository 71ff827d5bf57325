"""The *Twilio* side of a Media Streams WebSocket, sans-I/O.

:mod:`parley.protocols.twilio` is the server's half (it parses what Twilio sends
and builds what a server sends back). This module is the mirror image, for
anything that has to stand in for Twilio — ``parley call``, the load bench, the
tests: :class:`TwilioCaller` builds the frames Twilio sends (``connected``,
``start``, ``media``, ``dtmf``, ``mark`` echoes, ``stop``) exactly as
reference/protocols.md §2.2 shows them — numbers as JSON strings, one
``sequenceNumber`` per message from ``"1"`` (the ``start``), a per-track
``chunk`` counter from ``"1"``, ``timestamp`` in ms since the stream started —
and parses what a server sends (``media``, ``mark``, ``clear``; §2.3) into typed
events, rejecting anything else with :class:`~parley.errors.RemoteProtocolError`.

:class:`Playout` models Twilio's playback buffer so a simulated caller can echo
marks when the audio before them has *played* (not when it arrived), and echo
every pending mark at once on ``clear``. Time is passed in (seconds on any
monotonic clock); nothing here reads a clock or touches a socket.
"""

from __future__ import annotations

import binascii
import secrets
from collections import deque
from typing import Final, TypeAlias

import msgspec

from parley.errors import LocalProtocolError, RemoteProtocolError
from parley.protocols.limits import check_frame_size

__all__ = [
    "MAX_SERVER_FRAME_BYTES",
    "Clear",
    "OutboundMark",
    "OutboundMedia",
    "Playout",
    "ServerEvent",
    "TwilioCaller",
    "new_sid",
]

_ULAW_BYTES_PER_MS: Final = 8
#: Largest server frame accepted. Servers may send audio of any length in one
#: ``media`` message (protocols.md §2.3), so this is well above the 64 KiB that
#: :mod:`parley.protocols.twilio` allows for Twilio's own 20 ms frames.
MAX_SERVER_FRAME_BYTES: Final = 4 * 1024 * 1024
_DTMF_DIGITS: Final = frozenset("0123456789*#ABCD")


def new_sid(prefix: str) -> str:
    """A Twilio-style sid: two-letter ``prefix`` + 32 hex digits (``MZ…``, ``CA…``, ``AC…``)."""
    return prefix + secrets.token_hex(16)


# ------------------------------------------------------------- server → Twilio events


class OutboundMedia(msgspec.Struct, frozen=True, gc=False):
    """Audio the server wants played: decoded µ-law 8 kHz mono (any length)."""

    payload: bytes


class OutboundMark(msgspec.Struct, frozen=True):
    """A mark the server placed after its audio; echo ``name`` once that audio played."""

    name: str


class Clear(msgspec.Struct, frozen=True):
    """The server asks to drop buffered audio (barge-in); pending marks echo at once."""


ServerEvent: TypeAlias = OutboundMedia | OutboundMark | Clear


class _MediaMsg(msgspec.Struct, tag_field="event", tag="media", rename="camel", frozen=True):
    stream_sid: str
    media: OutboundMedia


class _MarkMsg(msgspec.Struct, tag_field="event", tag="mark", rename="camel", frozen=True):
    stream_sid: str
    mark: OutboundMark


class _ClearMsg(msgspec.Struct, tag_field="event", tag="clear", rename="camel", frozen=True):
    stream_sid: str


_ServerMsg: TypeAlias = _MediaMsg | _MarkMsg | _ClearMsg
_DECODER: Final[msgspec.json.Decoder[_ServerMsg]] = msgspec.json.Decoder(_ServerMsg)
_ENCODER: Final = msgspec.json.Encoder()
_CLEAR: Final = Clear()


class TwilioCaller:
    """One Media Streams connection as Twilio drives it.

    Call ``connected()`` then ``start()`` once, ``media()`` per audio chunk (20 ms =
    160 bytes on a real call), ``dtmf()`` / ``mark()`` as they happen and ``stop()``
    last; send each returned frame as a WebSocket *text* frame. ``receive()`` parses
    one frame from the server. Out-of-order use raises ``LocalProtocolError``.

    ``first_timestamp`` is the ``media.timestamp`` of the first chunk (a real call
    starts at about 52 ms, not 0); later chunks advance by their own duration unless
    ``media(..., timestamp=)`` gives the time explicitly.
    """

    __slots__ = (
        "_chunk",
        "_max_frame",
        "_media_head",
        "_seq",
        "_state",
        "_timestamp",
        "account_sid",
        "call_sid",
        "custom_parameters",
        "stream_sid",
    )

    def __init__(
        self,
        *,
        custom_parameters: dict[str, str] | None = None,
        stream_sid: str | None = None,
        call_sid: str | None = None,
        account_sid: str | None = None,
        first_timestamp: int = 0,
        max_frame_bytes: int = MAX_SERVER_FRAME_BYTES,
    ) -> None:
        if first_timestamp < 0:
            raise ValueError("first_timestamp must be >= 0")
        self.stream_sid = stream_sid or new_sid("MZ")
        self.call_sid = call_sid or new_sid("CA")
        self.account_sid = account_sid or new_sid("AC")
        self.custom_parameters = dict(custom_parameters or {})
        self._max_frame = max_frame_bytes
        self._state = "new"  # new → connected → started → stopped
        self._seq = 0
        self._chunk = 0
        self._timestamp = first_timestamp
        # Everything before the sequence number never changes: built once (the bench
        # sends 50 of these a second per call).
        self._media_head = b'{"event":"media","streamSid":' + _ENCODER.encode(self.stream_sid)

    @property
    def sequence_number(self) -> int:
        """The ``sequenceNumber`` of the last message built (0 before ``start``)."""
        return self._seq

    @property
    def chunk(self) -> int:
        """The ``media.chunk`` of the last media message (0 before any)."""
        return self._chunk

    @property
    def timestamp_ms(self) -> int:
        """The ``media.timestamp`` the next media message will carry (if not given)."""
        return self._timestamp

    # -- Twilio → server ------------------------------------------------------------

    def connected(self) -> bytes:
        """``{"event":"connected","protocol":"Call","version":"1.0.0"}``: the first frame."""
        self._expect("new", "connected")
        self._state = "connected"
        return b'{"event":"connected","protocol":"Call","version":"1.0.0"}'

    def start(self) -> bytes:
        """The ``start`` message (sequence number 1) with sids and custom parameters."""
        self._expect("connected", "start")
        self._state = "started"
        msg = {
            "event": "start",
            "sequenceNumber": self._next_seq(),
            "start": {
                "accountSid": self.account_sid,
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "customParameters": self.custom_parameters,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
            "streamSid": self.stream_sid,
        }
        return _ENCODER.encode(msg)

    def media(self, ulaw: bytes, *, timestamp: int | None = None) -> bytes:
        """One ``media`` message carrying ``ulaw`` (µ-law 8 kHz mono, no header)."""
        if self._state != "started":
            self._expect("started", "media")
        seq = self._next_seq()
        self._chunk += 1
        if timestamp is not None:
            self._timestamp = timestamp
        ts = self._timestamp
        self._timestamp = ts + len(ulaw) // _ULAW_BYTES_PER_MS
        return b"".join(
            (
                self._media_head,
                b',"sequenceNumber":"',
                seq.encode(),
                b'","media":{"track":"inbound","chunk":"',
                str(self._chunk).encode(),
                b'","timestamp":"',
                str(ts).encode(),
                b'","payload":"',
                binascii.b2a_base64(ulaw, newline=False),
                b'"}}',
            )
        )

    def dtmf(self, digit: str) -> bytes:
        """A key press (``0-9 * # A-D``)."""
        self._expect("started", "dtmf")
        if digit not in _DTMF_DIGITS or len(digit) != 1:
            raise LocalProtocolError(f"DTMF digit {digit!r} is not one of 0-9 * # A-D")
        return _ENCODER.encode(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "sequenceNumber": self._next_seq(),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    def mark(self, name: str) -> bytes:
        """The echo of a server's mark: its audio has played (or was cleared)."""
        self._expect("started", "mark")
        return _ENCODER.encode(
            {
                "event": "mark",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
        )

    def stop(self) -> bytes:
        """The ``stop`` message: the caller hung up. Nothing may follow it."""
        self._expect("started", "stop")
        self._state = "stopped"
        return _ENCODER.encode(
            {
                "event": "stop",
                "sequenceNumber": self._next_seq(),
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
                "streamSid": self.stream_sid,
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

    # -- server → Twilio ------------------------------------------------------------

    def receive(self, frame: str | bytes) -> ServerEvent:
        """Parse one frame from the server; ``RemoteProtocolError`` if Twilio would reject it."""
        check_frame_size(frame, self._max_frame, "server frame")
        try:
            msg = _DECODER.decode(frame)
        except msgspec.ValidationError as exc:
            raise RemoteProtocolError(
                f"not a Twilio command: {exc}", code="invalid_message"
            ) from None
        except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
            raise RemoteProtocolError(f"not valid JSON: {exc}", code="bad_json") from None
        if msg.stream_sid != self.stream_sid:
            raise RemoteProtocolError(
                f"streamSid {msg.stream_sid!r} is not this stream's {self.stream_sid!r}",
                code="stream_sid_mismatch",
            )
        if isinstance(msg, _MediaMsg):
            return msg.media
        if isinstance(msg, _MarkMsg):
            if not msg.mark.name:
                raise RemoteProtocolError("a mark needs a non-empty name", code="invalid_message")
            return msg.mark
        return _CLEAR


class Playout:
    """Twilio's playback buffer: when has the audio before each mark finished playing?

    Audio plays at 8 bytes/ms from the moment it arrives, back to back; when the
    buffer runs dry playback waits for more. ``push_mark`` schedules a mark for the
    end of the audio queued before it; ``due(now)`` returns the marks whose audio
    finished by ``now`` (oldest first) and ``clear(now)`` drops the rest of the
    audio and returns every pending mark (Twilio echoes them at once).
    """

    __slots__ = ("_end", "_marks", "dropped_bytes", "received_bytes")

    def __init__(self) -> None:
        self._end = 0.0  # when the audio queued so far will have finished playing
        self._marks: deque[tuple[float, str]] = deque()
        self.received_bytes = 0
        #: Audio received but never played because a ``clear`` dropped it.
        self.dropped_bytes = 0

    def push_audio(self, n_bytes: int, now: float) -> None:
        self.received_bytes += n_bytes
        self._end = max(self._end, now) + n_bytes / (_ULAW_BYTES_PER_MS * 1000)

    def push_mark(self, name: str, now: float) -> None:
        self._marks.append((max(self._end, now), name))

    def due(self, now: float) -> list[str]:
        """Marks whose audio has finished playing by ``now``, oldest first."""
        out: list[str] = []
        while self._marks and self._marks[0][0] <= now:
            out.append(self._marks.popleft()[1])
        return out

    def clear(self, now: float) -> list[str]:
        """Drop unplayed audio; return every pending mark (to echo at once)."""
        if self._end > now:
            self.dropped_bytes += round((self._end - now) * _ULAW_BYTES_PER_MS * 1000)
            self._end = now
        out = [name for _, name in self._marks]
        self._marks.clear()
        return out

    def busy_until(self) -> float:
        """When the audio queued so far finishes playing."""
        return self._end

    def idle(self, now: float) -> bool:
        """Nothing left to play and no mark pending."""
        return now >= self._end and not self._marks

"""Vonage Voice API WebSocket (NCCO ``connect`` → ``websocket`` endpoint), sans-I/O.

Unlike Twilio, Telnyx and Plivo, Vonage sends audio as *binary* frames of raw PCM
and keeps JSON for control, so a frame's type decides its meaning: ``receive()``
takes ``bytes`` for a binary frame and ``str`` for a text frame (what
:class:`~parley.transports.socket.WireSocket` hands out).

Wire facts (reference/protocols.md §3.2;
developer.vonage.com/en/voice/voice-api/concepts/websockets; the AsyncAPI at
asyncapi.apis.io/asyncapis/vonage/vonage-asyncapi derived from it; the "play audio
into a WebSocket" tutorial, which sends 320-sample frames):

* The first frame is text: ``{"event":"websocket:connected","content-type":
  "audio/l16;rate=16000", …}`` with the NCCO endpoint's ``headers`` flattened into
  it (:attr:`Connected.headers`). Rates 8000 and 16000 are documented; 24000 is
  accepted too (Pipecat and Azure's Vonage sample use it).
* Then binary frames both ways: 16-bit signed little-endian mono PCM, 20 ms each
  (640 bytes at 16 kHz). Inbound sizes are not relied on (any even length up to
  :data:`~parley.protocols.limits.MAX_AUDIO_FRAME_BYTES`); outbound audio is cut
  into exact 20 ms frames, the remainder held until more audio or ``flush_audio()``.
* Control we send: ``{"action":"clear"}`` (Vonage drops its playback buffer and
  answers ``{"event":"websocket:cleared"}``) and ``{"action":"notify","payload":{…}}``
  (answered by ``{"event":"websocket:notify","payload":{…}}`` once the audio queued
  before it has played) — our playback checkpoint, ``payload = {"name": …}``.
* DTMF: ``{"event":"websocket:dtmf","digit":"5","duration":260}`` (digit at the top
  level, secondary sources); ``"dtmf":{"digit":…}`` is accepted as well (Pipecat).
* Vonage buffers at most 3,072 outbound messages (~61 s): a shell must not run
  further ahead of playback than :data:`MAX_QUEUED_FRAMES`.

Not documented, so decided here: whether a clear makes pending notifies echo. The
tracker for Vonage should count such echoes as flushed (``flushed_marks_echo=True``,
under-reporting rather than over-reporting what was heard) and call ``cleared()``
on ``websocket:cleared``.

A shell, per frame: ``Media`` → its ``payload`` (PCM16 at ``sample_rate``);
``Notify`` → ``tracker.echo(event.name)`` with ``PlaybackTracker(bytes_per_ms=
frame_bytes // 20)``; ``Cleared`` → ``tracker.cleared()``; ``DTMF`` → ``as_event()``;
the socket closing is the hang-up. Out: send each of ``media(audio)`` as binary,
then ``mark(tracker.add(n_bytes, response_id))`` as text; when the output pauses,
send ``flush_audio()`` (and its mark). Barge-in: ``tracker.clear()``, send ``clear()``.
"""

from __future__ import annotations

import enum
from typing import Any, Final, NoReturn, TypeAlias

import msgspec

from parley.audio.format import AudioFormat
from parley.audio.framing import FrameChunker
from parley.errors import LocalProtocolError, RemoteProtocolError
from parley.events import DTMFReceived
from parley.protocols._phone_json import check_digit, explain_invalid
from parley.protocols.limits import MAX_AUDIO_FRAME_BYTES, MAX_TEXT_FRAME_BYTES, check_frame_size

__all__ = [
    "DTMF",
    "FRAME_MS",
    "MAX_QUEUED_FRAMES",
    "RATES",
    "Cleared",
    "Connected",
    "Media",
    "Notify",
    "StreamState",
    "Unknown",
    "VonageEvent",
    "VonageStream",
    "parse_content_type",
]

FRAME_MS: Final = 20
#: Vonage queues at most this many outbound messages (about 61 s of 20 ms frames).
MAX_QUEUED_FRAMES: Final = 3072
RATES: Final = frozenset({8000, 16000, 24000})


def parse_content_type(value: str) -> int:
    """The sample rate of ``audio/l16;rate=N``; ``RemoteProtocolError`` for anything else."""
    mime, _, params = value.replace(" ", "").lower().partition(";")
    rate = 0
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key == "rate" and val.isdigit():
            rate = int(val)
    if mime != "audio/l16" or rate not in RATES:
        raise RemoteProtocolError(
            f"content-type {value!r} is not audio/l16 at {sorted(RATES)} Hz",
            code="unsupported_media_format",
        )
    return rate


# --------------------------------------------------------------------------- events


class Connected(msgspec.Struct, frozen=True):
    """``websocket:connected``: the audio format and the NCCO endpoint's headers."""

    content_type: str
    sample_rate: int
    headers: dict[str, Any]


class Media(msgspec.Struct, frozen=True, gc=False):
    """One binary frame of caller audio: PCM16 little-endian at the stream's rate."""

    payload: bytes


class DTMF(msgspec.Struct, frozen=True):
    """A key press; ``digit`` is one of ``0-9 * # A-D``, ``duration_ms`` when given."""

    digit: str
    duration_ms: float | None = None

    def as_event(self) -> DTMFReceived:
        return DTMFReceived(self.digit)


class Notify(msgspec.Struct, frozen=True):
    """``websocket:notify``: the audio queued before our ``notify`` has played."""

    payload: dict[str, Any]

    @property
    def name(self) -> str:
        """``payload["name"]``: the checkpoint name Parley put there ("" if absent)."""
        name = self.payload.get("name")
        return name if isinstance(name, str) else ""


class Cleared(msgspec.Struct, frozen=True):
    """``websocket:cleared``: Vonage emptied its playback buffer after our ``clear``."""


class Unknown(msgspec.Struct, frozen=True):
    """An event name this module does not know; ``data`` is the frame."""

    event: str
    data: dict[str, Any]


VonageEvent: TypeAlias = Connected | Media | DTMF | Notify | Cleared | Unknown

# ----------------------------------------------------------------- wire envelopes


class _ConnectedMsg(msgspec.Struct, tag_field="event", tag="websocket:connected", frozen=True):
    content_type: str = msgspec.field(name="content-type")


class _DTMFInner(msgspec.Struct, frozen=True):
    digit: str
    duration: float | None = None
    duration_ms: float | None = None


class _DTMFMsg(msgspec.Struct, tag_field="event", tag="websocket:dtmf", frozen=True):
    digit: str | None = None
    duration: float | None = None
    dtmf: _DTMFInner | str | None = None


class _NotifyMsg(msgspec.Struct, tag_field="event", tag="websocket:notify", frozen=True):
    payload: dict[str, Any] = {}


class _ClearedMsg(msgspec.Struct, tag_field="event", tag="websocket:cleared", frozen=True):
    pass


_Inbound: TypeAlias = _DTMFMsg | _NotifyMsg | _ClearedMsg | _ConnectedMsg
_KNOWN_EVENTS: Final = frozenset(
    {"websocket:connected", "websocket:dtmf", "websocket:notify", "websocket:cleared"}
)
_DECODER: Final[msgspec.json.Decoder[_Inbound]] = msgspec.json.Decoder(_Inbound, strict=False)
_ENCODER: Final = msgspec.json.Encoder()
_CLEAR_FRAME: Final = '{"action":"clear"}'
_CLEARED: Final = Cleared()


class _OutNotify(msgspec.Struct, tag_field="action", tag="notify", frozen=True):
    payload: dict[str, Any]


class StreamState(enum.Enum):
    AWAITING_START = "awaiting_start"  # before websocket:connected
    STARTED = "started"


class VonageStream:
    """One Vonage WebSocket: ``AWAITING_START → STARTED`` (it ends when the socket closes).

    ``receive(str)`` parses a control frame, ``receive(bytes)`` an audio frame (audio
    before ``websocket:connected`` is ``media_before_start``). ``media()`` frames
    outbound PCM into exact 20 ms binary frames (``bytes``); ``mark()``/``clear()``
    build the text commands (``str``: this protocol mixes both frame types, so the
    Python type says which to send). Builders raise ``LocalProtocolError`` before
    ``websocket:connected``.
    """

    __slots__ = (
        "_chunker",
        "_max_audio",
        "_max_text",
        "_silence_frame",
        "connected",
        "frame_bytes",
        "sample_rate",
        "state",
    )

    def __init__(
        self,
        *,
        max_text_bytes: int = MAX_TEXT_FRAME_BYTES,
        max_audio_bytes: int = MAX_AUDIO_FRAME_BYTES,
    ) -> None:
        self._max_text = max_text_bytes
        self._max_audio = max_audio_bytes
        self.state = StreamState.AWAITING_START
        #: The ``websocket:connected`` event once received (format, headers).
        self.connected: Connected | None = None
        self.sample_rate = 0
        #: Bytes in one 20 ms frame (640 at 16 kHz); 0 before ``websocket:connected``.
        self.frame_bytes = 0
        self._chunker: FrameChunker | None = None
        self._silence_frame = b""

    @property
    def line_format(self) -> AudioFormat:
        """PCM16 at the stream's rate, both ways (``LocalProtocolError`` before connected)."""
        self._need_started("audio")
        return AudioFormat("pcm16", self.sample_rate)

    # -- inbound -----------------------------------------------------------------

    def receive(self, frame: str | bytes) -> VonageEvent:
        """Parse one frame (``bytes`` = binary audio, ``str`` = JSON control)."""
        if isinstance(frame, bytes | bytearray | memoryview):  # the hot path: 50 a second
            check_frame_size(frame, self._max_audio, "Vonage audio frame")
            if self.state is not StreamState.STARTED:
                raise RemoteProtocolError(
                    "audio before 'websocket:connected'", code="media_before_start"
                )
            if len(frame) % 2:
                raise RemoteProtocolError(
                    f"audio frame of {len(frame)} bytes is not whole 16-bit samples",
                    code="odd_audio_length",
                )
            return Media(bytes(frame))
        check_frame_size(frame, self._max_text, "Vonage text frame")
        try:
            msg = _DECODER.decode(frame)
        except msgspec.ValidationError as exc:
            name, raw = explain_invalid(frame, exc, _KNOWN_EVENTS)
            return Unknown(event=name, data=raw)
        except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
            raise RemoteProtocolError(f"not valid JSON: {exc}", code="bad_json") from None
        if isinstance(msg, _ConnectedMsg):
            return self._on_connected(frame, msg)
        if self.state is not StreamState.STARTED:
            raise RemoteProtocolError(
                "event before 'websocket:connected'", code="event_before_start"
            )
        if isinstance(msg, _NotifyMsg):
            return Notify(msg.payload)
        if isinstance(msg, _ClearedMsg):
            return _CLEARED
        return _dtmf(msg)

    def _on_connected(self, frame: str, msg: _ConnectedMsg) -> Connected:
        if self.state is StreamState.STARTED:
            raise RemoteProtocolError(
                "a second 'websocket:connected' on one stream", code="duplicate_start"
            )
        rate = parse_content_type(msg.content_type)
        raw = msgspec.json.decode(frame)  # once per call: keep the NCCO headers
        headers = {k: v for k, v in raw.items() if k not in ("event", "content-type")}
        self.connected = Connected(msg.content_type, rate, headers)
        self.sample_rate = rate
        self.frame_bytes = rate * 2 * FRAME_MS // 1000
        self._chunker = FrameChunker(self.frame_bytes)
        self._silence_frame = bytes(self.frame_bytes)
        self.state = StreamState.STARTED
        return self.connected

    # -- outbound ----------------------------------------------------------------

    def media(self, pcm: bytes) -> list[bytes]:
        """Binary frames of exactly 20 ms for ``pcm``; a partial frame waits for more."""
        chunker = self._need_started("media")
        if len(pcm) % 2:
            raise LocalProtocolError(
                f"PCM16 of {len(pcm)} bytes is not whole samples", code="bad_pcm_length"
            )
        return chunker.push(pcm)

    @property
    def pending_audio(self) -> int:
        """Bytes held back because they do not fill a 20 ms frame yet."""
        return len(self._chunker) if self._chunker is not None else 0

    def flush_audio(self) -> bytes:
        """The held-back tail padded with silence to one frame (``b""`` if none)."""
        chunker = self._need_started("media")
        return chunker.flush(pad=b"\x00")

    def silence(self) -> bytes:
        """One 20 ms frame of silence."""
        self._need_started("media")
        return self._silence_frame

    def mark(self, name: str) -> str:
        """A ``notify`` command (text) whose echo says the audio before it has played."""
        self._need_started("notify")
        if not name:
            raise LocalProtocolError("a mark needs a non-empty name", code="invalid_mark")
        return _ENCODER.encode(_OutNotify(payload={"name": name})).decode()

    def clear(self) -> str:
        """A ``clear`` command (text); drops the held-back tail too (it is the cut reply's)."""
        chunker = self._need_started("clear")
        chunker.flush()
        return _CLEAR_FRAME

    def _need_started(self, what: str) -> FrameChunker:
        if self._chunker is None:
            raise LocalProtocolError(
                f"cannot send '{what}' before 'websocket:connected'", code="not_started"
            )
        return self._chunker


def _dtmf(msg: _DTMFMsg) -> DTMF:
    inner = msg.dtmf
    if msg.digit is not None:
        return DTMF(check_digit(msg.digit), msg.duration)
    if isinstance(inner, _DTMFInner):
        duration = inner.duration_ms if inner.duration_ms is not None else inner.duration
        return DTMF(check_digit(inner.digit), duration)
    if isinstance(inner, str):
        return DTMF(check_digit(inner), msg.duration)
    _no_digit()


def _no_digit() -> NoReturn:
    raise RemoteProtocolError("'websocket:dtmf' without a digit", code="invalid_message")

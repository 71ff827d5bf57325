"""Parley's browser protocol, sans-I/O (written down in docs/protocol.md).

Binary WebSocket frames carry raw PCM16 little-endian mono audio both ways, at
the sample rate the page announced in ``start`` (24 kHz by default); JSON text
frames carry control, tagged by ``"type"``. The rule for a transport is: a
``str`` is a text frame and ``bytes`` a binary frame, in both directions.

``BrowserSession`` is the server side: ``receive()`` turns each client frame
into one typed message (``AudioFrame`` for binary) and enforces the order
(``start`` first, nothing after ``stop``); the builders return the frames to
send. Two variants, for the legacy clients of seed 001's minimal page:
``start_optional`` (a first frame other than ``start`` starts the session in the
default format) and ``json_audio`` (audio may also come as the text frame
``{"type": "audio", "data": <base64 PCM16>}``, and ``audio_json()`` builds the same
frame for the client). Bad input raises ``RemoteProtocolError`` with a ``code``. For Python
clients and tests, ``encode_client_message()`` and ``parse_server_frame()`` are
the other side.
"""

from __future__ import annotations

import enum
from typing import Annotated, Final, NoReturn, TypeAlias, TypeVar

import msgspec

from parley.errors import LocalProtocolError, RemoteProtocolError
from parley.protocols.limits import (
    MAX_AUDIO_FRAME_BYTES,
    MAX_TEXT_FRAME_BYTES,
    check_frame_size,
)

__all__ = [
    "DEFAULT_SAMPLE_RATE",
    "PROTOCOL_VERSION",
    "SUPPORTED_SAMPLE_RATES",
    "AudioFrame",
    "AudioMessage",
    "BrowserSession",
    "ClearMessage",
    "ClientEvent",
    "ClientMessage",
    "ErrorMessage",
    "InterruptedMessage",
    "MetricsMessage",
    "PCMFormat",
    "PingMessage",
    "PlaybackMessage",
    "PongMessage",
    "ReadyMessage",
    "ResponseDoneMessage",
    "ResponseStartedMessage",
    "ResponseTextMessage",
    "ServerEvent",
    "ServerMessage",
    "SessionState",
    "StartMessage",
    "StateMessage",
    "StopMessage",
    "TranscriptMessage",
    "UserTextMessage",
    "encode_client_message",
    "parse_server_frame",
]

PROTOCOL_VERSION: Final = 1
DEFAULT_SAMPLE_RATE: Final = 24000
#: Rates a page may announce. 24 kHz is the engines' native rate; the others are
#: what browsers capture natively (Firefox cannot run a 24 kHz AudioContext on a
#: 48 kHz microphone), telephony-grade or Whisper's 16 kHz. The server resamples
#: them with one soxr stream per direction per session.
SUPPORTED_SAMPLE_RATES: Final = (8000, 16000, 24000, 44100, 48000)

_Ms = Annotated[float, msgspec.Meta(ge=0)]
_PingId: TypeAlias = str | int | float | None


class PCMFormat(msgspec.Struct, frozen=True):
    """Audio format of the binary frames, both ways."""

    encoding: str = "pcm16"
    sample_rate: int = DEFAULT_SAMPLE_RATE
    channels: int = 1


# ------------------------------------------------------------- client → server


class StartMessage(msgspec.Struct, tag_field="type", tag="start", frozen=True):
    """First frame of a session; ``session_id`` asks to resume one (the server decides)."""

    session_id: str | None = None
    user_id: str | None = None
    format: PCMFormat = PCMFormat()
    metadata: dict[str, str] = {}
    version: int = PROTOCOL_VERSION


class PlaybackMessage(msgspec.Struct, tag_field="type", tag="playback", frozen=True):
    """How much of a response the page has *actually played* (for barge-in truncation)."""

    response_id: str
    played_ms: _Ms
    done: bool = False  # True once the page played all of the response's audio


class UserTextMessage(msgspec.Struct, tag_field="type", tag="text", frozen=True):
    """A typed user message, handled as if spoken."""

    text: str


class StopMessage(msgspec.Struct, tag_field="type", tag="stop", frozen=True):
    """The page ends the session."""


class PingMessage(msgspec.Struct, tag_field="type", tag="ping", frozen=True):
    id: _PingId = None


class AudioMessage(msgspec.Struct, tag_field="type", tag="audio", frozen=True):
    """Audio as a JSON text frame (the ``json_audio`` variant, both ways): ``data`` is
    base64 of PCM16 LE mono at the session's sample rate."""

    data: bytes


class AudioFrame(msgspec.Struct, frozen=True, gc=False):
    """One binary frame: PCM16 LE mono at the session's sample rate (never JSON)."""

    pcm: bytes


ClientMessage: TypeAlias = (
    StartMessage | PlaybackMessage | UserTextMessage | StopMessage | PingMessage
)
ClientEvent: TypeAlias = ClientMessage | AudioFrame

# ------------------------------------------------------------- server → client


class ReadyMessage(msgspec.Struct, tag_field="type", tag="ready", frozen=True):
    """Answer to ``start``: the session id to keep and the audio format both ways."""

    session_id: str
    format: PCMFormat
    version: int = PROTOCOL_VERSION


class TranscriptMessage(msgspec.Struct, tag_field="type", tag="transcript", frozen=True):
    """What was said, by ``user`` or ``assistant``; ``final=False`` is a partial."""

    role: str
    text: str
    final: bool
    item_id: str = ""


class ResponseStartedMessage(msgspec.Struct, tag_field="type", tag="response_started", frozen=True):
    """A reply begins; binary frames from now on belong to ``response_id``."""

    response_id: str


class ResponseTextMessage(msgspec.Struct, tag_field="type", tag="response_text", frozen=True):
    """A piece of the reply's text as it is generated."""

    response_id: str
    delta: str


class ResponseDoneMessage(msgspec.Struct, tag_field="type", tag="response_done", frozen=True):
    """The reply is complete (all its audio has been sent); ``text`` is the whole text."""

    response_id: str
    status: str = "completed"
    text: str = ""


class InterruptedMessage(msgspec.Struct, tag_field="type", tag="interrupted", frozen=True):
    """Barge-in: stop playback *now* and drop queued audio; only ``played_text`` counts."""

    response_id: str
    played_text: str
    played_ms: float


class ClearMessage(msgspec.Struct, tag_field="type", tag="clear", frozen=True):
    """Drop queued playback audio (without a barge-in)."""


class MetricsMessage(msgspec.Struct, tag_field="type", tag="metrics", frozen=True):
    """Latency split of one turn in ms (``null`` where not measured); as ``TurnMetrics``."""

    turn_index: int
    voice_to_voice_ms: float | None = None
    end_of_turn_ms: float | None = None
    stt_ms: float | None = None
    llm_first_token_ms: float | None = None
    tts_first_byte_ms: float | None = None
    extra: dict[str, float] = {}


class StateMessage(msgspec.Struct, tag_field="type", tag="state", frozen=True):
    """Conversation phase: listening, user_speaking, thinking, speaking, interrupted."""

    state: str
    previous: str | None = None


class ErrorMessage(msgspec.Struct, tag_field="type", tag="error", frozen=True):
    """Something went wrong; ``fatal`` means the server closes the socket next."""

    code: str
    message: str
    fatal: bool = False


class PongMessage(msgspec.Struct, tag_field="type", tag="pong", frozen=True):
    id: _PingId = None


ServerMessage: TypeAlias = (
    ReadyMessage
    | TranscriptMessage
    | ResponseStartedMessage
    | ResponseTextMessage
    | ResponseDoneMessage
    | InterruptedMessage
    | ClearMessage
    | MetricsMessage
    | StateMessage
    | ErrorMessage
    | PongMessage
)
ServerEvent: TypeAlias = ServerMessage | AudioFrame

_CLIENT_TYPES: Final = frozenset({"start", "playback", "text", "stop", "ping"})
_SERVER_TYPES: Final = frozenset(
    {
        "ready",
        "transcript",
        "response_started",
        "response_text",
        "response_done",
        "interrupted",
        "clear",
        "metrics",
        "state",
        "error",
        "pong",
    }
)
_CLIENT_DECODER: Final[msgspec.json.Decoder[ClientMessage]] = msgspec.json.Decoder(ClientMessage)
_JSON_AUDIO_TYPES: Final = _CLIENT_TYPES | {"audio"}
_JSON_AUDIO_DECODER: Final[msgspec.json.Decoder[ClientMessage | AudioMessage]] = (
    msgspec.json.Decoder(ClientMessage | AudioMessage)
)
#: A JSON audio frame carries base64 (4/3 of the PCM) plus a few bytes of JSON.
_MAX_JSON_AUDIO_CHARS: Final = MAX_AUDIO_FRAME_BYTES * 4 // 3 + 64
_SERVER_DECODER: Final[msgspec.json.Decoder[ServerMessage]] = msgspec.json.Decoder(ServerMessage)
_ENCODER: Final = msgspec.json.Encoder()
_JSON_ERRORS: Final = (msgspec.DecodeError, UnicodeError, RecursionError)


_T = TypeVar("_T")


def _decode_json_frame(frame: str, decoder: msgspec.json.Decoder[_T], known: frozenset[str]) -> _T:
    try:
        return decoder.decode(frame)
    except msgspec.ValidationError as exc:
        _explain(frame, exc, known)
    except _JSON_ERRORS as exc:
        raise RemoteProtocolError(f"not valid JSON: {exc}", code="bad_json") from None


def _explain(frame: str, exc: msgspec.ValidationError, known: frozenset[str]) -> NoReturn:
    # Slow path, only for frames that failed the typed decode: say precisely why.
    try:
        raw = msgspec.json.decode(frame)
    except _JSON_ERRORS as exc2:
        raise RemoteProtocolError(f"not valid JSON: {exc2}", code="bad_json") from None
    if not isinstance(raw, dict):
        raise RemoteProtocolError(
            f"expected a JSON object, got {type(raw).__name__}", code="not_an_object"
        )
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise RemoteProtocolError("missing or non-string 'type' field", code="missing_type")
    if kind not in known:
        raise RemoteProtocolError(f"unknown message type {kind!r}", code="unknown_type")
    raise RemoteProtocolError(f"invalid '{kind}' message: {exc}", code="invalid_message")


def _check_pcm16(pcm: bytes, error: type[LocalProtocolError | RemoteProtocolError]) -> None:
    if len(pcm) % 2:
        raise error(
            f"PCM16 audio must have an even number of bytes, got {len(pcm)}",
            code="odd_audio_length",
        )


class SessionState(enum.Enum):
    AWAITING_START = "awaiting_start"
    STARTED = "started"
    STOPPED = "stopped"


class BrowserSession:
    """Server side of one browser WebSocket: ``AWAITING_START → STARTED → STOPPED``.

    ``receive(str)`` parses a control message, ``receive(bytes)`` an audio frame.
    Audio, ``text`` and ``playback`` need a prior ``start``; nothing is accepted
    after ``stop``; ``ping`` is accepted even before ``start``. Server frames other than
    ``error`` and ``pong`` need ``ready()`` first (``LocalProtocolError``).
    """

    __slots__ = (
        "_implied",
        "_json_audio",
        "_max_audio",
        "_max_text",
        "_sample_rates",
        "_start_optional",
        "format",
        "ready_sent",
        "session_id",
        "start",
        "state",
    )

    def __init__(
        self,
        *,
        sample_rates: tuple[int, ...] = SUPPORTED_SAMPLE_RATES,
        max_text_frame_bytes: int = MAX_TEXT_FRAME_BYTES,
        max_audio_frame_bytes: int = MAX_AUDIO_FRAME_BYTES,
        start_optional: bool = False,
        json_audio: bool = False,
        implied_rate: int = DEFAULT_SAMPLE_RATE,
    ) -> None:
        """``start_optional``/``json_audio``: the legacy variants (module docstring);
        ``implied_rate``: the sample rate of a session started without ``start``."""
        self._sample_rates = sample_rates
        self._max_text = (
            max(max_text_frame_bytes, _MAX_JSON_AUDIO_CHARS) if json_audio else max_text_frame_bytes
        )
        self._max_audio = max_audio_frame_bytes
        self._start_optional = start_optional
        self._json_audio = json_audio
        self._implied = StartMessage(format=PCMFormat(sample_rate=implied_rate))
        self.state = SessionState.AWAITING_START
        #: The client's ``start`` once received.
        self.start: StartMessage | None = None
        #: The audio format of binary frames, both ways (set by ``start``).
        self.format = PCMFormat()
        #: The session id sent in ``ready`` ("" before).
        self.session_id = ""
        self.ready_sent = False

    # -- client → server -----------------------------------------------------------

    def receive(self, frame: str | bytes) -> ClientEvent:
        """Parse one client frame; raise ``RemoteProtocolError`` if it is bad."""
        if isinstance(frame, bytes):
            return self._audio(frame)
        check_frame_size(frame, self._max_text, "text frame")
        msg: ClientMessage | AudioMessage = (
            _decode_json_frame(frame, _JSON_AUDIO_DECODER, _JSON_AUDIO_TYPES)
            if self._json_audio
            else _decode_json_frame(frame, _CLIENT_DECODER, _CLIENT_TYPES)
        )
        if isinstance(msg, AudioMessage):
            return self._audio(msg.data)
        if (
            self._start_optional
            and self.state is SessionState.AWAITING_START
            and isinstance(msg, PlaybackMessage | UserTextMessage)
        ):
            self._on_start(self._implied)
        if isinstance(msg, PingMessage):
            if self.state is SessionState.STOPPED:
                self._reject("ping")
            return msg
        if isinstance(msg, StartMessage):
            return self._on_start(msg)
        if isinstance(msg, StopMessage):
            if self.state is SessionState.STOPPED:
                self._reject("stop")
            self.state = SessionState.STOPPED
            return msg
        if self.state is not SessionState.STARTED:  # playback, text
            self._reject(str(msg.__struct_config__.tag))
        return msg

    def _audio(self, pcm: bytes) -> AudioFrame:
        check_frame_size(pcm, self._max_audio, "audio frame")
        if self._start_optional and self.state is SessionState.AWAITING_START:
            self._on_start(self._implied)
        if self.state is not SessionState.STARTED:
            self._reject("audio")
        _check_pcm16(pcm, RemoteProtocolError)
        return AudioFrame(pcm)

    def _on_start(self, msg: StartMessage) -> StartMessage:
        if self.state is SessionState.STARTED:
            raise RemoteProtocolError("a second 'start' in one session", code="duplicate_start")
        if self.state is SessionState.STOPPED:
            self._reject("start")
        if msg.version != PROTOCOL_VERSION:
            raise RemoteProtocolError(
                f"protocol version {msg.version} is not supported (this server speaks "
                f"{PROTOCOL_VERSION})",
                code="unsupported_version",
            )
        fmt = msg.format
        if (
            fmt.encoding != "pcm16"
            or fmt.channels != 1
            or fmt.sample_rate not in self._sample_rates
        ):
            rates = ", ".join(str(r) for r in self._sample_rates)
            raise RemoteProtocolError(
                f"audio format {fmt.encoding} {fmt.sample_rate} Hz x{fmt.channels} is not "
                f"supported: use pcm16, mono, one of {rates} Hz",
                code="unsupported_format",
            )
        self.start = msg
        self.format = fmt
        self.state = SessionState.STARTED
        return msg

    def _reject(self, what: str) -> NoReturn:
        if self.state is SessionState.STOPPED:
            raise RemoteProtocolError(f"'{what}' after 'stop'", code="after_stop")
        code = "audio_before_start" if what == "audio" else "before_start"
        raise RemoteProtocolError(f"'{what}' before 'start'", code=code)

    # -- server → client -----------------------------------------------------------

    def ready(self, session_id: str) -> str:
        """The answer to ``start``; ``session_id`` is the one the page should keep."""
        if self.state is SessionState.AWAITING_START:
            raise LocalProtocolError("'ready' before the client's 'start'", code="not_started")
        if self.ready_sent:
            raise LocalProtocolError("'ready' was already sent", code="duplicate_ready")
        if not session_id:
            raise LocalProtocolError("'ready' needs a session id", code="invalid_message")
        self.ready_sent = True
        self.session_id = session_id
        return self._text(ReadyMessage(session_id=session_id, format=self.format))

    def audio(self, pcm: bytes) -> bytes:
        """A binary frame of reply audio (PCM16 LE mono at ``self.format.sample_rate``).

        Frames over ``MAX_AUDIO_FRAME_BYTES`` are refused (the same limit applies
        both ways); split longer buffers, 20–100 ms per frame is plenty.
        """
        self._check_ready("audio")
        _check_pcm16(pcm, LocalProtocolError)
        if len(pcm) > MAX_AUDIO_FRAME_BYTES:
            raise LocalProtocolError(
                f"audio frame of {len(pcm)} bytes exceeds the limit of {MAX_AUDIO_FRAME_BYTES}",
                code="frame_too_large",
            )
        return pcm

    def audio_json(self, pcm: bytes) -> str:
        """Reply audio as the ``json_audio`` variant's text frame."""
        self.audio(pcm)  # the same checks as a binary frame
        return _ENCODER.encode(AudioMessage(data=pcm)).decode()

    def transcript(self, role: str, text: str, *, final: bool, item_id: str = "") -> str:
        return self._send(TranscriptMessage(role=role, text=text, final=final, item_id=item_id))

    def response_started(self, response_id: str) -> str:
        return self._send(ResponseStartedMessage(response_id=response_id))

    def response_text(self, response_id: str, delta: str) -> str:
        return self._send(ResponseTextMessage(response_id=response_id, delta=delta))

    def response_done(self, response_id: str, *, status: str = "completed", text: str = "") -> str:
        return self._send(ResponseDoneMessage(response_id=response_id, status=status, text=text))

    def interrupted(self, response_id: str, *, played_text: str, played_ms: float) -> str:
        return self._send(
            InterruptedMessage(
                response_id=response_id, played_text=played_text, played_ms=played_ms
            )
        )

    def clear(self) -> str:
        return self._send(ClearMessage())

    def metrics(
        self,
        turn_index: int,
        *,
        voice_to_voice_ms: float | None = None,
        end_of_turn_ms: float | None = None,
        stt_ms: float | None = None,
        llm_first_token_ms: float | None = None,
        tts_first_byte_ms: float | None = None,
        extra: dict[str, float] | None = None,
    ) -> str:
        """Per-turn latencies; same fields as ``parley.events.TurnMetrics``."""
        return self._send(
            MetricsMessage(
                turn_index=turn_index,
                voice_to_voice_ms=voice_to_voice_ms,
                end_of_turn_ms=end_of_turn_ms,
                stt_ms=stt_ms,
                llm_first_token_ms=llm_first_token_ms,
                tts_first_byte_ms=tts_first_byte_ms,
                extra=extra or {},
            )
        )

    def conversation_state(self, state: str, previous: str | None = None) -> str:
        return self._send(StateMessage(state=state, previous=previous))

    def error(self, code: str, message: str, *, fatal: bool = False) -> str:
        """An error frame; allowed in any state (e.g. to explain a rejected frame)."""
        return self._text(ErrorMessage(code=code, message=message, fatal=fatal))

    def pong(self, ping_id: _PingId = None) -> str:
        return self._text(PongMessage(id=ping_id))

    def _send(self, msg: ServerMessage) -> str:
        self._check_ready(str(msg.__struct_config__.tag))
        return self._text(msg)

    def _check_ready(self, what: str) -> None:
        if not self.ready_sent:
            raise LocalProtocolError(f"cannot send '{what}' before 'ready'", code="not_ready")

    @staticmethod
    def _text(msg: ServerMessage) -> str:
        return _ENCODER.encode(msg).decode()


# ---------------------------------------------------------------- client side


def encode_client_message(msg: ClientMessage) -> str:
    """The text frame for a client message (for Python clients and tests)."""
    return _ENCODER.encode(msg).decode()


def parse_server_frame(frame: str | bytes) -> ServerEvent:
    """Parse one server frame on the client side; ``RemoteProtocolError`` if bad."""
    if isinstance(frame, bytes):
        check_frame_size(frame, MAX_AUDIO_FRAME_BYTES, "audio frame")
        _check_pcm16(frame, RemoteProtocolError)
        return AudioFrame(frame)
    check_frame_size(frame, MAX_TEXT_FRAME_BYTES, "text frame")
    return _decode_json_frame(frame, _SERVER_DECODER, _SERVER_TYPES)

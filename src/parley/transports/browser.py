"""A browser page's WebSocket (docs/protocol.md §1) as a
:class:`~parley.conversation.CallStream`.

:class:`parley.protocols.browser.BrowserSession` does the wire work; this shell moves
frames over a :class:`~parley.transports.socket.WireSocket` and turns the
conversation's events into the page's control messages (``transcript``,
``response_*``, ``interrupted``, ``metrics``, ``state``, ``error``). A bad frame gets
an ``error`` frame with ``fatal: true`` and the socket is closed with 1007/1008/1009
and the error code as reason. With the legacy variants of the session
(``start_optional``, ``json_audio``: seed 001's minimal page) a first frame other
than ``start`` is the start, and reply audio goes out as JSON ``audio`` frames.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from parley.audio.format import AudioFormat
from parley.conversation.state import ConversationState
from parley.conversation.stream import Inbound, PlaybackReport, UserText
from parley.errors import RemoteProtocolError
from parley.events import (
    ErrorEvent,
    Event,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    TextDelta,
    TranscriptDelta,
    TranscriptFinal,
    TurnMetrics,
)
from parley.protocols.browser import (
    DEFAULT_SAMPLE_RATE,
    AudioFrame,
    BrowserSession,
    ClientEvent,
    PingMessage,
    PlaybackMessage,
    StartMessage,
    StopMessage,
    UserTextMessage,
)
from parley.protocols.limits import MAX_AUDIO_FRAME_BYTES
from parley.transports.platform import Accept, Caller, Connection, Refusal
from parley.transports.socket import CLOSE_NORMAL, WireSocket, close_code_for

__all__ = ["BrowserCallStream", "BrowserPlatform"]

# Reply audio is sent in frames of at most this many bytes (whole samples, under the
# protocol's 64 KiB limit); Piper hands over a sentence at a time.
_MAX_OUT = MAX_AUDIO_FRAME_BYTES - MAX_AUDIO_FRAME_BYTES % 2
# As JSON (base64), a frame of this much PCM stays under the text-frame limit.
_MAX_OUT_JSON = 48 * 1024


class BrowserCallStream:
    """One ``/ws/audio/{id}`` WebSocket: ``await handshake()``, ``await ready(id)``, then
    hand it to a :class:`~parley.conversation.Conversation` and feed it the events."""

    def __init__(
        self, socket: WireSocket, session: BrowserSession | None = None, *, json_audio: bool = False
    ) -> None:
        """``session``: a variant of the protocol (default: the standard one);
        ``json_audio``: reply audio as JSON ``audio`` frames instead of binary."""
        self.socket = socket
        self.session = session or BrowserSession()
        self._json_audio = json_audio
        self._first: ClientEvent | None = None  # the frame that implied the start
        self.closed = False
        self.error: RemoteProtocolError | None = None
        self._state = ConversationState.LISTENING.value
        self.frames_in = 0
        #: The page's ``start`` message, once the handshake read it.
        self.start: StartMessage | None = None

    @property
    def input_format(self) -> AudioFormat:
        return AudioFormat("pcm16", self.session.format.sample_rate, 1)

    @property
    def output_format(self) -> AudioFormat:
        return self.input_format  # the page hears at the rate it speaks

    async def handshake(self) -> Caller | None:
        """Read frames up to ``start`` (answering pings); None if the page left first."""
        while True:
            frame = await self.socket.receive()
            if frame is None:
                self.closed = True
                return None
            msg = await self._decode(frame)
            if isinstance(msg, StartMessage):
                self.start = msg
                return Caller(
                    user_id=msg.user_id,
                    metadata=dict(msg.metadata),
                    session_id=msg.session_id or "",
                )
            if isinstance(msg, AudioFrame | PlaybackMessage | UserTextMessage):
                # Only a start_optional session lets these through before start.
                self.start, self._first = self.session.start, msg
                return Caller()
            if isinstance(msg, PingMessage):
                await self.socket.send_text(self.session.pong(msg.id))
            elif isinstance(msg, StopMessage):
                await self._close(CLOSE_NORMAL, "")
                return None

    async def ready(self, session_id: str) -> None:
        await self.socket.send_text(self.session.ready(session_id))

    async def reject(self, code: str, message: str, close_code: int) -> None:
        """Refuse the session: a fatal ``error`` frame, then close with ``close_code``."""
        await self.socket.send_text(self.session.error(code, message, fatal=True))
        await self._close(close_code, f"{code}: {message}")

    async def _decode(self, frame: str | bytes) -> object:
        try:
            return self.session.receive(frame)
        except RemoteProtocolError as exc:
            await self._fail(exc)
            raise

    async def _fail(self, exc: RemoteProtocolError) -> None:
        self.error = exc
        if not self.closed:
            await self.socket.send_text(self.session.error(exc.code, exc.message, fatal=True))
        await self._close(close_code_for(exc), f"{exc.code}: {exc.message}")

    async def inbound(self) -> AsyncIterator[Inbound]:
        receive = self.socket.receive
        session_receive = self.session.receive
        first, self._first = self._first, None
        if isinstance(first, AudioFrame):
            yield first.pcm
        elif isinstance(first, PlaybackMessage):
            yield PlaybackReport(first.response_id, first.played_ms)
        elif isinstance(first, UserTextMessage):
            yield UserText(first.text)
        while True:
            frame = await receive()
            if frame is None:
                self.closed = True
                return
            try:
                msg = session_receive(frame)
            except RemoteProtocolError as exc:
                await self._fail(exc)
                raise
            self.frames_in += 1
            if type(msg) is AudioFrame:  # the hot path
                yield msg.pcm
            elif isinstance(msg, PlaybackMessage):
                yield PlaybackReport(msg.response_id, msg.played_ms)
            elif isinstance(msg, UserTextMessage):
                yield UserText(msg.text)
            elif isinstance(msg, PingMessage):
                await self.socket.send_text(self.session.pong(msg.id))
            elif isinstance(msg, StopMessage):
                return

    async def send_audio(self, audio: bytes, *, response_id: str, text: str = "") -> None:
        if self.closed or not audio:
            return
        if self._json_audio:
            for i in range(0, len(audio), _MAX_OUT_JSON):
                await self.socket.send_text(self.session.audio_json(audio[i : i + _MAX_OUT_JSON]))
            return
        for i in range(0, len(audio), _MAX_OUT):
            await self.socket.send_bytes(self.session.audio(audio[i : i + _MAX_OUT]))

    async def clear(self, response_id: str) -> None:
        # The Interrupted event that caused this follows at once and becomes the
        # page's ``interrupted`` message (which carries the played text); sending a
        # ``clear`` as well would only duplicate it.
        return

    async def show(self, event: Event, state: ConversationState) -> None:
        """Tell the page what happened; ``state`` is the conversation's state after it."""
        if self.closed:
            return
        send, s = self.socket.send_text, self.session
        if state.value != self._state and state is not ConversationState.ENDED:
            await send(s.conversation_state(state.value, self._state))
            self._state = state.value
        if isinstance(event, TranscriptFinal):
            if event.text:
                await send(
                    s.transcript(event.role.value, event.text, final=True, item_id=event.item_id)
                )
        elif isinstance(event, TranscriptDelta):
            await send(
                s.transcript(event.role.value, event.text, final=False, item_id=event.item_id)
            )
        elif isinstance(event, ResponseStarted):
            await send(s.response_started(event.response_id))
        elif isinstance(event, TextDelta):
            await send(s.response_text(event.response_id, event.text))
        elif isinstance(event, ResponseDone):
            await send(s.response_done(event.response_id, status=event.status, text=event.text))
            if event.status == "completed" and event.text:
                await send(
                    s.transcript("assistant", event.text, final=True, item_id=event.response_id)
                )
        elif isinstance(event, Interrupted):
            await send(
                s.interrupted(
                    event.response_id, played_text=event.played_text, played_ms=event.played_ms
                )
            )
        elif isinstance(event, TurnMetrics):
            await send(
                s.metrics(
                    event.turn_index,
                    voice_to_voice_ms=event.voice_to_voice_ms,
                    end_of_turn_ms=event.end_of_turn_ms,
                    stt_ms=event.stt_ms,
                    llm_first_token_ms=event.llm_first_token_ms,
                    tts_first_byte_ms=event.tts_first_byte_ms,
                    extra=dict(event.extra),
                )
            )
        elif isinstance(event, ErrorEvent):
            await send(s.error(event.code, event.message, fatal=event.fatal))

    async def close(self) -> None:
        await self._close(CLOSE_NORMAL, "")

    async def end(self, code: int, reason: str) -> None:
        await self._close(code, reason)

    async def _close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            await self.socket.close(code, reason)


class BrowserPlatform:
    """The talk page's protocol (docs/protocol.md): ``/ws/audio/{conversation_id}``
    claims a conversation created over REST, ``/ws/audio`` creates one.

    The keywords make a variant for a socket mounted elsewhere (seed 001's
    managers): its ``name`` (the call record's kind), ``start`` optional (the session
    then starts at ``implied_rate``) and audio as JSON both ways."""

    def __init__(
        self,
        *,
        name: str = "browser",
        routes: tuple[str, ...] = ("/ws/audio/{conversation_id}", "/ws/audio"),
        start_optional: bool = False,
        json_audio: bool = False,
        implied_rate: int = DEFAULT_SAMPLE_RATE,
    ) -> None:
        self.name = name
        self.routes = routes
        self._variant = (start_optional, json_audio, implied_rate)

    def admit(self, connection: Connection) -> Accept | Refusal:
        return Accept()

    def open(self, socket: WireSocket, connection: Connection) -> BrowserCallStream:
        start_optional, json_audio, rate = self._variant
        if not (start_optional or json_audio):
            return BrowserCallStream(socket)
        session = BrowserSession(
            start_optional=start_optional, json_audio=json_audio, implied_rate=rate
        )
        return BrowserCallStream(socket, session, json_audio=json_audio)

"""A scriptable fake OpenAI Realtime *upstream*: a real WebSocket server on loopback.

It speaks the GA server protocol (protocols.md §1.4, §1.10) with
``parley.protocols.openai_realtime``, so a client under test (``RealtimeEngine``,
the official SDK) sees the real event names, shapes and order. It plays a script
of responses in order and records every client event per connection, so a test
can assert what the client sent (session config, re-seeded items, audio bytes).

    async with RealtimeUpstream() as up:
        up.script(ScriptedResponse("Hello there.", user_transcript="hi"))
        engine = RealtimeEngine(RealtimeConfig(url=up.url, api_key="test"))
        ...

Turns: every ``turn_audio_ms`` of appended caller audio (in the session's input
format) counts as one spoken user turn: ``speech_started``, ``speech_stopped``,
``committed``, the user item, its transcription, then the next scripted response
(as server VAD with ``create_response`` would). ``response.create`` also plays the
next scripted response. Fault injection: a scripted response may drop the socket
after N audio deltas (no close frame, as a network failure looks);
:meth:`RealtimeUpstream.expire_session` sends ``session_expired`` and closes with
1001; ``refuse_connections`` rejects handshakes with HTTP 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Self

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from parley.engines.playback import heard_text
from parley.errors import RemoteProtocolError
from parley.events import Usage
from parley.protocols.openai_realtime import (
    PCM16_24K,
    AudioConfig,
    AudioInput,
    AudioOutput,
    ClientEvent,
    ContentPart,
    ConversationItem,
    ConversationItemAdded,
    ConversationItemCreate,
    ConversationItemDone,
    ConversationItemTruncate,
    ConversationItemTruncated,
    ErrorDetail,
    InputAudioBufferAppend,
    InputAudioBufferCommit,
    InputAudioBufferCommitted,
    InputAudioBufferSpeechStarted,
    InputAudioBufferSpeechStopped,
    InputAudioTranscriptionCompleted,
    RealtimeAudioFormat,
    RealtimeErrorEvent,
    ResponseCancel,
    ResponseCreate,
    ResponseOutput,
    ResponseUsage,
    ResponseWriter,
    ServerEvent,
    Session,
    SessionCreated,
    SessionUpdate,
    SessionUpdated,
    TurnDetection,
    UnknownClientEvent,
    encode_event_text,
    merge_session,
    parse_client_event,
)
from parley.tasks import cancel_and_wait

__all__ = ["RealtimeUpstream", "ScriptedFunctionCall", "ScriptedResponse", "UpstreamConnection"]


@dataclass(frozen=True, slots=True)
class ScriptedFunctionCall:
    name: str
    arguments: str = "{}"
    call_id: str = ""  # generated when empty


@dataclass(frozen=True, slots=True)
class ScriptedResponse:
    """One model response.

    ``audio`` is sent as is, in the session's output format, cut into ``chunks``
    deltas (default: ``chunk_ms`` of a quiet pattern per word of ``transcript``).
    ``drop_after_deltas`` aborts the TCP connection after that many audio deltas.
    ``function_call`` makes this a tool-call response (no audio).
    """

    transcript: str = "Okay."
    user_transcript: str = ""  # transcription of the user turn that triggers it
    audio: bytes | None = None
    chunks: int | None = None
    chunk_ms: int = 100
    usage: Usage = field(
        default_factory=lambda: Usage(input_text_tokens=10, output_audio_tokens=20)
    )
    function_call: ScriptedFunctionCall | None = None
    drop_after_deltas: int | None = None


@dataclass(slots=True)
class UpstreamConnection:
    """What one client connection sent, for the test to check."""

    index: int
    headers: Headers
    path: str
    session: Session
    events: list[ClientEvent | UnknownClientEvent] = field(default_factory=list)
    appends: list[str] = field(default_factory=list)  # base64 exactly as received
    audio: bytearray = field(default_factory=bytearray)
    items: list[ConversationItem] = field(default_factory=list)  # conversation.item.create
    truncations: list[ConversationItemTruncate] = field(default_factory=list)
    errors_sent: list[str] = field(default_factory=list)
    closed: bool = False

    def of_type(self, cls: type[object]) -> list[object]:
        return [e for e in self.events if isinstance(e, cls)]


def _default_session(model: str) -> Session:
    # The GA server defaults observed in the spec's session.created example (§1.6.1).
    td = TurnDetection(
        type="server_vad",
        threshold=0.5,
        prefix_padding_ms=300,
        silence_duration_ms=200,
        idle_timeout_ms=None,
        create_response=True,
        interrupt_response=True,
    )
    return Session(
        type="realtime",
        object="realtime.session",
        id="sess_fake",
        model=model,
        output_modalities=["audio"],
        instructions="",
        audio=AudioConfig(
            input=AudioInput(format=PCM16_24K, transcription=None, turn_detection=td),
            output=AudioOutput(format=PCM16_24K, voice="marin", speed=1.0),
        ),
        tools=[],
        tool_choice="auto",
        max_output_tokens="inf",
    )


class _Conn:
    """Server-side state of one connection."""

    def __init__(self, up: RealtimeUpstream, ws: ServerConnection, rec: UpstreamConnection) -> None:
        self.up, self.ws, self.rec = up, ws, rec
        self.pending_audio = 0  # bytes since the last turn
        self.audio_ms_total = 0.0
        self.response_task: asyncio.Task[None] | None = None
        self.response: ResponseOutput | None = None
        self.response_id = ""
        self.item_id = ""
        # The same choreography as the local Realtime server, one delta per scripted chunk.
        self.writer = ResponseWriter(up.event_id, _Items(), heard_text, max_delta_ms=None)

    # -- helpers -----------------------------------------------------------------------

    def _format(self, side: str) -> RealtimeAudioFormat:
        audio = self.rec.session.audio
        if isinstance(audio, AudioConfig):
            half = getattr(audio, side)
            if isinstance(half, AudioInput | AudioOutput) and isinstance(
                half.format, RealtimeAudioFormat
            ):
                return half.format
        return PCM16_24K

    def _bytes_per_ms(self) -> float:
        return 48.0 if self._format("input").type == "audio/pcm" else 8.0

    def _output_pcm(self) -> bool:
        return self._format("output").type == "audio/pcm"

    def _turn_detection(self) -> TurnDetection | None:
        audio = self.rec.session.audio
        if isinstance(audio, AudioConfig) and isinstance(audio.input, AudioInput):
            td = audio.input.turn_detection
            if td is None or isinstance(td, TurnDetection):
                return td
        return None

    async def send(self, event: ServerEvent) -> None:
        await self.ws.send(encode_event_text(event))

    async def error(self, code: str, message: str, event_id: str | None = None) -> None:
        self.rec.errors_sent.append(code)
        detail = ErrorDetail(
            type="invalid_request_error", code=code, message=message, event_id=event_id
        )
        await self.send(RealtimeErrorEvent(event_id=self.up.event_id(), error=detail))

    # -- client events -----------------------------------------------------------------

    async def handle(self, frame: str | bytes) -> None:
        try:
            await self._handle(frame)
        finally:
            self.up.notify()  # what the connection recorded may be what a test awaits

    async def _handle(self, frame: str | bytes) -> None:
        try:
            event = parse_client_event(frame)
        except RemoteProtocolError as exc:
            await self.error(exc.code, exc.message)
            return
        self.rec.events.append(event)
        if isinstance(event, InputAudioBufferAppend):
            self.rec.appends.append(event.audio)
            chunk = event.audio_bytes()
            self.rec.audio += chunk
            self.pending_audio += len(chunk)
            turn_ms = self.up.turn_audio_ms
            if turn_ms is not None and self.pending_audio >= turn_ms * self._bytes_per_ms():
                self.pending_audio = 0
                await self._user_turn()
        elif isinstance(event, SessionUpdate):
            self.rec.session = merge_session(self.rec.session, event.session)
            await self.send(SessionUpdated(event_id=self.up.event_id(), session=self.rec.session))
        elif isinstance(event, ConversationItemCreate):
            item = event.item
            if not isinstance(item.id, str):
                item = msgspec.structs.replace(item, id=self.up.item_id())
            self.rec.items.append(item)
            done = msgspec.structs.replace(item, status="completed")
            await self.send(ConversationItemAdded(event_id=self.up.event_id(), item=done))
            await self.send(ConversationItemDone(event_id=self.up.event_id(), item=done))
        elif isinstance(event, InputAudioBufferCommit):
            if self.pending_audio < 100 * self._bytes_per_ms():
                await self.error(
                    "input_audio_buffer_commit_empty",
                    "Error committing input audio buffer: buffer too small.",
                )
            else:
                self.pending_audio = 0
                await self._commit(respond=False)
        elif isinstance(event, ResponseCreate):
            if self.response_task is not None and not self.response_task.done():
                await self.error(
                    "conversation_already_has_active_response",
                    f"Conversation already has an active response in progress: "
                    f"{self.response_id}. Wait until the response is finished before "
                    "creating a new one.",
                )
            else:
                self._start_response("")
        elif isinstance(event, ResponseCancel):
            if not await self._cancel("client_cancelled"):
                await self.error(
                    "response_cancel_not_active", "Cancellation failed: no active response found"
                )
        elif isinstance(event, ConversationItemTruncate):
            self.rec.truncations.append(event)
            await self.send(
                ConversationItemTruncated(
                    event_id=self.up.event_id(),
                    item_id=event.item_id,
                    content_index=event.content_index,
                    audio_end_ms=event.audio_end_ms,
                )
            )

    # -- turns and responses -----------------------------------------------------------

    async def _user_turn(self) -> None:
        item_id = self.up.item_id()
        start = self.audio_ms_total
        self.audio_ms_total += self.up.turn_audio_ms or 0
        await self.send(
            InputAudioBufferSpeechStarted(
                event_id=self.up.event_id(), audio_start_ms=int(start), item_id=item_id
            )
        )
        await self.send(
            InputAudioBufferSpeechStopped(
                event_id=self.up.event_id(), audio_end_ms=int(self.audio_ms_total), item_id=item_id
            )
        )
        await self._commit(respond=True, item_id=item_id)

    async def _commit(self, *, respond: bool, item_id: str = "") -> None:
        item_id = item_id or self.up.item_id()
        await self.send(InputAudioBufferCommitted(event_id=self.up.event_id(), item_id=item_id))
        user = ConversationItem(
            type="message",
            role="user",
            id=item_id,
            status="completed",
            content=[ContentPart(type="input_audio", transcript=None)],
        )
        await self.send(ConversationItemAdded(event_id=self.up.event_id(), item=user))
        await self.send(ConversationItemDone(event_id=self.up.event_id(), item=user))
        nxt = self.up.peek()
        await self.send(
            InputAudioTranscriptionCompleted(
                event_id=self.up.event_id(),
                item_id=item_id,
                content_index=0,
                transcript=nxt.user_transcript if nxt is not None else "",
            )
        )
        td = self._turn_detection()
        if respond and td is not None and td.create_response is not False:
            self._start_response(item_id)

    def _start_response(self, _user_item: str) -> None:
        script = self.up.next_response()
        self.response_id = self.up.response_id()
        audio = self.rec.session.audio
        voice = None
        if isinstance(audio, AudioConfig) and isinstance(audio.output, AudioOutput):
            voice = audio.output.voice if isinstance(audio.output.voice, str) else None
        out = ResponseOutput(
            self.response_id,
            self.up.item_id(),
            self._format("output"),
            voice=voice,
            conversation_id="conv_fake",
        )
        self.response = out
        self.response_task = asyncio.get_running_loop().create_task(self._respond(script, out))

    async def barge_in(self) -> None:
        """The caller speaks over the reply: speech_started, and (server VAD with
        interrupt_response) the response is cancelled with reason turn_detected."""
        item_id = self.up.item_id()
        await self.send(
            InputAudioBufferSpeechStarted(
                event_id=self.up.event_id(),
                audio_start_ms=int(self.audio_ms_total),
                item_id=item_id,
            )
        )
        td = self._turn_detection()
        if td is not None and td.interrupt_response is not False:
            await self._cancel("turn_detected")

    async def _cancel(self, reason: str) -> bool:
        task, out = self.response_task, self.response
        if task is None or task.done() or out is None:
            return False
        await cancel_and_wait(task)
        out.cancel_reason = reason
        await self.send_all(self.writer.done(out, "cancelled", ResponseUsage()))
        return True

    async def send_all(self, events: list[ServerEvent]) -> None:
        for event in events:
            await self.send(event)

    async def _respond(self, s: ScriptedResponse, out: ResponseOutput) -> None:
        up, w = self.up, self.writer
        await self.send_all(w.created(out))
        if s.function_call is not None:
            fc = s.function_call
            item_id = up.item_id()
            call_id = fc.call_id or f"call_{item_id}"
            await self.send_all(w.function_call(out, call_id, fc.name, fc.arguments, item_id))
            await self._done(out, s.usage)
            return
        words = s.transcript.split()
        n = s.chunks or max(1, len(words))
        audio = s.audio
        if audio is None:
            per_ms = 48 if self._output_pcm() else 8
            pattern = b"\x10\x00" if per_ms == 48 else b"\x7e"
            audio = pattern * (s.chunk_ms * per_ms * n // len(pattern))
        cut = [audio[len(audio) * i // n : len(audio) * (i + 1) // n] for i in range(n)]
        pieces = [w if i == 0 else f" {w}" for i, w in enumerate(words)]
        self.item_id = out.item_id
        for i, chunk in enumerate(cut):
            if i < len(pieces):
                await self.send_all(w.text(out, pieces[i]))
            await self.send_all(w.audio(out, chunk))
            if s.drop_after_deltas is not None and i + 1 >= s.drop_after_deltas:
                up.drops += 1
                self.ws.transport.abort()  # no close frame: what a network failure looks like
                return
            if up.delta_interval_s:
                await asyncio.sleep(up.delta_interval_s)
        if len(pieces) > len(cut):
            await self.send_all(w.text(out, "".join(pieces[len(cut) :])))
        await self._done(out, s.usage)

    async def _done(self, out: ResponseOutput, usage: Usage) -> None:
        await self.send_all(self.writer.done(out, "completed", ResponseUsage.from_usage(usage)))
        self.up.responses_done += 1
        self.up.notify()


class _Items:
    """The fake's conversation as the response writer sees it: ids in order."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def item_added(self, item: ConversationItem) -> str | None:
        previous = self.ids[-1] if self.ids else None
        self.ids.append(item.id if isinstance(item.id, str) else "")
        return previous

    def item_done(self, item: ConversationItem, audio_ms: float) -> tuple[bool, str | None]:
        index = self.ids.index(item.id) if item.id in self.ids else -1
        return index >= 0, (self.ids[index - 1] if index > 0 else None)


class RealtimeUpstream:
    """The fake upstream (see the module docstring). Use as ``async with``."""

    def __init__(
        self,
        *,
        turn_audio_ms: int | None = 200,
        delta_interval_s: float = 0.0,
        api_key: str | None = None,
    ) -> None:
        self.turn_audio_ms = turn_audio_ms
        self.delta_interval_s = delta_interval_s
        self.api_key = api_key  # when set, the Bearer token must match (else HTTP 401)
        self.refuse_connections = False
        self.connections: list[UpstreamConnection] = []
        self.refused = 0
        self.drops = 0
        self.responses_done = 0
        self._script: deque[ScriptedResponse] = deque()
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._live: list[_Conn] = []
        self._changed = asyncio.Event()
        self.port = 0

    # -- waiting on what it recorded ---------------------------------------------------

    def notify(self) -> None:
        """Wake :meth:`until`: a connection came or went, or one recorded an event."""
        self._changed.set()

    async def until(self, predicate: Callable[[], object], limit_s: float = 5.0) -> None:
        """Wait until ``predicate()`` holds, checked each time the upstream records
        something (never on a timer); ``TimeoutError`` after ``limit_s``."""
        async with asyncio.timeout(limit_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    # -- script and ids ----------------------------------------------------------------

    def script(self, *responses: ScriptedResponse) -> None:
        self._script.extend(responses)

    def peek(self) -> ScriptedResponse | None:
        return self._script[0] if self._script else None

    def next_response(self) -> ScriptedResponse:
        return self._script.popleft() if self._script else ScriptedResponse()

    def event_id(self) -> str:
        return f"event_{next(self._ids)}"

    def item_id(self) -> str:
        return f"item_{next(self._ids)}"

    def response_id(self) -> str:
        return f"resp_{next(self._ids)}"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    @property
    def current_item_id(self) -> str:
        """The assistant item of the live connection's latest audio response."""
        return self._live[-1].item_id

    @property
    def current(self) -> UpstreamConnection:
        return self._live[-1].rec

    # -- fault injection ---------------------------------------------------------------

    async def barge_in(self) -> None:
        """Send ``speech_started`` on the live connection (and cancel its response)."""
        await self._live[-1].barge_in()

    async def expire_session(self) -> None:
        """The 60-minute limit: ``error`` ``session_expired``, then close 1001."""
        conn = self._live[-1]
        await conn.error("session_expired", "Your session hit the maximum duration of 60 minutes.")
        await conn.ws.close(1001, "going away")

    async def send_error(self, code: str, message: str) -> None:
        """An ``error`` event on the live connection (the session goes on)."""
        await self._live[-1].error(code, message)

    async def drop(self) -> None:
        """Abort the live connection's TCP socket (no close frame)."""
        self.drops += 1
        self._live[-1].ws.transport.abort()

    # -- server ------------------------------------------------------------------------

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        if self.refuse_connections:
            self.refused += 1
            self.notify()
            return ws.respond(HTTPStatus.SERVICE_UNAVAILABLE, "upstream unavailable\n")
        expected = f"Bearer {self.api_key}"
        if self.api_key is not None and request.headers.get("Authorization") != expected:
            return ws.respond(HTTPStatus.UNAUTHORIZED, "invalid api key\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        model = "gpt-realtime"
        if "model=" in request.path:
            model = request.path.split("model=", 1)[1].split("&", 1)[0]
        rec = UpstreamConnection(
            index=len(self.connections),
            headers=request.headers,
            path=request.path,
            session=_default_session(model),
        )
        self.connections.append(rec)
        conn = _Conn(self, ws, rec)
        self._live.append(conn)
        self.notify()
        try:
            await conn.send(SessionCreated(event_id=self.event_id(), session=rec.session))
            async for frame in ws:
                await conn.handle(frame)
        except ConnectionClosed:
            pass
        finally:
            rec.closed = True
            self.notify()
            with contextlib.suppress(ConnectionClosed):
                await cancel_and_wait(conn.response_task)

    async def __aenter__(self) -> Self:
        self._server = await serve(
            self._handler,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            compression=None,
            ping_interval=None,
            max_size=None,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
            self._server = None

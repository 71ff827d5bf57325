"""One local Realtime session: client events in, GA server events out.

The session owns the protocol state (the session config, the input audio buffer,
the conversation items, the one active response) and drives three collaborators:
the input pipeline (VAD → :class:`~parley.turns.TurnDetector` → STT, shared
models from the :class:`~parley.realtime_server.backend.RealtimeBackend`), the
engine that writes the replies (``engine.send_text`` per response; its
:mod:`parley.events` become ``response.*`` events), and an outbound queue that
the I/O shell drains onto the socket. It never touches a socket itself, so the
tests drive it with frames and read typed events.

Ordering (protocols.md §1.10) comes from one worker task that runs committed user
turns and responses strictly in order: a ``response.create`` sent right after a
commit waits for that turn's transcript. A turn becomes
``input_audio_buffer.committed`` → ``conversation.item.added`` (user,
``input_audio`` without transcript) → ``conversation.item.done`` (with the
transcript) → ``…input_audio_transcription.completed``; a response becomes
``response.created`` → ``response.output_item.added`` → ``conversation.item.added``
→ ``response.content_part.added`` → ``response.output_audio_transcript.delta`` /
``response.output_audio.delta``… → ``response.output_audio.done`` →
``response.output_audio_transcript.done`` → ``response.content_part.done`` →
``response.output_item.done`` → ``conversation.item.done`` → ``response.done``
(with the estimated usage of :mod:`parley.realtime_server.usage`). The events of
one response are written by :mod:`parley.realtime_server.responses`.

Function calling (protocols.md §1.6.3) is client-executed: once the client declares
``tools``, the engine gets a :class:`~parley.realtime_server.tools.ClientTools`
runner. When the model calls one, the response gets a ``function_call`` item and
ends (``response.done``, completed); the engine's reply waits in ``run()`` until the
client's ``function_call_output`` (matching ``call_id``) *and* a ``response.create``
arrive, and the model's continuation streams as that new response. An output for a
call that is not waiting (nor in the conversation) is an ``invalid_tool_call_id``
error. A call left unanswered for ``RealtimeBackend.tool_output_timeout_s`` (120 s by
default) ends with a ``function_call_output_timeout`` error to the client and an error
result to the model, whose continuation the server streams as a response of its own.

Differences from OpenAI, by design: transcription always runs (the engine needs
the words); ``transcription: null`` only silences its events. A response with no
new user words (``response.create`` right after a system item, say) completes at
once with no output, since an engine answers user text. ``semantic_vad`` maps its
eagerness onto a silence length (low 928 ms, medium/auto 640 ms, high 448 ms; the
figures of parley.turns' tuning table). An unknown voice leaves the voice as it
was (``session.updated`` shows the effective one).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from parley.engines.playback import heard_text
from parley.errors import ParleyError, ProtocolError, RemoteProtocolError
from parley.events import (
    AudioDelta,
    ErrorEvent,
    Event,
    ResponseDone,
    ResponseStarted,
    TextDelta,
    ToolCall,
    ToolResult,
)
from parley.protocols.openai_realtime import (
    AudioConfig,
    ClientEvent,
    ContentPart,
    ConversationItem,
    ConversationItemAdded,
    ConversationItemCreate,
    ConversationItemDelete,
    ConversationItemDeleted,
    ConversationItemDone,
    ConversationItemRetrieve,
    ConversationItemRetrieved,
    ConversationItemTruncate,
    ConversationItemTruncated,
    ErrorDetail,
    InputAudioBufferAppend,
    InputAudioBufferClear,
    InputAudioBufferCleared,
    InputAudioBufferCommit,
    InputAudioBufferCommitted,
    InputAudioBufferSpeechStarted,
    InputAudioBufferSpeechStopped,
    InputAudioTranscriptionCompleted,
    InputAudioTranscriptionFailed,
    RealtimeAudioFormat,
    RealtimeErrorEvent,
    ResponseAudio,
    ResponseAudioOutput,
    ResponseCancel,
    ResponseCreate,
    ResponseParams,
    ServerEvent,
    Session,
    SessionCreated,
    SessionUpdate,
    SessionUpdated,
    Tool,
    TranscriptionUsage,
    TurnDetection,
    UnknownClientEvent,
    merge_session,
    parse_client_event,
)
from parley.providers.models import run_blocking
from parley.providers.seams import ToolSpec, Transcript, VADStream
from parley.turns import (
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnConfig,
    TurnDetector,
    TurnEnded,
    TurnSignal,
)

from .audio_io import inbound, outbound
from .backend import RealtimeBackend
from .responses import DELTA_MS, PendingCall, ResponseRecord, ResponseWriter, new_id
from .settings import (
    audio_in,
    audio_out,
    check_format,
    default_session,
    format_or_default,
    turn_config,
)
from .tools import ClientTools, function_specs

__all__ = ["DELTA_MS", "CancellableEngine", "RealtimeSession"]

_Response = ResponseRecord
#: How long ``run()`` waits for the pump to show the engine's ToolCall event (so the
#: text before the call is out first); engines that emit none get the call anyway.
_CALL_SEEN_TIMEOUT_S = 2.0

#: Shortest commit OpenAI accepts (protocols.md §1.11).
MIN_COMMIT_MS = 100.0
#: Most input audio kept uncommitted; older audio is dropped (and counted).
MAX_BUFFER_MS = 120_000.0


@runtime_checkable
class CancellableEngine(Protocol):
    """An engine that can stop one reply at once (``response.cancel``, barge-in).

    Not part of :class:`~parley.engines.seams.Engine`: without it the session
    stops forwarding the reply's events and the engine finishes it unheard (the
    cascade cuts it off when the next user text arrives)."""

    async def cancel_response(self, response_id: str) -> None: ...


@dataclass(slots=True)
class _Item:
    """A conversation item plus what the session knows about it."""

    item: ConversationItem
    user_audio_ms: float = 0.0
    assistant_audio_ms: float = 0.0
    sent: bool = False  # its words were given to the engine

    @property
    def id(self) -> str:
        return self.item.id if isinstance(self.item.id, str) else ""


@dataclass(slots=True)
class _Turn:
    item_id: str
    audio: bytes
    speculative: asyncio.Task[Transcript | ParleyError] | None = None


_STOP = object()


class RealtimeSession:
    """One WebSocket's worth of Realtime protocol (see the module docstring).

    Use: ``events()`` for the outbound stream (ends after ``close()``), ``run()``
    for the background work, ``handle(frame)`` per client frame.
    """

    def __init__(
        self, backend: RealtimeBackend, *, model: str = "parley-realtime", queue_size: int = 512
    ) -> None:
        self._backend = backend
        self._engine = backend.make_engine()
        self._rate = backend.sample_rate
        self._session = default_session(backend, model)
        self._out: asyncio.Queue[object] = asyncio.Queue(queue_size)
        self._jobs: asyncio.Queue[_Turn | _Response | object] = asyncio.Queue()
        self._eids = itertools.count(1)
        self._closed = False
        # input
        self._inbound = inbound(format_or_default(audio_in(self._session).format), self._rate)
        self._in_format = format_or_default(audio_in(self._session).format)
        self._buffer = bytearray()
        self._dropped_ms = 0.0
        self._vad: VADStream | None = None
        self._detector: TurnDetector | None = None
        self._turn_config: TurnConfig | None = None
        self._detector_offset_ms = 0.0
        self._pending = b""
        self._vad_item: str | None = None
        self._speculation: tuple[bytes, asyncio.Task[Transcript | ParleyError]] | None = None
        self._tasks: set[asyncio.Task[Transcript | ParleyError]] = set()
        # conversation and responses
        self._items: list[_Item] = []
        self._response: _Response | None = None  # the one writing to the conversation
        self._current: _Response | None = None  # the one the engine is answering
        self._by_engine: dict[str, _Response] = {}
        self._out_format = format_or_default(audio_out(self._session).format)
        self._instructions = ""
        self._writer = ResponseWriter(
            self._emit, self._eid, self._voice, self._model_item_added, self._model_item_done
        )
        # client-executed tools (tools.py): given to the engine once the client declares any
        self._tools = ClientTools(self._tool_specs, self._on_tool_call)
        self._tools_given = False
        self._calls: dict[str, PendingCall] = {}  # call_id → unanswered call
        self._seen: dict[str, asyncio.Future[PendingCall | None]] = {}  # run() waiting on pump
        self._orphans: dict[str, None] = {}  # calls made while no response was live
        self._expired: set[str] = set()  # calls whose answer timed out
        self._configure_turns()
        self._out.put_nowait(self._session_event(SessionCreated))

    # -- public --------------------------------------------------------------------------

    @property
    def session(self) -> Session:
        """The effective session configuration."""
        return self._session

    @property
    def items(self) -> list[ConversationItem]:
        """The conversation, in order."""
        return [it.item for it in self._items]

    @property
    def dropped_input_ms(self) -> float:
        """Uncommitted input audio dropped because the buffer was full."""
        return self._dropped_ms

    async def events(self) -> AsyncIterator[ServerEvent]:
        while (event := await self._out.get()) is not _STOP:
            yield event  # type: ignore[misc]

    async def run(self) -> None:
        """The engine, its event pump and the turn/response worker, until ``close()``."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._engine.run())
                tg.create_task(self._pump())
                await self._worker()
                await self._engine.close()
        finally:
            self._closed = True
            for task in list(self._tasks):
                task.cancel()
            while self._out.full():  # the end must get through
                self._out.get_nowait()
            self._out.put_nowait(_STOP)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._current is not None:
                self._current.done.set()
            self._jobs.put_nowait(_STOP)

    async def handle(self, frame: str | bytes) -> None:
        """One client frame. A bad one becomes an ``error`` event; the session goes on."""
        client_event_id: str | None = None
        try:
            event = parse_client_event(frame)
            if isinstance(event, UnknownClientEvent):
                raise RemoteProtocolError(
                    f"Invalid value: '{event.type}'. Unknown client event type.",
                    code="invalid_event",
                )
            if isinstance(event.event_id, str):
                client_event_id = event.event_id
            await self._dispatch(event)
        except ProtocolError as exc:
            await self._emit(
                RealtimeErrorEvent.from_protocol_error(
                    exc, event_id=self._eid(), client_event_id=client_event_id
                )
            )

    # -- dispatch ------------------------------------------------------------------------

    async def _dispatch(self, event: ClientEvent) -> None:
        if isinstance(event, InputAudioBufferAppend):
            await self._append(event.audio_bytes())
        elif isinstance(event, SessionUpdate):
            await self._update_session(event.session)
        elif isinstance(event, InputAudioBufferCommit):
            await self._manual_commit()
        elif isinstance(event, InputAudioBufferClear):
            self._buffer.clear()
            self._reset_turns()
            await self._emit(InputAudioBufferCleared(event_id=self._eid()))
        elif isinstance(event, ConversationItemCreate):
            await self._create_item(event)
        elif isinstance(event, ConversationItemDelete):
            await self._delete_item(event.item_id)
        elif isinstance(event, ConversationItemTruncate):
            await self._truncate(event)
        elif isinstance(event, ConversationItemRetrieve):
            found = self._find(event.item_id)
            await self._emit(ConversationItemRetrieved(event_id=self._eid(), item=found.item))
        elif isinstance(event, ResponseCreate):
            params = event.response if isinstance(event.response, ResponseParams) else None
            await self._create_response(params)
        elif isinstance(event, ResponseCancel):
            wanted = event.response_id if isinstance(event.response_id, str) else None
            if not await self._cancel("client_cancelled", wanted):
                raise RemoteProtocolError(
                    "Cancellation failed: no active response found",
                    code="response_cancel_not_active",
                )
        else:  # output_audio_buffer.clear, transcription_session.update
            raise RemoteProtocolError(
                f"{event.__struct_config__.tag} is not supported by this server "
                "(WebRTC/SIP or beta transcription sessions only)",
                code="invalid_event",
            )

    # -- session -------------------------------------------------------------------------

    async def _update_session(self, update: Session) -> None:
        if update.type != "realtime":
            raise RemoteProtocolError(
                "session.type: only 'realtime' sessions are served here", code="invalid_value"
            )
        old = self._session
        new = merge_session(old, update)
        # The server owns these; a client echoing a whole session must not change them.
        new = msgspec.structs.replace(new, id=old.id, object=old.object, expires_at=old.expires_at)
        ain, aout = audio_in(new), audio_out(new)
        in_fmt, out_fmt = format_or_default(ain.format), format_or_default(aout.format)
        check_format(in_fmt, "session.audio.input.format")
        check_format(out_fmt, "session.audio.output.format")
        mods = new.output_modalities
        if isinstance(mods, list) and sorted(set(mods)) not in (["audio"], ["text"]):
            raise RemoteProtocolError(
                "session.output_modalities: one of ['audio'] or ['text']", code="invalid_value"
            )
        td = ain.turn_detection
        config = turn_config(td) if isinstance(td, TurnDetection) else None
        voice = aout.voice
        if not isinstance(voice, str) or voice not in self._backend.voices:
            voice = audio_out(old).voice  # this TTS has no such voice: keep the current one
        new = msgspec.structs.replace(
            new,
            audio=AudioConfig(input=ain, output=msgspec.structs.replace(aout, voice=voice)),
        )
        # Everything checked: apply.
        self._session = new
        if in_fmt != self._in_format:
            self._in_format, self._inbound = in_fmt, inbound(in_fmt, self._rate)
        self._out_format = out_fmt
        if td != audio_in(old).turn_detection:
            self._configure_turns(config)
        instructions = new.instructions if isinstance(new.instructions, str) else ""
        if instructions != self._instructions:
            self._instructions = instructions
            await self._engine.update(instructions=instructions)
        if (new.tools, new.tool_choice) != (old.tools, old.tool_choice):
            await self._give_tools()
        await self._emit(self._session_event(SessionUpdated))

    async def _give_tools(self) -> None:
        # Only once the client declares tools: an engine's own tools stay until then.
        if self._tools_given or self._tool_specs():
            self._tools_given = True
            await self._engine.update(tools=self._tools)

    def _tool_specs(self) -> tuple[ToolSpec, ...]:
        rec = self._current
        tools = self._session.tools if isinstance(self._session.tools, list) else []
        choice: object = self._session.tool_choice
        if rec is not None and rec.tools is not None:
            tools = rec.tools
        if rec is not None and rec.tool_choice is not None:
            choice = rec.tool_choice
        return function_specs(tools, choice)

    def _voice(self) -> str | None:
        voice = audio_out(self._session).voice
        return voice if isinstance(voice, str) else None

    def _session_event(
        self, cls: type[SessionCreated] | type[SessionUpdated]
    ) -> SessionCreated | SessionUpdated:
        return cls(event_id=self._eid(), session=self._session)

    def _turn_detection(self) -> TurnDetection | None:
        td = audio_in(self._session).turn_detection
        return td if isinstance(td, TurnDetection) else None

    def _configure_turns(self, config: TurnConfig | None = None) -> None:
        # The detector itself is built on the next append, once the VAD stream exists.
        td = self._turn_detection()
        self._detector_offset_ms = self._position_ms()
        self._turn_config = None if td is None else (config or turn_config(td))
        self._detector = None
        self._pending = b""
        self._vad_item = None
        self._drop_speculation()

    def _reset_turns(self) -> None:
        if self._detector is not None:
            self._detector.reset()
        self._pending = b""
        self._vad_item = None
        self._drop_speculation()

    def _position_ms(self) -> float:
        det = self._detector
        return self._detector_offset_ms + (det.position_ms if det is not None else 0.0)

    # -- input audio ---------------------------------------------------------------------

    async def _append(self, data: bytes) -> None:
        pcm = self._inbound.process(data)
        if not pcm:
            return
        self._buffer += pcm
        limit = int(MAX_BUFFER_MS * self._rate / 1000) * 2
        if len(self._buffer) > limit:
            excess = len(self._buffer) - limit
            del self._buffer[:excess]
            self._dropped_ms += excess / 2 / self._rate * 1000
        if self._turn_config is None:
            return
        vad = self._vad
        if vad is None:  # the first stream may load the model: off the event loop
            vad = self._vad = await run_blocking(self._backend.vad.stream)
        det = self._detector
        if det is None:
            det = self._detector = TurnDetector(self._turn_config, self._rate, vad.frame_bytes)
        size = det.frame_bytes
        buf = self._pending + pcm
        n = len(buf) // size * size
        frames = [buf[i : i + size] for i in range(0, n, size)]
        self._pending = buf[n:]
        if not frames:
            return
        probs = await run_blocking(_score, vad, frames)
        for frame, prob in zip(frames, probs, strict=True):
            signal = det.push(frame, prob)
            if signal is not None:
                await self._on_signal(signal)

    async def _on_signal(self, signal: TurnSignal) -> None:
        td = self._turn_detection()
        off = self._detector_offset_ms
        if isinstance(signal, SpeechStarted):
            self._drop_speculation()
            self._vad_item = new_id("item")
            prefix = self._detector.config.prefix_padding_ms if self._detector else 0.0
            start = max(0.0, signal.audio_ms - prefix) + off
            await self._emit(
                InputAudioBufferSpeechStarted(
                    event_id=self._eid(), audio_start_ms=int(start), item_id=self._vad_item
                )
            )
            if td is not None and td.interrupt_response is not False:
                await self._cancel("turn_detected", None)
        elif isinstance(signal, SpeechPaused):
            self._drop_speculation()
            task = self._spawn(self._transcribe(signal.audio))
            self._speculation = (signal.audio, task)
        elif isinstance(signal, SpeechResumed):
            self._drop_speculation()
        elif isinstance(signal, TurnEnded):
            item_id = self._vad_item or new_id("item")
            self._vad_item = None
            await self._emit(
                InputAudioBufferSpeechStopped(
                    event_id=self._eid(), audio_end_ms=int(signal.audio_ms + off), item_id=item_id
                )
            )
            spec, self._speculation = self._speculation, None
            hit = spec is not None and spec[0] == signal.audio
            if spec is not None and not hit:
                spec[1].cancel()
            self._buffer.clear()
            await self._commit(item_id, signal.audio, spec[1] if spec is not None and hit else None)
            auto = td is not None and td.create_response is not False
            if auto and self._response is None:
                await self._create_response(None)

    def _drop_speculation(self) -> None:
        if self._speculation is not None:
            self._speculation[1].cancel()
            self._speculation = None

    async def _manual_commit(self) -> None:
        self._buffer += self._inbound.flush()
        ms = len(self._buffer) / 2 / self._rate * 1000
        if ms < MIN_COMMIT_MS:
            raise RemoteProtocolError(
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS:.0f}ms of audio, but buffer only has {ms:.2f}ms of audio.",
                code="input_audio_buffer_commit_empty",
            )
        audio = bytes(self._buffer)
        self._buffer.clear()
        item_id = self._vad_item or new_id("item")
        self._reset_turns()  # the committed audio must not end a VAD turn later as well
        await self._commit(item_id, audio, None)

    async def _commit(
        self, item_id: str, audio: bytes, speculative: asyncio.Task[Transcript | ParleyError] | None
    ) -> None:
        previous = self._items[-1].id if self._items else None
        item = ConversationItem(
            type="message",
            id=item_id,
            object="realtime.item",
            status="completed",
            role="user",
            content=[ContentPart(type="input_audio", transcript=None)],
        )
        self._items.append(_Item(item, user_audio_ms=len(audio) / 2 / self._rate * 1000))
        await self._emit(
            InputAudioBufferCommitted(
                event_id=self._eid(), item_id=item_id, previous_item_id=previous
            )
        )
        await self._emit(
            ConversationItemAdded(event_id=self._eid(), item=item, previous_item_id=previous)
        )
        self._jobs.put_nowait(_Turn(item_id, audio, speculative))

    async def _transcribe(self, audio: bytes) -> Transcript | ParleyError:
        try:
            return await self._backend.stt.transcribe(audio)
        except ParleyError as exc:
            return exc

    # -- the worker: turns and responses, in order -----------------------------------------

    async def _worker(self) -> None:
        while (job := await self._jobs.get()) is not _STOP:
            if isinstance(job, _Turn):
                await self._finish_turn(job)
            elif isinstance(job, _Response):
                await self._run_response(job)

    async def _finish_turn(self, turn: _Turn) -> None:
        task = turn.speculative or self._spawn(self._transcribe(turn.audio))
        try:
            result = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not task.cancelled() or (current is not None and current.cancelling()):
                raise
            result = await self._transcribe(turn.audio)  # the speculation was dropped late
        entry = self._lookup(turn.item_id)
        if entry is None:
            return  # deleted while it was being transcribed
        transcription = audio_in(self._session).transcription is not None
        if isinstance(result, ParleyError):
            await self._emit(
                ConversationItemDone(event_id=self._eid(), item=entry.item, previous_item_id=None)
            )
            if transcription:
                detail = ErrorDetail(
                    type="server_error",
                    code=getattr(result, "code", "stt_failed"),
                    message=str(result),
                )
                await self._emit(
                    InputAudioTranscriptionFailed(
                        event_id=self._eid(), item_id=turn.item_id, content_index=0, error=detail
                    )
                )
            return
        text = result.text.strip()
        entry.item = msgspec.structs.replace(
            entry.item, content=[ContentPart(type="input_audio", transcript=text)]
        )
        await self._emit(
            ConversationItemDone(
                event_id=self._eid(), item=entry.item, previous_item_id=self._previous(entry)
            )
        )
        if transcription:
            usage = TranscriptionUsage(
                type="duration", seconds=round(len(turn.audio) / 2 / self._rate, 3)
            )
            await self._emit(
                InputAudioTranscriptionCompleted(
                    event_id=self._eid(),
                    item_id=turn.item_id,
                    content_index=0,
                    transcript=text,
                    usage=usage,
                )
            )

    # -- conversation items ----------------------------------------------------------------

    def _lookup(self, item_id: str) -> _Item | None:
        for entry in self._items:
            if entry.id == item_id:
                return entry
        return None

    def _find(self, item_id: str) -> _Item:
        entry = self._lookup(item_id)
        if entry is None:
            raise RemoteProtocolError(
                f"Item with item_id '{item_id}' not found in the conversation.",
                code="item_not_found",
            )
        return entry

    def _previous(self, entry: _Item) -> str | None:
        index = self._items.index(entry)
        return self._items[index - 1].id if index > 0 else None

    async def _create_item(self, event: ConversationItemCreate) -> None:
        item = event.item
        if item.type not in ("message", "function_call", "function_call_output"):
            raise RemoteProtocolError(
                f"item.type: '{item.type}' items cannot be created here", code="invalid_value"
            )
        if item.type == "message":
            if not isinstance(item.role, str) or not isinstance(item.content, list):
                raise RemoteProtocolError(
                    "item: a message needs 'role' and 'content'", code="invalid_event"
                )
            if item.role == "assistant" and any(p.is_audio for p in item.content):
                raise RemoteProtocolError(
                    "item.content: assistant audio items cannot be created", code="invalid_value"
                )
        pending = self._check_output(item) if item.type == "function_call_output" else None
        item_id = item.id if isinstance(item.id, str) and item.id else new_id("item")
        if self._lookup(item_id) is not None:
            raise RemoteProtocolError(
                f"item.id: an item with id '{item_id}' already exists", code="invalid_value"
            )
        prev = event.previous_item_id
        if prev == "root":
            index = 0
        elif isinstance(prev, str):
            index = self._items.index(self._find(prev)) + 1
        else:
            index = len(self._items)
        stored = msgspec.structs.replace(
            item, id=item_id, object="realtime.item", status="completed"
        )
        entry = _Item(stored)
        self._items.insert(index, entry)
        previous = self._previous(entry)
        await self._emit(
            ConversationItemAdded(event_id=self._eid(), item=stored, previous_item_id=previous)
        )
        await self._emit(
            ConversationItemDone(event_id=self._eid(), item=stored, previous_item_id=previous)
        )
        if pending is not None:
            # The answer to a waiting call: the engine gets it as the tool result when
            # the next response.create asks for the continuation (§1.6.3).
            entry.sent = True
            output = stored.output if isinstance(stored.output, str) else ""
            pending.result = ToolResult(pending.call_id, pending.call.name, output)
            pending.output_item_id = item_id
        # Words that are not the user's go to the engine as context, not as a turn.
        elif not (item.type == "message" and item.role == "user"):
            entry.sent = True
            await self._engine.inject_context(f"item:{item_id}", _describe(stored))

    def _check_output(self, item: ConversationItem) -> PendingCall | None:
        """The waiting call a ``function_call_output`` answers (None: one already in
        the conversation, e.g. a client re-seeding its history); else an error."""
        call_id = item.call_id
        if not isinstance(call_id, str) or not call_id:
            raise RemoteProtocolError(
                "item.call_id: a function_call_output needs the call_id of its function_call",
                code="missing_required_parameter",
            )
        pending = self._calls.get(call_id)
        if pending is not None:
            if pending.result is not None:
                raise RemoteProtocolError(
                    f"item.call_id: tool call ID '{call_id}' already has an output.",
                    code="invalid_tool_call_id",
                )
            return pending
        if call_id in self._expired:
            raise RemoteProtocolError(
                f"Tool call ID '{call_id}' is no longer waiting: no output came within "
                f"{self._backend.tool_output_timeout_s:g} s and the model was told it failed.",
                code="invalid_tool_call_id",
            )
        for entry in self._items:
            if entry.item.type == "function_call" and entry.item.call_id == call_id:
                return None
        # OpenAI's own code and wording for this case (livekit/agents#3344).
        raise RemoteProtocolError(
            f"Tool call ID '{call_id}' not found in conversation.", code="invalid_tool_call_id"
        )

    async def _delete_item(self, item_id: str) -> None:
        entry = self._find(item_id)
        self._items.remove(entry)
        for pending in self._calls.values():
            if pending.output_item_id == item_id and not pending.future.done():
                pending.result = pending.output_item_id = None  # the answer was taken back
        if entry.sent and not (entry.item.type == "message" and entry.item.role == "user"):
            await self._engine.inject_context(f"item:{item_id}", "")
        await self._emit(ConversationItemDeleted(event_id=self._eid(), item_id=item_id))

    async def _truncate(self, event: ConversationItemTruncate) -> None:
        entry = self._find(event.item_id)
        item = entry.item
        if item.type != "message" or item.role != "assistant":
            raise RemoteProtocolError(
                "Only assistant message items can be truncated", code="invalid_value"
            )
        if event.content_index != 0:
            raise RemoteProtocolError(
                f"content_index {event.content_index} out of range", code="invalid_value"
            )
        total = entry.assistant_audio_ms
        if event.audio_end_ms < 0 or event.audio_end_ms > math.ceil(total):
            raise RemoteProtocolError(
                f"audio_end_ms {event.audio_end_ms} is longer than the item's audio "
                f"({total:.0f} ms)",
                code="invalid_value",
            )
        rec = self._response
        if rec is not None and rec.item_id == event.item_id and rec.engine_id is not None:
            await self._engine.report_playback(rec.engine_id, float(event.audio_end_ms))
        heard = heard_text([(item.text, 0.0, total)], float(event.audio_end_ms))
        part_type = "output_audio" if total else "output_text"
        content = (
            [ContentPart(type=part_type, transcript=heard)]
            if part_type == "output_audio"
            else [ContentPart(type=part_type, text=heard)]
        )
        entry.item = msgspec.structs.replace(item, content=content)
        entry.assistant_audio_ms = float(event.audio_end_ms)
        await self._emit(
            ConversationItemTruncated(
                event_id=self._eid(),
                item_id=event.item_id,
                content_index=0,
                audio_end_ms=event.audio_end_ms,
            )
        )

    # -- responses -------------------------------------------------------------------------

    async def _create_response(self, params: ResponseParams | None) -> None:
        in_conversation = params is None or params.conversation != "none"
        active = self._response
        if in_conversation and active is not None:
            raise RemoteProtocolError(
                f"Conversation already has an active response in progress: {active.id}. "
                "Wait until the response is finished before creating a new one.",
                code="conversation_already_has_active_response",
            )
        mods: list[Literal["text", "audio"]] = ["audio"]
        session_mods = self._session.output_modalities
        if params is not None and isinstance(params.output_modalities, list):
            mods = list(params.output_modalities)
        elif isinstance(session_mods, list):
            mods = list(session_mods)
        out_fmt = self._out_format
        if params is not None and isinstance(params.audio, ResponseAudio):
            out = params.audio.output
            if isinstance(out, ResponseAudioOutput) and isinstance(out.format, RealtimeAudioFormat):
                check_format(out.format, "response.audio.output.format")
                out_fmt = out.format
        inputs: list[str] | None = None
        if params is not None and isinstance(params.input, list):
            inputs = []
            for it in params.input:
                if it.type == "item_reference" and isinstance(it.id, str):
                    inputs.append(self._find(it.id).item.text)
                else:
                    inputs.append(it.text)
        tools: list[Tool] | None = None
        choice: str | dict[str, object] | None = None
        if params is not None:
            if isinstance(params.tools, list):
                tools = list(params.tools)
            if isinstance(params.tool_choice, str | dict):
                choice = params.tool_choice
        rec = _Response(
            id=new_id("resp"),
            item_id=new_id("item"),
            modalities=mods,
            out=outbound(out_fmt),
            out_format=out_fmt,
            in_conversation=in_conversation,
            instructions=params.instructions
            if params is not None and isinstance(params.instructions, str)
            else None,
            inputs=inputs,
            tools=tools,
            tool_choice=choice,
        )
        if in_conversation:
            self._response = rec
        self._jobs.put_nowait(rec)

    def _answered(self, rec: _Response) -> list[PendingCall]:
        """The waiting calls this response delivers the client's outputs for."""
        if rec.resume:
            return rec.resume
        if not rec.in_conversation or rec.inputs is not None:
            return []
        return [p for p in self._calls.values() if p.result is not None and not p.future.done()]

    async def _run_response(self, rec: _Response) -> None:
        rec.input_instructions = (
            rec.instructions if rec.instructions is not None else self._instructions
        )
        answered = self._answered(rec)
        texts: list[str] = []
        if rec.inputs is not None:
            rec.input_pieces = [(t, 0.0, 0.0) for t in rec.inputs]
            texts = [t for t in rec.inputs if t.strip()]
        else:
            rec.input_pieces = [
                (_piece_text(e.item), e.user_audio_ms, e.assistant_audio_ms) for e in self._items
            ]
            # A continuation answers the engine's waiting reply; new user words would
            # start another reply (and cut this one off), so they wait for the next.
            for entry in self._items if not answered else ():
                if not entry.sent and entry.item.type == "message" and entry.item.role == "user":
                    entry.sent = True
                    if entry.item.text.strip():
                        texts.append(entry.item.text.strip())
        await self._writer.created(rec)
        if rec.cancel_reason is not None:
            await self._finish(rec, "cancelled")
            return
        if not texts and not answered:
            await self._finish(rec, "completed")
            return
        rec.state = "active"
        self._current = rec
        override = rec.instructions is not None and rec.instructions != self._instructions
        tools_override = rec.tools is not None or rec.tool_choice is not None
        try:
            if override:
                await self._engine.update(instructions=rec.instructions)
            if tools_override:
                await self._give_tools()
            if answered:
                # The engine's reply goes on where it stopped: its events are this one's.
                rec.resume = answered
                self._by_engine = {p.engine_id: rec for p in answered if p.engine_id}
                rec.engine_id = next(iter(self._by_engine), None)
                rec.bound.set()
                for pending in answered:
                    if pending.result is not None and not pending.future.done():
                        pending.future.set_result(pending.result)
            else:
                await self._engine.send_text("\n".join(texts))
            try:
                async with asyncio.timeout(self._backend.response_start_timeout_s):
                    await rec.bound.wait()
            except TimeoutError:
                await self._emit_error("server_error", "the engine did not start a reply")
                await self._finish(rec, "failed")
            await rec.done.wait()
        finally:
            if self._current is rec:
                self._current = None
            if override:
                await self._engine.update(instructions=self._instructions)
            if tools_override:
                await self._give_tools()

    async def _cancel(self, reason: str, response_id: str | None) -> bool:
        rec = self._response
        if rec is None or rec.state == "done" or (response_id and response_id != rec.id):
            return False
        if rec.cancel_reason is not None:
            return False
        rec.cancel_reason = reason
        if rec.state == "queued":
            return True  # the worker reports it (created, then done: cancelled)
        rec.out.reset()
        if rec.engine_id is not None and isinstance(self._engine, CancellableEngine):
            await self._engine.cancel_response(rec.engine_id)
        await self._finish(rec, "cancelled")
        return True

    async def _finish(
        self, rec: _Response, status: Literal["completed", "cancelled", "failed"]
    ) -> None:
        if rec.state == "done":
            return
        rec.state = "done"
        await self._writer.done(rec, status)
        if self._response is rec:
            self._response = None
        rec.bound.set()
        rec.done.set()

    # -- client-executed function calls (tools.py, protocols.md §1.6.3) ---------------------

    async def _on_tool_call(self, call: ToolCall) -> ToolResult:
        """The engine's model called a client tool: the call goes to the client, the
        response ends, and the engine waits here for the client's output."""
        pending = self._calls.get(call.call_id)
        if pending is None and call.call_id not in self._orphans:
            # The engine emits its ToolCall event just before this; wait until the pump
            # has shown it (and everything said before it) to the client.
            seen: asyncio.Future[PendingCall | None] = asyncio.get_running_loop().create_future()
            self._seen[call.call_id] = seen
            try:
                async with asyncio.timeout(_CALL_SEEN_TIMEOUT_S):
                    pending = await seen
            except TimeoutError:  # an engine without ToolCall events
                pending = await self._show_call(call)
            finally:
                self._seen.pop(call.call_id, None)
        self._orphans.pop(call.call_id, None)
        if pending is None:
            return ToolResult(
                call.call_id,
                call.name,
                json.dumps({"error": "the response was cancelled before the call was made"}),
                is_error=True,
            )
        owner = pending.response
        if owner is not None and owner.state == "active":
            # The response ends here; the client runs the function, then asks on.
            await self._finish(owner, "completed")
        try:
            try:
                async with asyncio.timeout(self._backend.tool_output_timeout_s):
                    return await asyncio.shield(pending.future)
            except TimeoutError:
                if pending.result is None:  # answered but not yet asked on: keep waiting
                    await self._expire(pending)
                return await pending.future
        finally:
            self._calls.pop(call.call_id, None)

    async def _show_call(self, call: ToolCall) -> PendingCall | None:
        """Emit the function call item in the live response; None if none is live."""
        rec = self._current
        if rec is None or rec.state != "active":
            return None
        pending = PendingCall(
            call=call,
            item_id=new_id("item"),
            engine_id=rec.engine_id,
            future=asyncio.get_running_loop().create_future(),
            response=rec,
        )
        self._calls[call.call_id] = pending
        await self._writer.function_call(rec, call, pending.item_id)
        return pending

    async def _expire(self, pending: PendingCall) -> None:
        """No output in time: the model is told the call failed, the client is told why,
        and the model's continuation streams as a response the server starts."""
        self._calls.pop(pending.call_id, None)
        self._expired.add(pending.call_id)  # a late output is refused
        timeout = self._backend.tool_output_timeout_s
        message = (
            f"No function_call_output for call_id '{pending.call_id}' ({pending.call.name}) "
            f"within {timeout:g} s; the model was told the call failed."
        )
        await self._emit_error(
            "function_call_output_timeout", message, kind="invalid_request_error"
        )
        pending.result = ToolResult(
            pending.call_id,
            pending.call.name,
            json.dumps({"error": "the client did not return the function's output in time"}),
            is_error=True,
        )
        if self._response is None and not self._closed:
            session_mods = self._session.output_modalities
            rec = _Response(
                id=new_id("resp"),
                item_id=new_id("item"),
                modalities=list(session_mods) if isinstance(session_mods, list) else ["audio"],
                out=outbound(self._out_format),
                out_format=self._out_format,
                in_conversation=True,
                instructions=None,
                inputs=None,
                resume=[pending],
            )
            self._response = rec
            self._jobs.put_nowait(rec)
        elif not pending.future.done():
            # The client is busy with another response: the continuation goes unheard.
            pending.future.set_result(pending.result)

    # -- engine events → server events ----------------------------------------------------

    async def _pump(self) -> None:
        async for event in self._engine.events():
            await self._on_engine_event(event)
        # The engine ended: nothing more will answer.
        rec = self._current
        if rec is not None and rec.state != "done":
            await self._finish(rec, "failed")

    def _live(self, engine_id: str) -> _Response | None:
        rec = self._by_engine.get(engine_id)
        return rec if rec is not None and rec.state == "active" else None

    async def _on_engine_event(self, event: Event) -> None:
        if isinstance(event, AudioDelta):
            rec = self._live(event.response_id)
            if rec is not None and rec.audio:
                await self._writer.audio(
                    rec, rec.out.process(event.audio, event.encoding, event.sample_rate)
                )
        elif isinstance(event, TextDelta):
            rec = self._live(event.response_id)
            if rec is not None:
                await self._writer.text(rec, event.text)
        elif isinstance(event, ToolCall):
            pending = await self._show_call(event)
            if pending is None:
                self._orphans[event.call_id] = None
            seen = self._seen.get(event.call_id)
            if seen is not None and not seen.done():
                seen.set_result(pending)
        elif isinstance(event, ResponseStarted):
            rec = self._current
            if rec is not None and rec.state == "active":
                if rec.engine_id is None:
                    rec.engine_id = event.response_id
                    self._by_engine = {event.response_id: rec}
                    rec.bound.set()
                elif rec.resume:
                    # An engine that answers a tool result with a new reply of its own
                    # (the realtime engine): that reply continues this response.
                    self._by_engine[event.response_id] = rec
        elif isinstance(event, ResponseDone):
            rec = self._live(event.response_id)
            if rec is not None:
                if not rec.text and not rec.outputs and not rec.resume and event.text:
                    await self._writer.text(rec, event.text)  # an engine without TextDelta
                status: Literal["completed", "cancelled", "failed"] = (
                    "failed"
                    if event.status == "failed"
                    else ("cancelled" if event.status == "cancelled" else "completed")
                )
                await self._finish(rec, status)
        elif isinstance(event, ErrorEvent):
            await self._emit_error(event.code, event.message, kind="server_error")

    # -- the conversation side of the response writer ---------------------------------------

    def _model_item_added(self, item: ConversationItem) -> str | None:
        entry = _Item(item, sent=True)
        self._items.append(entry)
        return self._previous(entry)

    def _model_item_done(self, item: ConversationItem, audio_ms: float) -> tuple[bool, str | None]:
        entry = self._lookup(item.id) if isinstance(item.id, str) else None
        if entry is None:
            return False, None  # deleted meanwhile
        entry.item = item
        entry.assistant_audio_ms = audio_ms
        return True, self._previous(entry)

    # -- plumbing --------------------------------------------------------------------------

    def _eid(self) -> str:
        return f"event_{next(self._eids)}"

    async def _emit(self, event: ServerEvent) -> None:
        if not self._closed:
            await self._out.put(event)

    async def _emit_error(self, code: str, message: str, *, kind: str = "server_error") -> None:
        detail = ErrorDetail(type=kind, code=code, message=message)
        await self._emit(RealtimeErrorEvent(event_id=self._eid(), error=detail))

    def _spawn(
        self, coro: Coroutine[Any, Any, Transcript | ParleyError]
    ) -> asyncio.Task[Transcript | ParleyError]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _score(stream: VADStream, frames: list[bytes]) -> list[float]:
    # Runs in the model executor: one call per append, never one per frame.
    return [stream.probability(f) for f in frames]


def _piece_text(item: ConversationItem) -> str:
    """What an item adds to the model's input text (for the usage estimate)."""
    if item.type == "function_call":
        return f"{item.name}{item.arguments}" if isinstance(item.arguments, str) else ""
    if item.type == "function_call_output":
        return item.output if isinstance(item.output, str) else ""
    return item.text


def _describe(item: ConversationItem) -> str:
    if item.type == "function_call_output":
        return f"tool result for call {item.call_id}: {item.output}"
    if item.type == "function_call":
        return f"tool call {item.name}({item.arguments})"
    return f"{item.role}: {item.text}"

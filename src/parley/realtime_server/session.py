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
(with the estimated usage of :mod:`parley.realtime_server.usage`).

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
import math
import secrets
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from parley.errors import ParleyError, ProtocolError, RemoteProtocolError
from parley.events import (
    AudioDelta,
    ErrorEvent,
    Event,
    ResponseDone,
    ResponseStarted,
    TextDelta,
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
    Part,
    RealtimeAudioFormat,
    RealtimeErrorEvent,
    RealtimeResponse,
    ResponseAudio,
    ResponseAudioOutput,
    ResponseCancel,
    ResponseContentPartAdded,
    ResponseContentPartDone,
    ResponseCreate,
    ResponseCreated,
    ResponseOutputAudioDelta,
    ResponseOutputAudioDone,
    ResponseOutputAudioTranscriptDelta,
    ResponseOutputAudioTranscriptDone,
    ResponseOutputItemAdded,
    ResponseOutputItemDone,
    ResponseOutputTextDelta,
    ResponseOutputTextDone,
    ResponseParams,
    ResponseUsage,
    ServerEvent,
    Session,
    SessionCreated,
    SessionUpdate,
    SessionUpdated,
    StatusDetails,
    TranscriptionUsage,
    TurnDetection,
    UnknownClientEvent,
    encode_audio,
    merge_session,
    parse_client_event,
)
from parley.protocols.openai_realtime import ResponseDone as WireResponseDone
from parley.providers.models import run_blocking
from parley.providers.seams import Transcript, VADStream
from parley.turns import (
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnConfig,
    TurnDetector,
    TurnEnded,
    TurnSignal,
)

from .audio_io import InboundAudio, OutboundAudio
from .backend import RealtimeBackend
from .settings import (
    audio_in,
    audio_out,
    check_format,
    default_session,
    format_or_default,
    turn_config,
)
from .usage import InputPiece, estimate_usage

__all__ = ["CancellableEngine", "RealtimeSession"]

#: Shortest commit OpenAI accepts (protocols.md §1.11).
MIN_COMMIT_MS = 100.0
#: Most input audio kept uncommitted; older audio is dropped (and counted).
MAX_BUFFER_MS = 120_000.0
#: Audio deltas are cut to at most this much audio, so a client can play as it receives.
DELTA_MS = 200.0


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
class _Response:
    id: str
    item_id: str
    modalities: list[Literal["text", "audio"]]
    out: OutboundAudio
    in_conversation: bool
    instructions: str | None  # a per-response override
    inputs: list[str] | None  # texts of ``response.input``, when given
    state: Literal["queued", "active", "done"] = "queued"
    cancel_reason: str | None = None
    engine_id: str | None = None
    text: list[str] = field(default_factory=list)
    audio_ms: float = 0.0
    input_pieces: list[InputPiece] = field(default_factory=list)
    input_instructions: str = ""
    bound: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def audio(self) -> bool:
        return "audio" in self.modalities


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
        self._inbound = InboundAudio(format_or_default(audio_in(self._session).format), self._rate)
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
        if in_fmt != self._inbound.format:
            self._inbound = InboundAudio(in_fmt, self._rate)
        self._out_format = out_fmt
        if td != audio_in(old).turn_detection:
            self._configure_turns(config)
        instructions = new.instructions if isinstance(new.instructions, str) else ""
        if instructions != self._instructions:
            self._instructions = instructions
            await self._engine.update(instructions=instructions)
        await self._emit(self._session_event(SessionUpdated))

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
        pcm = self._inbound.convert(data)
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
            self._vad_item = _new_id("item")
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
            item_id = self._vad_item or _new_id("item")
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
        item_id = self._vad_item or _new_id("item")
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
        item_id = item.id if isinstance(item.id, str) and item.id else _new_id("item")
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
        # Words that are not the user's go to the engine as context, not as a turn.
        if not (item.type == "message" and item.role == "user"):
            entry.sent = True
            await self._engine.inject_context(f"item:{item_id}", _describe(stored))

    async def _delete_item(self, item_id: str) -> None:
        entry = self._find(item_id)
        self._items.remove(entry)
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
        heard = _cut_words(item.text, event.audio_end_ms / total if total else 1.0)
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
        rec = _Response(
            id=_new_id("resp"),
            item_id=_new_id("item"),
            modalities=mods,
            out=OutboundAudio(out_fmt),
            in_conversation=in_conversation,
            instructions=params.instructions
            if params is not None and isinstance(params.instructions, str)
            else None,
            inputs=inputs,
        )
        if in_conversation:
            self._response = rec
        self._jobs.put_nowait(rec)

    def _response_object(
        self,
        rec: _Response,
        status: Literal["in_progress", "completed", "cancelled", "failed"],
        output: list[ConversationItem],
        usage: ResponseUsage | None = None,
    ) -> RealtimeResponse:
        details: StatusDetails | None = None
        if status == "cancelled":
            details = StatusDetails(type="cancelled", reason=rec.cancel_reason)
        elif status == "failed":
            details = StatusDetails(type="failed", error={"type": "server_error"})
        out_voice = audio_out(self._session).voice
        return RealtimeResponse(
            id=rec.id,
            object="realtime.response",
            status=status,
            status_details=details,
            output=output,
            conversation_id="conv_default" if rec.in_conversation else None,
            output_modalities=rec.modalities,
            max_output_tokens="inf",
            audio=ResponseAudio(
                output=ResponseAudioOutput(
                    format=rec.out.format, voice=out_voice if isinstance(out_voice, str) else None
                )
            ),
            metadata=None,
            usage=usage,
        )

    async def _run_response(self, rec: _Response) -> None:
        rec.input_instructions = (
            rec.instructions if rec.instructions is not None else self._instructions
        )
        if rec.inputs is not None:
            rec.input_pieces = [(t, 0.0, 0.0) for t in rec.inputs]
            texts = [t for t in rec.inputs if t.strip()]
        else:
            rec.input_pieces = [
                (e.item.text, e.user_audio_ms, e.assistant_audio_ms) for e in self._items
            ]
            texts = []
            for entry in self._items:
                if not entry.sent and entry.item.type == "message" and entry.item.role == "user":
                    entry.sent = True
                    if entry.item.text.strip():
                        texts.append(entry.item.text.strip())
        await self._emit(
            ResponseCreated(
                event_id=self._eid(), response=self._response_object(rec, "in_progress", [])
            )
        )
        if rec.cancel_reason is not None:
            await self._finish(rec, "cancelled")
            return
        if not texts:
            await self._finish(rec, "completed")
            return
        rec.state = "active"
        self._current = rec
        override = rec.instructions is not None and rec.instructions != self._instructions
        try:
            if override:
                await self._engine.update(instructions=rec.instructions)
            await self._engine.send_text("\n".join(texts))
            try:
                async with asyncio.timeout(self._backend.response_start_timeout_s):
                    await rec.bound.wait()
            except TimeoutError:
                await self._emit_error("server_error", "the engine did not start a reply")
                await self._finish(rec, "failed")
            await rec.done.wait()
        finally:
            if override:
                await self._engine.update(instructions=self._instructions)
            if self._current is rec:
                self._current = None

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
            if rec is not None and rec.audio and event.encoding == "pcm16":
                await self._send_audio(rec, rec.out.convert(event.audio, event.sample_rate))
        elif isinstance(event, TextDelta):
            rec = self._live(event.response_id)
            if rec is not None and event.text:
                rec.text.append(event.text)
                await self._emit(self._text_delta(rec, event.text))
        elif isinstance(event, ResponseStarted):
            rec = self._current
            if rec is not None and rec.state == "active" and rec.engine_id is None:
                rec.engine_id = event.response_id
                self._by_engine = {event.response_id: rec}
                await self._start_output(rec)
                rec.bound.set()
        elif isinstance(event, ResponseDone):
            rec = self._live(event.response_id)
            if rec is not None:
                if not rec.text and event.text:
                    rec.text.append(event.text)
                status: Literal["completed", "cancelled", "failed"] = (
                    "failed"
                    if event.status == "failed"
                    else ("cancelled" if event.status == "cancelled" else "completed")
                )
                await self._finish(rec, status)
        elif isinstance(event, ErrorEvent):
            await self._emit_error(event.code, event.message, kind="server_error")

    def _text_delta(
        self, rec: _Response, text: str
    ) -> ResponseOutputAudioTranscriptDelta | ResponseOutputTextDelta:
        cls = ResponseOutputAudioTranscriptDelta if rec.audio else ResponseOutputTextDelta
        return cls(
            event_id=self._eid(),
            response_id=rec.id,
            item_id=rec.item_id,
            output_index=0,
            content_index=0,
            delta=text,
        )

    async def _send_audio(self, rec: _Response, wire: bytes) -> None:
        fmt = rec.out.format
        width = 2 if fmt.encoding == "pcm16" else 1
        step = int(fmt.sample_rate * DELTA_MS / 1000) * width
        for i in range(0, len(wire), step):
            chunk = wire[i : i + step]
            rec.audio_ms += len(chunk) / width / fmt.sample_rate * 1000
            await self._emit(
                ResponseOutputAudioDelta(
                    event_id=self._eid(),
                    response_id=rec.id,
                    item_id=rec.item_id,
                    output_index=0,
                    content_index=0,
                    delta=encode_audio(chunk),
                )
            )

    def _assistant_item(
        self, rec: _Response, status: Literal["in_progress", "completed", "incomplete"]
    ) -> ConversationItem:
        text = "".join(rec.text).strip()
        content: list[ContentPart] = []
        if status != "in_progress":
            content = [
                ContentPart(type="output_audio", transcript=text)
                if rec.audio
                else ContentPart(type="output_text", text=text)
            ]
        return ConversationItem(
            type="message",
            id=rec.item_id,
            object="realtime.item",
            status=status,
            role="assistant",
            content=content,
        )

    def _part(self, rec: _Response, text: str) -> Part:
        return Part(type="audio", transcript=text) if rec.audio else Part(type="text", text=text)

    async def _start_output(self, rec: _Response) -> None:
        item = self._assistant_item(rec, "in_progress")
        await self._emit(
            ResponseOutputItemAdded(
                event_id=self._eid(), response_id=rec.id, output_index=0, item=item
            )
        )
        if rec.in_conversation:
            entry = _Item(item, sent=True)
            self._items.append(entry)
            await self._emit(
                ConversationItemAdded(
                    event_id=self._eid(), item=item, previous_item_id=self._previous(entry)
                )
            )
        await self._emit(
            ResponseContentPartAdded(
                event_id=self._eid(),
                response_id=rec.id,
                item_id=rec.item_id,
                output_index=0,
                content_index=0,
                part=self._part(rec, ""),
            )
        )

    async def _finish(
        self, rec: _Response, status: Literal["completed", "cancelled", "failed"]
    ) -> None:
        if rec.state == "done":
            return
        rec.state = "done"
        output: list[ConversationItem] = []
        text = "".join(rec.text).strip()
        if rec.engine_id is not None:
            r, it = rec.id, rec.item_id
            if rec.audio:
                if status == "completed":
                    tail = rec.out.flush()
                    if tail:
                        await self._send_audio(rec, tail)
                await self._emit(
                    ResponseOutputAudioDone(
                        event_id=self._eid(),
                        response_id=r,
                        item_id=it,
                        output_index=0,
                        content_index=0,
                    )
                )
                await self._emit(
                    ResponseOutputAudioTranscriptDone(
                        event_id=self._eid(),
                        transcript=text,
                        response_id=r,
                        item_id=it,
                        output_index=0,
                        content_index=0,
                    )
                )
            else:
                await self._emit(
                    ResponseOutputTextDone(
                        event_id=self._eid(),
                        text=text,
                        response_id=r,
                        item_id=it,
                        output_index=0,
                        content_index=0,
                    )
                )
            await self._emit(
                ResponseContentPartDone(
                    event_id=self._eid(),
                    part=self._part(rec, text),
                    response_id=r,
                    item_id=it,
                    output_index=0,
                    content_index=0,
                )
            )
            item = self._assistant_item(rec, "completed" if status == "completed" else "incomplete")
            output.append(item)
            await self._emit(
                ResponseOutputItemDone(
                    event_id=self._eid(), response_id=rec.id, output_index=0, item=item
                )
            )
            entry = self._lookup(rec.item_id) if rec.in_conversation else None
            if entry is not None:
                entry.item = item
                entry.assistant_audio_ms = rec.audio_ms
                await self._emit(
                    ConversationItemDone(
                        event_id=self._eid(), item=item, previous_item_id=self._previous(entry)
                    )
                )
        usage = estimate_usage(rec.input_instructions, rec.input_pieces, text, rec.audio_ms)
        await self._emit(
            WireResponseDone(
                event_id=self._eid(),
                response=self._response_object(
                    rec, status, output, ResponseUsage.from_usage(usage)
                ),
            )
        )
        if self._response is rec:
            self._response = None
        rec.bound.set()
        rec.done.set()

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


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def _describe(item: ConversationItem) -> str:
    if item.type == "function_call_output":
        return f"tool result for call {item.call_id}: {item.output}"
    if item.type == "function_call":
        return f"tool call {item.name}({item.arguments})"
    return f"{item.role}: {item.text}"


def _cut_words(text: str, fraction: float) -> str:
    """The first ``fraction`` of ``text`` in whole words (what was heard up to a cut)."""
    if fraction >= 1.0:
        return text
    cut = int(len(text) * max(0.0, fraction))
    head = text[:cut]
    if cut < len(text) and not text[cut].isspace() and head and not head[-1].isspace():
        head = head.rsplit(None, 1)[0] if " " in head.strip() else ""
    return head.strip()

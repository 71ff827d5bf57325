"""One local Realtime session: client events in, GA server events out.

A thin asyncio shell. The protocol state — conversation items, the one active
response, truncation, the input buffer, waiting function calls — lives in the
sans-I/O :class:`~parley.protocols.openai_realtime.ServerConversation`, and the
events of a response are written by its
:class:`~parley.protocols.openai_realtime.ResponseWriter`. The shell adds what
needs the event loop: the speech input (:mod:`parley.realtime_server.input`: VAD →
turn detector → speculative STT on the backend's shared models), the engine that
writes the replies (given per session from outside: ``engine.send_text`` per
response, its :mod:`parley.events` become ``response.*`` events), and an outbound
queue the I/O shell drains onto the socket. It never touches a socket, so the
tests drive it with frames and read typed events.

Ordering (protocols.md §1.10) comes from one worker task that runs committed user
turns and responses strictly in order: a ``response.create`` sent right after a
commit waits for that turn's transcript. A turn becomes
``input_audio_buffer.committed`` → ``conversation.item.added`` (user,
``input_audio`` without transcript) → ``conversation.item.done`` (with the
transcript) → ``…input_audio_transcription.completed``; a response becomes
``response.created`` → ``response.output_item.added`` → ``conversation.item.added``
→ ``response.content_part.added`` → transcript and audio deltas →
``response.output_audio.done`` → ``response.output_audio_transcript.done`` →
``response.content_part.done`` → ``response.output_item.done`` →
``conversation.item.done`` → ``response.done`` (with the estimated usage of
:mod:`parley.realtime_server.usage`).

``response.cancel`` and barge-in (server VAD with ``interrupt_response``) cancel
the reply at the engine (``Cancellable.cancel_response``): no more of its audio,
and the response ends ``cancelled``.

Function calling (protocols.md §1.6.3) is client-executed: once the client declares
``tools``, the engine gets a :class:`~parley.realtime_server.tools.ClientTools`
runner. (Tools the engine runs itself — the app's, a guided flow's — are the
server's business: their calls are not shown and the reply goes on.) When the model
calls one of the client's, the response gets a ``function_call`` item and
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
once with no output, since an engine answers user text. Both ``server_vad`` and
``semantic_vad`` end turns with the cascade's end-of-turn model
(:mod:`parley.realtime_server.settings`; ``semantic_vad``'s eagerness picks its wait
curve). An unknown voice leaves the voice as it
was (``session.updated`` shows the effective one).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from parley.audio.transcode import ReplyTranscoder
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
    ClientEvent,
    ConversationItemCreate,
    ConversationItemDelete,
    ConversationItemRetrieve,
    ConversationItemTruncate,
    ErrorDetail,
    InputAudioBufferAppend,
    InputAudioBufferClear,
    InputAudioBufferCleared,
    InputAudioBufferCommit,
    InputAudioBufferSpeechStarted,
    InputAudioBufferSpeechStopped,
    RealtimeErrorEvent,
    ResponseCancel,
    ResponseCreate,
    ResponseParams,
    ServerConversation,
    ServerEvent,
    ServerResponse,
    Session,
    SessionCreated,
    SessionUpdate,
    SessionUpdated,
    UnknownClientEvent,
    parse_client_event,
)
from parley.protocols.openai_realtime.server_conversation import PendingCall, describe, new_id
from parley.providers.seams import ToolSpec

from .audio_io import inbound, outbound
from .backend import RealtimeBackend, RealtimeSessionEngine
from .input import InputSignal, SpeechBegan, SpeechEnded, SpeechInput, Utterance
from .settings import (
    audio_in,
    audio_out,
    default_session,
    endpoint_config,
    format_or_default,
    modalities,
    turn_config,
    turn_detection,
    updated_session,
    voice,
)
from .tools import ClientTools, function_specs
from .usage import response_usage

__all__ = ["EventHook", "RealtimeSession"]

#: Called with every engine event before the session maps it (see RealtimeSession).
EventHook = Callable[[Event], Awaitable[None]]

#: How long ``run()`` waits for the pump to show the engine's ToolCall event (so the
#: text before the call is out first); engines that emit none get the call anyway.
_CALL_SEEN_TIMEOUT_S = 2.0

_STOP = object()


@dataclass(slots=True, eq=False)
class _Turn:
    item_id: str
    utterance: Utterance


@dataclass(slots=True, eq=False)
class _Run:
    """What the shell keeps beside a response: its audio path and its two moments."""

    audio: ReplyTranscoder
    bound: asyncio.Event = field(default_factory=asyncio.Event)  # the engine answers it
    done: asyncio.Event = field(default_factory=asyncio.Event)


class RealtimeSession:
    """One WebSocket's worth of Realtime protocol (see the module docstring).

    ``engine`` is this session's own: the session runs it (``run()``) and closes
    it at the end. ``on_event`` is awaited with every engine event before the
    session turns it into server events (the switchboard records transcripts and
    runs the app's handlers there); it must not raise — an exception from it ends
    the session, so a caller that runs user code in it guards that code itself.

    Use: ``events()`` for the outbound stream (ends after ``close()``), ``run()``
    for the background work, ``handle(frame)`` per client frame.
    """

    def __init__(
        self,
        backend: RealtimeBackend,
        engine: RealtimeSessionEngine,
        *,
        model: str = "parley-realtime",
        on_event: EventHook | None = None,
        queue_size: int = 512,
    ) -> None:
        self._backend = backend
        self._engine = engine
        self._on_event = on_event
        self._rate = backend.sample_rate
        self._session = default_session(backend, model)
        self._out: asyncio.Queue[object] = asyncio.Queue(queue_size)
        self._jobs: asyncio.Queue[_Turn | ServerResponse | object] = asyncio.Queue()
        self._eids = itertools.count(1)
        self._closed = False
        self._conv = ServerConversation(self._eid, heard_text, rate=self._rate)
        self._runs: dict[str, _Run] = {}
        self._woken = asyncio.Event()  # a speculative transcript is in: poll the input
        self._hearing = asyncio.Lock()  # one of append / poll hands out turns at a time
        # input
        self._input = SpeechInput(backend.vad, backend.stt, on_transcript=self._woken.set)
        self._in_format = format_or_default(audio_in(self._session).format)
        self._inbound = inbound(self._in_format, self._rate)
        self._vad_item: str | None = None
        self._out_format = format_or_default(audio_out(self._session).format)
        self._instructions = ""
        # client-executed tools (tools.py): given to the engine once the client declares any
        self._tools = ClientTools(self._tool_specs, self._on_tool_call)
        self._tools_given = False
        self._answers: dict[str, asyncio.Future[ToolResult]] = {}  # call_id → the output
        self._seen: dict[str, asyncio.Future[PendingCall | None]] = {}  # run() waiting on pump
        self._orphans: set[str] = set()  # calls made while no response was live
        self._configure_turns()
        self._out.put_nowait(SessionCreated(event_id=self._eid(), session=self._session))

    # -- public --------------------------------------------------------------------------

    @property
    def session(self) -> Session:
        """The effective session configuration."""
        return self._session

    @property
    def conversation(self) -> ServerConversation:
        """The protocol state (items, responses, calls, the input buffer)."""
        return self._conv

    @property
    def dropped_input_ms(self) -> float:
        """Uncommitted input audio dropped because the buffer was full."""
        return self._conv.buffer.dropped_ms

    async def events(self) -> AsyncIterator[ServerEvent]:
        while (event := await self._out.get()) is not _STOP:
            yield event  # type: ignore[misc]

    async def run(self) -> None:
        """The engine, its event pump and the turn/response worker, until ``close()``."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._engine.run())
                tg.create_task(self._pump())
                poller = tg.create_task(self._poller())
                await self._worker()
                poller.cancel()
                await self._engine.close()
        finally:
            self._closed = True
            await self._input.close()
            while self._out.full():  # the end must get through
                self._out.get_nowait()
            self._out.put_nowait(_STOP)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            rec = self._conv.current
            if rec is not None and (run := self._runs.get(rec.id)) is not None:
                run.done.set()
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
        conv = self._conv
        if isinstance(event, InputAudioBufferAppend):
            await self._append(event.audio_bytes())
        elif isinstance(event, SessionUpdate):
            await self._update_session(event.session)
        elif isinstance(event, InputAudioBufferCommit):
            await self._manual_commit()
        elif isinstance(event, InputAudioBufferClear):
            conv.buffer.clear()
            self._reset_turns()
            await self._emit(InputAudioBufferCleared(event_id=self._eid()))
        elif isinstance(event, ConversationItemCreate):
            entry, events = conv.create_item(event)
            await self._emit_all(events)
            item = entry.item
            # Words that are not the user's go to the engine as context, not as a turn.
            if not entry.sent and not (item.type == "message" and item.role == "user"):
                entry.sent = True
                await self._engine.inject_context(f"item:{entry.id}", describe(item))
        elif isinstance(event, ConversationItemDelete):
            entry, events = conv.delete_item(event.item_id)
            item = entry.item
            if entry.sent and not (item.type == "message" and item.role == "user"):
                await self._engine.inject_context(f"item:{entry.id}", "")
            await self._emit_all(events)
        elif isinstance(event, ConversationItemTruncate):
            rec, events = conv.truncate(event)
            if rec is not None and rec.engine_id is not None:
                await self._engine.report_playback(rec.engine_id, float(event.audio_end_ms))
            await self._emit_all(events)
        elif isinstance(event, ConversationItemRetrieve):
            await self._emit_all(conv.retrieve(event.item_id))
        elif isinstance(event, ResponseCreate):
            params = event.response if isinstance(event.response, ResponseParams) else None
            self._create_response(params)
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
        old = self._session
        new = updated_session(old, update, self._backend.voices)
        # Everything checked: apply.
        self._session = new
        in_fmt = format_or_default(audio_in(new).format)
        if in_fmt != self._in_format:
            self._in_format, self._inbound = in_fmt, inbound(in_fmt, self._rate)
        self._out_format = format_or_default(audio_out(new).format)
        if audio_in(new).turn_detection != audio_in(old).turn_detection:
            self._configure_turns()
        instructions = new.instructions if isinstance(new.instructions, str) else ""
        if instructions != self._instructions:
            self._instructions = instructions
            await self._engine.update(instructions=instructions)
        if (new.tools, new.tool_choice) != (old.tools, old.tool_choice):
            await self._give_tools()
        await self._emit(SessionUpdated(event_id=self._eid(), session=new))

    async def _give_tools(self) -> None:
        # Only once the client declares tools: an engine's own tools stay until then.
        if self._tools_given or self._tool_specs():
            self._tools_given = True
            await self._engine.update(tools=self._tools)

    def _tool_specs(self) -> tuple[ToolSpec, ...]:
        rec = self._conv.current
        tools = self._session.tools if isinstance(self._session.tools, list) else []
        choice: object = self._session.tool_choice
        if rec is not None and rec.tools is not None:
            tools = rec.tools
        if rec is not None and rec.tool_choice is not None:
            choice = rec.tool_choice
        return function_specs(tools, choice)

    def _client_call(self, call: ToolCall) -> bool:
        """Whether ``call`` is of a tool the client declared (it runs it), rather than
        one the server's engine runs itself."""
        return self._tools_given and any(s.name == call.name for s in self._tool_specs())

    def _configure_turns(self) -> None:
        td = turn_detection(self._session)
        if td is None:
            self._input.configure(None)
        else:
            self._input.configure(turn_config(td), endpoint_config(td))
        self._vad_item = None

    def _reset_turns(self) -> None:
        self._input.reset()
        self._vad_item = None

    # -- input audio ---------------------------------------------------------------------

    async def _append(self, data: bytes) -> None:
        pcm = self._inbound.process(data)
        if not pcm:
            return
        self._conv.buffer.append(pcm)
        async with self._hearing:
            await self._heard(await self._input.push(pcm))

    async def _poller(self) -> None:
        while True:
            await self._woken.wait()
            self._woken.clear()
            async with self._hearing:
                await self._heard(self._input.poll())

    async def _heard(self, signals: list[InputSignal]) -> None:
        for signal in signals:
            if isinstance(signal, SpeechBegan):
                await self._speech_began(signal)
            else:
                await self._speech_ended(signal)

    async def _speech_began(self, signal: SpeechBegan) -> None:
        self._vad_item = new_id("item")
        await self._emit(
            InputAudioBufferSpeechStarted(
                event_id=self._eid(),
                audio_start_ms=int(signal.audio_start_ms),
                item_id=self._vad_item,
            )
        )
        td = turn_detection(self._session)
        if td is not None and td.interrupt_response is not False:
            await self._cancel("turn_detected", None)

    async def _speech_ended(self, signal: SpeechEnded) -> None:
        item_id = self._vad_item or new_id("item")
        self._vad_item = None
        await self._emit(
            InputAudioBufferSpeechStopped(
                event_id=self._eid(), audio_end_ms=int(signal.audio_end_ms), item_id=item_id
            )
        )
        self._conv.buffer.clear()
        await self._commit(item_id, signal.utterance)
        td = turn_detection(self._session)
        if td is not None and td.create_response is not False and self._conv.active is None:
            self._create_response(None)

    async def _manual_commit(self) -> None:
        buffer = self._conv.buffer
        buffer.append(self._inbound.flush())
        audio = buffer.take()  # refuses under 100 ms
        item_id = self._vad_item or new_id("item")
        self._reset_turns()  # the committed audio must not end a VAD turn later as well
        await self._commit(item_id, self._input.utterance(audio))

    async def _commit(self, item_id: str, utterance: Utterance) -> None:
        ms = len(utterance.audio) / 2 / self._rate * 1000
        await self._emit_all(self._conv.commit_audio(item_id, ms))
        self._jobs.put_nowait(_Turn(item_id, utterance))

    # -- the worker: turns and responses, in order -----------------------------------------

    async def _worker(self) -> None:
        while (job := await self._jobs.get()) is not _STOP:
            if isinstance(job, _Turn):
                await self._finish_turn(job)
            elif isinstance(job, ServerResponse):
                try:
                    await self._run_response(job)
                finally:
                    self._runs.pop(job.id, None)

    async def _finish_turn(self, turn: _Turn) -> None:
        result = await turn.utterance.transcript()
        report = audio_in(self._session).transcription is not None
        if isinstance(result, ParleyError):
            code = getattr(result, "code", "stt_failed")
            events = self._conv.transcription_failed(turn.item_id, code, str(result), report=report)
        else:
            events = self._conv.transcribed(turn.item_id, result.text.strip(), report=report)
        await self._emit_all(events)

    # -- responses -------------------------------------------------------------------------

    def _create_response(self, params: ResponseParams | None) -> None:
        rec = self._conv.create_response(
            params,
            modalities=modalities(self._session),
            out_format=self._out_format,
            voice=voice(self._session),
        )
        self._queue(rec)

    def _queue(self, rec: ServerResponse) -> None:
        self._runs[rec.id] = _Run(outbound(rec.out.format))
        self._jobs.put_nowait(rec)

    async def _run_response(self, rec: ServerResponse) -> None:
        run = self._runs[rec.id]
        turn, events = self._conv.begin(rec, self._instructions)
        await self._emit_all(events)
        if rec.cancel_reason is not None:
            await self._finish(rec, "cancelled")
            return
        if not turn.texts and not turn.answered:
            await self._finish(rec, "completed")
            return
        self._conv.start(rec, turn.answered)
        override = rec.instructions is not None and rec.instructions != self._instructions
        tools_override = rec.tools is not None or rec.tool_choice is not None
        try:
            if override:
                await self._engine.update(instructions=rec.instructions)
            if tools_override:
                await self._give_tools()
            if turn.answered:
                # The engine's reply goes on where it stopped: its events are this one's.
                run.bound.set()
                for pending in turn.answered:
                    self._deliver(pending)
            else:
                await self._engine.send_text("\n".join(turn.texts))
            try:
                async with asyncio.timeout(self._backend.response_start_timeout_s):
                    await run.bound.wait()
            except TimeoutError:
                await self._emit_error("server_error", "the engine did not start a reply")
                await self._finish(rec, "failed")
            await run.done.wait()
        finally:
            self._conv.stopped(rec)
            if override:
                await self._engine.update(instructions=self._instructions)
            if tools_override:
                await self._give_tools()

    async def _cancel(self, reason: str, response_id: str | None) -> bool:
        rec = self._conv.cancellable(reason, response_id)
        if rec is None:
            return False
        if rec.state == "queued":
            return True  # the worker reports it (created, then done: cancelled)
        run = self._runs.get(rec.id)
        if run is not None:
            run.audio.reset()
        if rec.engine_id is not None:
            await self._engine.cancel_response(rec.engine_id)
        await self._finish(rec, "cancelled")
        return True

    async def _finish(
        self, rec: ServerResponse, status: Literal["completed", "cancelled", "failed"]
    ) -> None:
        if rec.state == "done":
            return
        run = self._runs.get(rec.id)
        tail = run.audio.flush() if run is not None and status == "completed" else b""
        await self._emit_all(self._conv.finish(rec, status, response_usage, tail))
        if run is not None:
            run.bound.set()
            run.done.set()

    # -- client-executed function calls (tools.py, protocols.md §1.6.3) ---------------------

    async def _on_tool_call(self, call: ToolCall) -> ToolResult:
        """The engine's model called a client tool: the call goes to the client, the
        response ends, and the engine waits here for the client's output."""
        pending = self._conv.calls.get(call.call_id)
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
        self._orphans.discard(call.call_id)
        answer = self._answers.get(call.call_id)
        if pending is None or answer is None:
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
                    return await asyncio.shield(answer)
            except TimeoutError:
                if pending.result is None:  # answered but not yet asked on: keep waiting
                    await self._expire(pending)
                return await answer
        finally:
            self._conv.calls.pop(call.call_id, None)
            self._answers.pop(call.call_id, None)

    async def _show_call(self, call: ToolCall) -> PendingCall | None:
        """Emit the function call item in the live response; None if none is live."""
        shown = self._conv.show_call(call)
        if shown is None:
            return None
        pending, events = shown
        self._answers[call.call_id] = asyncio.get_running_loop().create_future()
        await self._emit_all(events)
        return pending

    def _deliver(self, pending: PendingCall) -> None:
        """The model gets the call's result: its continuation may stream now."""
        pending.delivered = True
        answer = self._answers.get(pending.call_id)
        if pending.result is not None and answer is not None and not answer.done():
            answer.set_result(pending.result)

    async def _expire(self, pending: PendingCall) -> None:
        """No output in time: the model is told the call failed, the client is told why,
        and the model's continuation streams as a response the server starts."""
        timeout = self._backend.tool_output_timeout_s
        message = (
            f"No function_call_output for call_id '{pending.call_id}' ({pending.call.name}) "
            f"within {timeout:g} s; the model was told the call failed."
        )
        await self._emit_error(
            "function_call_output_timeout", message, kind="invalid_request_error"
        )
        failed = json.dumps({"error": "the client did not return the function's output in time"})
        self._conv.expire(pending, ToolResult(pending.call_id, pending.call.name, failed, True))
        rec = None
        if not self._closed:
            rec = self._conv.continuation(
                pending,
                modalities=modalities(self._session),
                out_format=self._out_format,
                voice=voice(self._session),
            )
        if rec is not None:
            self._queue(rec)
        else:
            self._deliver(pending)  # the client is busy: the continuation goes unheard

    # -- engine events → server events ----------------------------------------------------

    async def _pump(self) -> None:
        async for event in self._engine.events():
            if self._on_event is not None:
                await self._on_event(event)
            await self._on_engine_event(event)
        # The engine ended: nothing more will answer.
        rec = self._conv.current
        if rec is not None and rec.state != "done":
            await self._finish(rec, "failed")

    async def _on_engine_event(self, event: Event) -> None:
        conv = self._conv
        if isinstance(event, AudioDelta):
            rec = conv.live(event.response_id)
            run = self._runs.get(rec.id) if rec is not None and rec.out.audio else None
            if rec is not None and run is not None:
                wire = run.audio.process(event.audio, event.encoding, event.sample_rate)
                await self._emit_all(conv.writer.audio(rec.out, wire))
        elif isinstance(event, TextDelta):
            rec = conv.live(event.response_id)
            if rec is not None:
                await self._emit_all(conv.writer.text(rec.out, event.text))
        elif isinstance(event, ToolCall):
            if not self._client_call(event):
                return  # run by the engine's own tools (the app's, a flow's): not the client's
            pending = await self._show_call(event)
            if pending is None:
                self._orphans.add(event.call_id)
            seen = self._seen.get(event.call_id)
            if seen is not None and not seen.done():
                seen.set_result(pending)
        elif isinstance(event, ResponseStarted):
            current = conv.current
            if conv.started(event.response_id) and current is not None:
                run = self._runs.get(current.id)
                if run is not None:
                    run.bound.set()
        elif isinstance(event, ResponseDone):
            rec = conv.live(event.response_id)
            if rec is not None:
                out = rec.out
                if not out.text and not out.outputs and not rec.resume and event.text:
                    await self._emit_all(conv.writer.text(out, event.text))  # no TextDelta
                status: Literal["completed", "cancelled", "failed"] = (
                    "failed"
                    if event.status == "failed"
                    else ("cancelled" if event.status == "cancelled" else "completed")
                )
                await self._finish(rec, status)
        elif isinstance(event, ErrorEvent):
            await self._emit_error(event.code, event.message, kind="server_error")

    # -- plumbing --------------------------------------------------------------------------

    def _eid(self) -> str:
        return f"event_{next(self._eids)}"

    async def _emit(self, event: ServerEvent) -> None:
        if not self._closed:
            await self._out.put(event)

    async def _emit_all(self, events: list[ServerEvent]) -> None:
        for event in events:
            await self._emit(event)

    async def _emit_error(self, code: str, message: str, *, kind: str = "server_error") -> None:
        detail = ErrorDetail(type=kind, code=code, message=message)
        await self._emit(RealtimeErrorEvent(event_id=self._eid(), error=detail))

"""One response's output as GA server events: the assistant message and function calls.

A :class:`ResponseRecord` is what the session knows about one ``response.create``;
:class:`ResponseWriter` turns what the engine makes for it into the events a
Realtime client expects, in the reference order (protocols.md §1.10):

- a message item, opened at the first text or audio (``response.output_item.added``
  → ``conversation.item.added`` → ``response.content_part.added``), fed with
  ``response.output_audio_transcript.delta``/``response.output_audio.delta`` (or
  ``response.output_text.delta``), and closed (``…audio.done`` →
  ``…audio_transcript.done`` → ``content_part.done`` → ``output_item.done`` →
  ``conversation.item.done``);
- a function call item (§1.6.3): ``response.output_item.added`` (``in_progress``) →
  ``conversation.item.added`` → ``response.function_call_arguments.delta`` →
  ``response.function_call_arguments.done`` (with ``name``) →
  ``response.output_item.done`` → ``conversation.item.done``;
- ``response.done`` with every finished item in ``output`` and the usage estimate.

Each item gets the next ``output_index``; a message only opens before the first
function call, since the engine waits for the call's output after it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from parley.audio.transcode import ReplyTranscoder
from parley.events import ToolCall, ToolResult
from parley.protocols.openai_realtime import (
    ContentPart,
    ConversationItem,
    ConversationItemAdded,
    ConversationItemDone,
    Part,
    RealtimeAudioFormat,
    RealtimeResponse,
    ResponseAudio,
    ResponseAudioOutput,
    ResponseContentPartAdded,
    ResponseContentPartDone,
    ResponseCreated,
    ResponseFunctionCallArgumentsDelta,
    ResponseFunctionCallArgumentsDone,
    ResponseOutputAudioDelta,
    ResponseOutputAudioDone,
    ResponseOutputAudioTranscriptDelta,
    ResponseOutputAudioTranscriptDone,
    ResponseOutputItemAdded,
    ResponseOutputItemDone,
    ResponseOutputTextDelta,
    ResponseOutputTextDone,
    ResponseUsage,
    ServerEvent,
    StatusDetails,
    Tool,
    encode_audio,
)
from parley.protocols.openai_realtime import ResponseDone as WireResponseDone

from .usage import InputPiece, estimate_usage

__all__ = ["DELTA_MS", "PendingCall", "ResponseRecord", "ResponseWriter", "new_id"]

#: Audio deltas are cut to at most this much audio, so a client can play as it receives.
DELTA_MS = 200.0

FinalStatus = Literal["completed", "cancelled", "failed"]


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


@dataclass(slots=True)
class PendingCall:
    """A function call the model made and the client has not answered yet.

    ``result`` is set by the client's ``function_call_output`` (or by the answer
    timeout); ``future`` is resolved when a response delivers it to the engine, so
    the continuation streams into that response."""

    call: ToolCall
    item_id: str
    engine_id: str | None
    future: asyncio.Future[ToolResult]
    result: ToolResult | None = None
    output_item_id: str | None = None  # the client's function_call_output item
    response: ResponseRecord | None = None  # the one whose output carries the call

    @property
    def call_id(self) -> str:
        return self.call.call_id


@dataclass(slots=True)
class ResponseRecord:
    """One ``response.create`` (or a server-made response) and its progress."""

    id: str
    item_id: str  # the assistant message item, once opened
    modalities: list[Literal["text", "audio"]]
    out: ReplyTranscoder
    out_format: RealtimeAudioFormat
    in_conversation: bool
    instructions: str | None  # a per-response override
    inputs: list[str] | None  # texts of ``response.input``, when given
    tools: list[Tool] | None = None  # a per-response override
    tool_choice: str | dict[str, object] | None = None
    resume: list[PendingCall] = field(default_factory=list)  # calls this one answers
    state: Literal["queued", "active", "done"] = "queued"
    cancel_reason: str | None = None
    engine_id: str | None = None
    text: list[str] = field(default_factory=list)
    audio_ms: float = 0.0
    message: Literal["none", "open", "closed"] = "none"
    message_index: int = 0
    outputs: list[ConversationItem] = field(default_factory=list)  # finished items
    arguments: list[str] = field(default_factory=list)  # of its function calls (usage)
    input_pieces: list[InputPiece] = field(default_factory=list)
    input_instructions: str = ""
    bound: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def audio(self) -> bool:
        return "audio" in self.modalities

    @property
    def next_index(self) -> int:
        return len(self.outputs) + (1 if self.message == "open" else 0)


#: Adds a model-made item to the conversation; returns its ``previous_item_id``.
ItemAdded = Callable[[ConversationItem], str | None]
#: Replaces a model-made item with its final form (and its audio length); returns
#: whether it is still in the conversation and its ``previous_item_id``.
ItemDone = Callable[[ConversationItem, float], tuple[bool, str | None]]


class ResponseWriter:
    """Emits one session's response events (see the module docstring)."""

    def __init__(
        self,
        emit: Callable[[ServerEvent], Awaitable[None]],
        eid: Callable[[], str],
        voice: Callable[[], str | None],
        item_added: ItemAdded,
        item_done: ItemDone,
    ) -> None:
        self._emit = emit
        self._eid = eid
        self._voice = voice
        self._item_added = item_added
        self._item_done = item_done

    # -- the response object ---------------------------------------------------------

    def response_object(
        self,
        rec: ResponseRecord,
        status: Literal["in_progress", "completed", "cancelled", "failed"],
        usage: ResponseUsage | None = None,
    ) -> RealtimeResponse:
        details: StatusDetails | None = None
        if status == "cancelled":
            details = StatusDetails(type="cancelled", reason=rec.cancel_reason)
        elif status == "failed":
            details = StatusDetails(type="failed", error={"type": "server_error"})
        return RealtimeResponse(
            id=rec.id,
            object="realtime.response",
            status=status,
            status_details=details,
            output=[] if status == "in_progress" else list(rec.outputs),
            conversation_id="conv_default" if rec.in_conversation else None,
            output_modalities=rec.modalities,
            max_output_tokens="inf",
            audio=ResponseAudio(
                output=ResponseAudioOutput(format=rec.out_format, voice=self._voice())
            ),
            metadata=None,
            usage=usage,
        )

    async def created(self, rec: ResponseRecord) -> None:
        await self._emit(
            ResponseCreated(event_id=self._eid(), response=self.response_object(rec, "in_progress"))
        )

    # -- the assistant message ---------------------------------------------------------

    def _message_item(
        self, rec: ResponseRecord, status: Literal["in_progress", "completed", "incomplete"]
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

    def _part(self, rec: ResponseRecord, text: str) -> Part:
        return Part(type="audio", transcript=text) if rec.audio else Part(type="text", text=text)

    async def open_message(self, rec: ResponseRecord) -> bool:
        """Open the message item if it is not yet; False once it was closed."""
        if rec.message == "closed":
            return False
        if rec.message == "open":
            return True
        rec.message_index = rec.next_index
        rec.message = "open"
        item = self._message_item(rec, "in_progress")
        await self._emit(
            ResponseOutputItemAdded(
                event_id=self._eid(), response_id=rec.id, output_index=rec.message_index, item=item
            )
        )
        if rec.in_conversation:
            previous = self._item_added(item)
            await self._emit(
                ConversationItemAdded(event_id=self._eid(), item=item, previous_item_id=previous)
            )
        await self._emit(
            ResponseContentPartAdded(
                event_id=self._eid(),
                response_id=rec.id,
                item_id=rec.item_id,
                output_index=rec.message_index,
                content_index=0,
                part=self._part(rec, ""),
            )
        )
        return True

    async def text(self, rec: ResponseRecord, delta: str) -> None:
        if not delta or not await self.open_message(rec):
            return
        rec.text.append(delta)
        cls = ResponseOutputAudioTranscriptDelta if rec.audio else ResponseOutputTextDelta
        await self._emit(
            cls(
                event_id=self._eid(),
                response_id=rec.id,
                item_id=rec.item_id,
                output_index=rec.message_index,
                content_index=0,
                delta=delta,
            )
        )

    async def audio(self, rec: ResponseRecord, wire: bytes) -> None:
        if not wire or not await self.open_message(rec):
            return
        await self._audio_deltas(rec, wire)

    async def _audio_deltas(self, rec: ResponseRecord, wire: bytes) -> None:
        fmt = rec.out_format
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
                    output_index=rec.message_index,
                    content_index=0,
                    delta=encode_audio(chunk),
                )
            )

    async def close_message(self, rec: ResponseRecord, status: FinalStatus) -> None:
        """Close the open message (a no-op when none is open)."""
        if rec.message != "open":
            rec.message = "closed"
            return
        r, it, index = rec.id, rec.item_id, rec.message_index
        text = "".join(rec.text).strip()
        if rec.audio:
            if status == "completed":
                tail = rec.out.flush()
                if tail:
                    await self._audio_deltas(rec, tail)
            await self._emit(
                ResponseOutputAudioDone(
                    event_id=self._eid(),
                    response_id=r,
                    item_id=it,
                    output_index=index,
                    content_index=0,
                )
            )
            await self._emit(
                ResponseOutputAudioTranscriptDone(
                    event_id=self._eid(),
                    transcript=text,
                    response_id=r,
                    item_id=it,
                    output_index=index,
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
                    output_index=index,
                    content_index=0,
                )
            )
        await self._emit(
            ResponseContentPartDone(
                event_id=self._eid(),
                part=self._part(rec, text),
                response_id=r,
                item_id=it,
                output_index=index,
                content_index=0,
            )
        )
        rec.message = "closed"
        item = self._message_item(rec, "completed" if status == "completed" else "incomplete")
        rec.outputs.insert(index, item)
        await self._emit(
            ResponseOutputItemDone(
                event_id=self._eid(), response_id=r, output_index=index, item=item
            )
        )
        if rec.in_conversation:
            found, previous = self._item_done(item, rec.audio_ms)
            if found:
                await self._emit(
                    ConversationItemDone(event_id=self._eid(), item=item, previous_item_id=previous)
                )

    # -- function calls ------------------------------------------------------------------

    async def function_call(self, rec: ResponseRecord, call: ToolCall, item_id: str) -> None:
        """The whole function call item: the engine has the complete arguments."""
        await self.close_message(rec, "completed")
        index = rec.next_index
        started = ConversationItem(
            type="function_call",
            id=item_id,
            object="realtime.item",
            status="in_progress",
            call_id=call.call_id,
            name=call.name,
            arguments="",
        )
        await self._emit(
            ResponseOutputItemAdded(
                event_id=self._eid(), response_id=rec.id, output_index=index, item=started
            )
        )
        if rec.in_conversation:
            previous = self._item_added(started)
            await self._emit(
                ConversationItemAdded(event_id=self._eid(), item=started, previous_item_id=previous)
            )
        if call.arguments:
            # The engine's seam gives whole calls, so the arguments are one delta.
            await self._emit(
                ResponseFunctionCallArgumentsDelta(
                    event_id=self._eid(),
                    response_id=rec.id,
                    item_id=item_id,
                    output_index=index,
                    call_id=call.call_id,
                    delta=call.arguments,
                )
            )
        await self._emit(
            ResponseFunctionCallArgumentsDone(
                event_id=self._eid(),
                response_id=rec.id,
                item_id=item_id,
                output_index=index,
                call_id=call.call_id,
                arguments=call.arguments,
                name=call.name,
            )
        )
        item = ConversationItem(
            type="function_call",
            id=item_id,
            object="realtime.item",
            status="completed",
            call_id=call.call_id,
            name=call.name,
            arguments=call.arguments,
        )
        rec.outputs.append(item)
        rec.arguments.append(call.arguments)
        await self._emit(
            ResponseOutputItemDone(
                event_id=self._eid(), response_id=rec.id, output_index=index, item=item
            )
        )
        if rec.in_conversation:
            found, previous = self._item_done(item, 0.0)
            if found:
                await self._emit(
                    ConversationItemDone(event_id=self._eid(), item=item, previous_item_id=previous)
                )

    # -- the end -------------------------------------------------------------------------

    async def done(self, rec: ResponseRecord, status: FinalStatus) -> None:
        """Close what is open and send ``response.done`` (the caller marks the record)."""
        await self.close_message(rec, status)
        text = "".join(rec.text).strip()
        out_text = " ".join([text, *rec.arguments]).strip()
        usage = estimate_usage(rec.input_instructions, rec.input_pieces, out_text, rec.audio_ms)
        await self._emit(
            WireResponseDone(
                event_id=self._eid(),
                response=self.response_object(rec, status, ResponseUsage.from_usage(usage)),
            )
        )

"""The server side of a Realtime conversation, sans-I/O: items, responses, truncation,
the input buffer and client-executed function calls.

:class:`ServerConversation` is what a Realtime server knows between client events:
the conversation items in order (with the audio lengths the usage estimate and
``conversation.item.truncate`` need), the one response writing into the
conversation, the one the model is answering, the calls waiting for the client's
``function_call_output``, and the uncommitted input audio. Each method takes a
typed client event (or a fact from the model side) and returns the server events
to send, in order; a client fault raises ``RemoteProtocolError`` with OpenAI's
code, and nothing has changed then. No asyncio, no sockets: the local Realtime
server (:mod:`parley.realtime_server.session`) is the shell that feeds it, calls
the engine and sends what comes back; the tests drive it directly.

Truncation (protocols.md §1.3): only assistant messages, ``content_index`` 0, and
``audio_end_ms`` up to the audio the item has *so far* — a client that interrupts a
reply while it is still being written (``VoiceClient.interrupt()``) truncates the
live message, which then closes with the words heard up to the cut. The cut text is
made by the ``heard_text`` function the server gives (the engines' own helper).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from parley.errors import RemoteProtocolError
from parley.events import ToolCall, ToolResult

from .client_events import ConversationItemCreate, ConversationItemTruncate
from .items import ContentPart, ConversationItem, ResponseAudio, ResponseAudioOutput, ResponseParams
from .response_writer import FinalStatus, HeardText, Modality, ResponseOutput, ResponseWriter
from .server_events import (
    ConversationItemAdded,
    ConversationItemDeleted,
    ConversationItemDone,
    ConversationItemRetrieved,
    ConversationItemTruncated,
    ErrorDetail,
    InputAudioBufferCommitted,
    InputAudioTranscriptionCompleted,
    InputAudioTranscriptionFailed,
    ServerEvent,
)
from .session import RealtimeAudioFormat, Tool
from .usage import ResponseUsage, TranscriptionUsage

__all__ = [
    "MAX_BUFFER_MS",
    "MIN_COMMIT_MS",
    "InputBuffer",
    "ItemEntry",
    "PendingCall",
    "ResponseInput",
    "ServerConversation",
    "ServerResponse",
    "check_format",
    "describe",
    "new_id",
]

#: Shortest commit OpenAI accepts (protocols.md §1.11).
MIN_COMMIT_MS = 100.0
#: Most input audio kept uncommitted; older audio is dropped (and counted).
MAX_BUFFER_MS = 120_000.0

#: A conversation item as the usage estimate sees it: (text, user-audio ms, assistant-audio ms).
InputPiece = tuple[str, float, float]


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def check_format(fmt: RealtimeAudioFormat, where: str) -> None:
    """GA ``audio/pcm`` is 24 kHz only."""
    if fmt.type == "audio/pcm" and fmt.sample_rate != 24000:
        raise RemoteProtocolError(
            f"{where}.rate: audio/pcm is 24000 Hz only, got {fmt.sample_rate}",
            code="invalid_value",
        )


def describe(item: ConversationItem) -> str:
    """An item as one line of text (what a model that answers text is told of it)."""
    if item.type == "function_call_output":
        return f"tool result for call {item.call_id}: {item.output}"
    if item.type == "function_call":
        return f"tool call {item.name}({item.arguments})"
    return f"{item.role}: {item.text}"


def _piece_text(item: ConversationItem) -> str:
    """What an item adds to the model's input text (for the usage estimate)."""
    if item.type == "function_call":
        return f"{item.name}{item.arguments}" if isinstance(item.arguments, str) else ""
    if item.type == "function_call_output":
        return item.output if isinstance(item.output, str) else ""
    return item.text


def _is_user_message(item: ConversationItem) -> bool:
    return item.type == "message" and item.role == "user"


class InputBuffer:
    """The uncommitted input audio: PCM16 mono at ``rate``, at most ``max_ms`` of it
    (older audio is dropped and counted), taken whole by a commit."""

    def __init__(self, rate: int, max_ms: float = MAX_BUFFER_MS) -> None:
        self.rate = rate
        self._limit = int(max_ms * rate / 1000) * 2
        self._pcm = bytearray()
        self.dropped_ms = 0.0

    @property
    def ms(self) -> float:
        return len(self._pcm) / 2 / self.rate * 1000

    def append(self, pcm: bytes) -> None:
        self._pcm += pcm
        excess = len(self._pcm) - self._limit
        if excess > 0:
            del self._pcm[:excess]
            self.dropped_ms += excess / 2 / self.rate * 1000

    def clear(self) -> None:
        self._pcm.clear()

    def take(self) -> bytes:
        """Everything for ``input_audio_buffer.commit``; under 100 ms is refused."""
        if self.ms < MIN_COMMIT_MS:
            raise RemoteProtocolError(
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS:.0f}ms of audio, but buffer only has {self.ms:.2f}ms of audio.",
                code="input_audio_buffer_commit_empty",
            )
        audio = bytes(self._pcm)
        self._pcm.clear()
        return audio


@dataclass(slots=True, eq=False)
class ItemEntry:
    """A conversation item plus what the server knows about it."""

    item: ConversationItem
    user_audio_ms: float = 0.0
    assistant_audio_ms: float = 0.0
    sent: bool = False  # its words were given to the model

    @property
    def id(self) -> str:
        return self.item.id if isinstance(self.item.id, str) else ""


@dataclass(slots=True, eq=False)
class PendingCall:
    """A function call the model made and the client has not answered yet.

    ``result`` is set by the client's ``function_call_output`` (or by the answer
    timeout); ``delivered`` once a response has handed it to the model, whose
    continuation then streams into that response."""

    call: ToolCall
    item_id: str
    engine_id: str | None
    response: ServerResponse | None  # the one whose output carries the call
    result: ToolResult | None = None
    output_item_id: str | None = None  # the client's function_call_output item
    delivered: bool = False

    @property
    def call_id(self) -> str:
        return self.call.call_id


@dataclass(slots=True, eq=False)
class ServerResponse:
    """One ``response.create`` (or a server-made response) and its progress."""

    out: ResponseOutput
    instructions: str | None = None  # a per-response override
    inputs: list[str] | None = None  # texts of ``response.input``, when given
    tools: list[Tool] | None = None  # a per-response override
    tool_choice: str | dict[str, object] | None = None
    resume: list[PendingCall] = field(default_factory=list)  # calls this one answers
    state: Literal["queued", "active", "done"] = "queued"
    engine_id: str | None = None  # the model's id for the reply it is writing here
    input_pieces: list[InputPiece] = field(default_factory=list)
    input_instructions: str = ""

    @property
    def id(self) -> str:
        return self.out.id

    @property
    def cancel_reason(self) -> str | None:
        return self.out.cancel_reason


@dataclass(frozen=True, slots=True)
class ResponseInput:
    """What :meth:`ServerConversation.begin` hands the model for one response."""

    texts: list[str]  # new user words (empty for a continuation)
    answered: list[PendingCall]  # waiting calls whose outputs this response delivers


class ServerConversation:
    """See the module docstring. ``ids`` makes event ids; ``rate`` is the input
    buffer's sample rate."""

    def __init__(self, ids: Callable[[], str], heard_text: HeardText, *, rate: int) -> None:
        self._eid = ids
        self.items: list[ItemEntry] = []
        self.buffer = InputBuffer(rate)
        self.writer = ResponseWriter(ids, self, heard_text)
        self._heard_text = heard_text
        self.active: ServerResponse | None = None  # the one writing into the conversation
        self.current: ServerResponse | None = None  # the one the model is answering
        self._by_engine: dict[str, ServerResponse] = {}
        self.calls: dict[str, PendingCall] = {}  # call_id → unanswered call
        self.expired: set[str] = set()  # calls whose answer timed out

    # -- items ---------------------------------------------------------------------------

    def lookup(self, item_id: str) -> ItemEntry | None:
        for entry in self.items:
            if entry.id == item_id:
                return entry
        return None

    def find(self, item_id: str) -> ItemEntry:
        entry = self.lookup(item_id)
        if entry is None:
            raise RemoteProtocolError(
                f"Item with item_id '{item_id}' not found in the conversation.",
                code="item_not_found",
            )
        return entry

    def previous(self, entry: ItemEntry) -> str | None:
        index = self.items.index(entry)
        return self.items[index - 1].id if index > 0 else None

    def item_added(self, item: ConversationItem) -> str | None:
        entry = ItemEntry(item, sent=True)
        self.items.append(entry)
        return self.previous(entry)

    def item_done(self, item: ConversationItem, audio_ms: float) -> tuple[bool, str | None]:
        entry = self.lookup(item.id) if isinstance(item.id, str) else None
        if entry is None:
            return False, None  # deleted meanwhile
        entry.item = item
        entry.assistant_audio_ms = audio_ms
        return True, self.previous(entry)

    def create_item(self, event: ConversationItemCreate) -> tuple[ItemEntry, list[ServerEvent]]:
        """``conversation.item.create``. A ``function_call_output`` that answers a
        waiting call becomes that call's result (sent on the next ``response.create``)."""
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
        pending = self._answered_call(item) if item.type == "function_call_output" else None
        item_id = item.id if isinstance(item.id, str) and item.id else new_id("item")
        if self.lookup(item_id) is not None:
            raise RemoteProtocolError(
                f"item.id: an item with id '{item_id}' already exists", code="invalid_value"
            )
        prev = event.previous_item_id
        if prev == "root":
            index = 0
        elif isinstance(prev, str):
            index = self.items.index(self.find(prev)) + 1
        else:
            index = len(self.items)
        stored = msgspec.structs.replace(
            item, id=item_id, object="realtime.item", status="completed"
        )
        entry = ItemEntry(stored)
        self.items.insert(index, entry)
        previous = self.previous(entry)
        if pending is not None:
            entry.sent = True  # the model gets it as the tool result, not as words
            output = stored.output if isinstance(stored.output, str) else ""
            pending.result = ToolResult(pending.call_id, pending.call.name, output)
            pending.output_item_id = item_id
        return entry, [
            ConversationItemAdded(event_id=self._eid(), item=stored, previous_item_id=previous),
            ConversationItemDone(event_id=self._eid(), item=stored, previous_item_id=previous),
        ]

    def _answered_call(self, item: ConversationItem) -> PendingCall | None:
        """The waiting call a ``function_call_output`` answers (None: one already in
        the conversation, e.g. a client re-seeding its history); else an error."""
        call_id = item.call_id
        if not isinstance(call_id, str) or not call_id:
            raise RemoteProtocolError(
                "item.call_id: a function_call_output needs the call_id of its function_call",
                code="missing_required_parameter",
            )
        pending = self.calls.get(call_id)
        if pending is not None:
            if pending.result is not None:
                raise RemoteProtocolError(
                    f"item.call_id: tool call ID '{call_id}' already has an output.",
                    code="invalid_tool_call_id",
                )
            return pending
        if call_id in self.expired:
            raise RemoteProtocolError(
                f"Tool call ID '{call_id}' is no longer waiting: no output came in time "
                "and the model was told it failed.",
                code="invalid_tool_call_id",
            )
        for entry in self.items:
            if entry.item.type == "function_call" and entry.item.call_id == call_id:
                return None
        # OpenAI's own code and wording for this case (livekit/agents#3344).
        raise RemoteProtocolError(
            f"Tool call ID '{call_id}' not found in conversation.", code="invalid_tool_call_id"
        )

    def delete_item(self, item_id: str) -> tuple[ItemEntry, list[ServerEvent]]:
        entry = self.find(item_id)
        self.items.remove(entry)
        for pending in self.calls.values():
            if pending.output_item_id == item_id and not pending.delivered:
                pending.result = pending.output_item_id = None  # the answer was taken back
        return entry, [ConversationItemDeleted(event_id=self._eid(), item_id=item_id)]

    def retrieve(self, item_id: str) -> list[ServerEvent]:
        return [ConversationItemRetrieved(event_id=self._eid(), item=self.find(item_id).item)]

    def truncate(
        self, event: ConversationItemTruncate
    ) -> tuple[ServerResponse | None, list[ServerEvent]]:
        """``conversation.item.truncate``; returns the response still writing that item
        (its model should hear how much was played), if any."""
        entry = self.find(event.item_id)
        item = entry.item
        if item.type != "message" or item.role != "assistant":
            raise RemoteProtocolError(
                "Only assistant message items can be truncated", code="invalid_value"
            )
        if event.content_index != 0:
            raise RemoteProtocolError(
                f"content_index {event.content_index} out of range", code="invalid_value"
            )
        rec = self.active
        live = rec if rec is not None and rec.out.message == "open" else None
        if live is not None and live.out.item_id != event.item_id:
            live = None
        total = live.out.audio_ms if live is not None else entry.assistant_audio_ms
        end_ms = event.audio_end_ms
        if end_ms < 0 or end_ms > math.ceil(total):
            raise RemoteProtocolError(
                f"audio_end_ms {end_ms} is longer than the item's audio ({total:.0f} ms)",
                code="invalid_value",
            )
        if live is not None:
            # Still being written: it closes with what was heard (response_writer).
            live.out.truncated_ms = float(end_ms)
        else:
            heard = self._heard_text([(item.text, 0.0, total)], float(end_ms))
            content = (
                [ContentPart(type="output_audio", transcript=heard)]
                if total
                else [ContentPart(type="output_text", text=heard)]
            )
            entry.item = msgspec.structs.replace(item, content=content)
            entry.assistant_audio_ms = float(end_ms)
        truncated = ConversationItemTruncated(
            event_id=self._eid(), item_id=event.item_id, content_index=0, audio_end_ms=end_ms
        )
        return (rec if rec is not None and rec.out.item_id == event.item_id else None), [truncated]

    # -- user audio turns -----------------------------------------------------------------

    def commit_audio(self, item_id: str, audio_ms: float) -> list[ServerEvent]:
        """A user turn of ``audio_ms`` committed (by server VAD or the client): its item,
        whose transcript comes later (:meth:`transcribed`)."""
        previous = self.items[-1].id if self.items else None
        item = ConversationItem(
            type="message",
            id=item_id,
            object="realtime.item",
            status="completed",
            role="user",
            content=[ContentPart(type="input_audio", transcript=None)],
        )
        self.items.append(ItemEntry(item, user_audio_ms=audio_ms))
        return [
            InputAudioBufferCommitted(
                event_id=self._eid(), item_id=item_id, previous_item_id=previous
            ),
            ConversationItemAdded(event_id=self._eid(), item=item, previous_item_id=previous),
        ]

    def transcribed(self, item_id: str, text: str, *, report: bool) -> list[ServerEvent]:
        """The user turn's words; ``report`` adds the transcription event (the session
        asked for transcription)."""
        entry = self.lookup(item_id)
        if entry is None:
            return []  # deleted while it was being transcribed
        entry.item = msgspec.structs.replace(
            entry.item, content=[ContentPart(type="input_audio", transcript=text)]
        )
        events: list[ServerEvent] = [
            ConversationItemDone(
                event_id=self._eid(), item=entry.item, previous_item_id=self.previous(entry)
            )
        ]
        if report:
            usage = TranscriptionUsage(
                type="duration", seconds=round(entry.user_audio_ms / 1000, 3)
            )
            events.append(
                InputAudioTranscriptionCompleted(
                    event_id=self._eid(),
                    item_id=item_id,
                    content_index=0,
                    transcript=text,
                    usage=usage,
                )
            )
        return events

    def transcription_failed(
        self, item_id: str, code: str, message: str, *, report: bool
    ) -> list[ServerEvent]:
        entry = self.lookup(item_id)
        if entry is None:
            return []
        events: list[ServerEvent] = [
            ConversationItemDone(event_id=self._eid(), item=entry.item, previous_item_id=None)
        ]
        if report:
            detail = ErrorDetail(type="server_error", code=code, message=message)
            events.append(
                InputAudioTranscriptionFailed(
                    event_id=self._eid(), item_id=item_id, content_index=0, error=detail
                )
            )
        return events

    # -- responses ------------------------------------------------------------------------

    def create_response(
        self,
        params: ResponseParams | None,
        *,
        modalities: list[Modality],
        out_format: RealtimeAudioFormat,
        voice: str | None,
    ) -> ServerResponse:
        """``response.create`` with the session's ``modalities``/``out_format``/``voice``
        as defaults. One response at a time may write into the conversation."""
        in_conversation = params is None or params.conversation != "none"
        active = self.active
        if in_conversation and active is not None:
            raise RemoteProtocolError(
                f"Conversation already has an active response in progress: {active.id}. "
                "Wait until the response is finished before creating a new one.",
                code="conversation_already_has_active_response",
            )
        mods = list(modalities)
        inputs: list[str] | None = None
        rec = ServerResponse(
            ResponseOutput(new_id("resp"), new_id("item"), out_format, mods, voice)
        )
        if params is not None:
            if isinstance(params.output_modalities, list):
                rec.out.modalities = list(params.output_modalities)
            if isinstance(params.audio, ResponseAudio):
                out = params.audio.output
                if isinstance(out, ResponseAudioOutput) and isinstance(
                    out.format, RealtimeAudioFormat
                ):
                    check_format(out.format, "response.audio.output.format")
                    rec.out.format = out.format
            if isinstance(params.input, list):
                inputs = []
                for it in params.input:
                    if it.type == "item_reference" and isinstance(it.id, str):
                        inputs.append(self.find(it.id).item.text)
                    else:
                        inputs.append(it.text)
            if isinstance(params.instructions, str):
                rec.instructions = params.instructions
            if isinstance(params.tools, list):
                rec.tools = list(params.tools)
            if isinstance(params.tool_choice, str | dict):
                rec.tool_choice = params.tool_choice
        rec.inputs = inputs
        if not in_conversation:
            rec.out.conversation_id = None
        else:
            self.active = rec
        return rec

    def continuation(
        self,
        pending: PendingCall,
        *,
        modalities: list[Modality],
        out_format: RealtimeAudioFormat,
        voice: str | None,
    ) -> ServerResponse | None:
        """A response the server starts itself to carry the model's answer to an expired
        call; None while another response is active (the continuation goes unheard)."""
        if self.active is not None:
            return None
        rec = ServerResponse(
            ResponseOutput(new_id("resp"), new_id("item"), out_format, list(modalities), voice),
            resume=[pending],
        )
        self.active = rec
        return rec

    def _answered(self, rec: ServerResponse) -> list[PendingCall]:
        if rec.resume:
            return rec.resume
        if not rec.out.in_conversation or rec.inputs is not None:
            return []
        return [p for p in self.calls.values() if p.result is not None and not p.delivered]

    def begin(
        self, rec: ServerResponse, instructions: str
    ) -> tuple[ResponseInput, list[ServerEvent]]:
        """The response's turn comes (responses run in order): what it gives the model,
        and ``response.created``. The input is measured for the usage estimate."""
        rec.input_instructions = rec.instructions if rec.instructions is not None else instructions
        answered = self._answered(rec)
        texts: list[str] = []
        if rec.inputs is not None:
            rec.input_pieces = [(t, 0.0, 0.0) for t in rec.inputs]
            texts = [t for t in rec.inputs if t.strip()]
        else:
            rec.input_pieces = [
                (_piece_text(e.item), e.user_audio_ms, e.assistant_audio_ms) for e in self.items
            ]
            # A continuation answers the model's waiting reply; new user words would
            # start another reply (and cut this one off), so they wait for the next.
            for entry in self.items if not answered else ():
                if not entry.sent and _is_user_message(entry.item):
                    entry.sent = True
                    if entry.item.text.strip():
                        texts.append(entry.item.text.strip())
        return ResponseInput(texts, answered), self.writer.created(rec.out)

    def start(self, rec: ServerResponse, answered: list[PendingCall]) -> None:
        """The model is now answering ``rec``; a continuation is bound to the waiting
        reply at once, a new reply at its first :meth:`started`."""
        rec.state = "active"
        self.current = rec
        if answered:
            rec.resume = answered
            self._by_engine = {p.engine_id: rec for p in answered if p.engine_id}
            rec.engine_id = next(iter(self._by_engine), None)
            for pending in answered:
                pending.delivered = True

    def started(self, engine_id: str) -> bool:
        """The model began a reply; True when it binds the current response to it."""
        rec = self.current
        if rec is None or rec.state != "active":
            return False
        if rec.engine_id is None:
            rec.engine_id = engine_id
            self._by_engine = {engine_id: rec}
            return True
        if rec.resume:
            # A model that answers a tool result with a new reply of its own (the
            # realtime engine): that reply continues this response.
            self._by_engine[engine_id] = rec
        return False

    def live(self, engine_id: str) -> ServerResponse | None:
        """The response a model reply writes into, while it is still being written."""
        rec = self._by_engine.get(engine_id)
        return rec if rec is not None and rec.state == "active" else None

    def stopped(self, rec: ServerResponse) -> None:
        """The model is no longer answering ``rec``."""
        if self.current is rec:
            self.current = None

    def cancellable(self, reason: str, response_id: str | None) -> ServerResponse | None:
        """``response.cancel`` (or barge-in, ``reason="turn_detected"``): the active
        response, now marked cancelled; None when there is none to cancel."""
        rec = self.active
        if rec is None or rec.state == "done" or (response_id and response_id != rec.id):
            return None
        if rec.cancel_reason is not None:
            return None
        rec.out.cancel_reason = reason
        return rec

    def finish(
        self,
        rec: ServerResponse,
        status: FinalStatus,
        usage: Callable[[ServerResponse], ResponseUsage] | None = None,
        tail: bytes = b"",
    ) -> list[ServerEvent]:
        """Close the response (``tail``: the last audio) and ``response.done`` with the
        usage ``usage`` estimates once the output is final; nothing if it is done."""
        if rec.state == "done":
            return []
        rec.state = "done"
        events = self.writer.close_message(rec.out, status, tail)
        events += self.writer.done(rec.out, status, usage(rec) if usage is not None else None)
        if self.active is rec:
            self.active = None
        return events

    # -- client-executed function calls ---------------------------------------------------

    def show_call(self, call: ToolCall) -> tuple[PendingCall, list[ServerEvent]] | None:
        """The model called a client tool: its item in the live response (which then
        waits for the client's output); None when no response is live."""
        rec = self.current
        if rec is None or rec.state != "active":
            return None
        pending = PendingCall(call, new_id("item"), rec.engine_id, rec)
        self.calls[call.call_id] = pending
        events = self.writer.function_call(
            rec.out, call.call_id, call.name, call.arguments, pending.item_id
        )
        return pending, events

    def expire(self, pending: PendingCall, result: ToolResult) -> None:
        """No output in time: the call is no longer waiting (a late output is refused)
        and the model gets ``result`` instead."""
        self.calls.pop(pending.call_id, None)
        self.expired.add(pending.call_id)
        pending.result = result

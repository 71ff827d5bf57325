"""The server side of one response, sans-I/O: what a model makes → GA server events.

One choreography for every Realtime *server* Parley has — the local Realtime server
and the scriptable fake upstream of :mod:`parley.testing` — so a client sees the
same event names, fields and order from both (protocols.md §1.10):

- ``response.created``;
- a message item, opened at its first text or audio: ``response.output_item.added``
  → ``conversation.item.added`` → ``response.content_part.added``, then
  ``response.output_audio_transcript.delta`` / ``response.output_audio.delta`` (or
  ``response.output_text.delta``), closed by ``…output_audio.done`` →
  ``…output_audio_transcript.done`` (or ``…output_text.done``) →
  ``response.content_part.done`` → ``response.output_item.done`` →
  ``conversation.item.done``;
- a function call item (§1.6.3): ``response.output_item.added`` (``in_progress``) →
  ``conversation.item.added`` → ``response.function_call_arguments.delta`` →
  ``…arguments.done`` (with ``name``) → ``response.output_item.done`` →
  ``conversation.item.done``;
- ``response.done`` with every finished item in ``output``.

A :class:`ResponseOutput` is one response's progress; :class:`ResponseWriter`
returns the events for each step and never sends anything itself. Each item takes
the next ``output_index``; a message only opens before the first function call
(the model waits for the call's output after it). Items of a response in the
conversation are reported to an :class:`ItemLog`, which answers each with its
``previous_item_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from .items import (
    ContentPart,
    ConversationItem,
    RealtimeResponse,
    ResponseAudio,
    ResponseAudioOutput,
    StatusDetails,
    encode_audio,
)
from .server_events import (
    ConversationItemAdded,
    ConversationItemDone,
    Part,
    ResponseContentPartAdded,
    ResponseContentPartDone,
    ResponseCreated,
    ResponseDone,
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
    ServerEvent,
)
from .session import PCM16_24K, RealtimeAudioFormat
from .usage import ResponseUsage

__all__ = [
    "DELTA_MS",
    "FinalStatus",
    "HeardText",
    "ItemLog",
    "ResponseOutput",
    "ResponseWriter",
]

#: Audio deltas are cut to at most this much audio, so a client can play as it receives.
DELTA_MS: Final = 200.0

FinalStatus = Literal["completed", "cancelled", "failed"]
Modality = Literal["text", "audio"]

#: What the caller heard of a text whose audio spans are given, after some ms of it:
#: :func:`parley.engines.playback.heard_text` (given from above: this layer imports no
#: engine code).
HeardText = Callable[[Sequence[tuple[str, float, float]], float], str]


class ItemLog(Protocol):
    """The conversation a response writes into."""

    def item_added(self, item: ConversationItem) -> str | None:
        """A new model item; returns its ``previous_item_id``."""
        ...

    def item_done(self, item: ConversationItem, audio_ms: float) -> tuple[bool, str | None]:
        """The item's final form (and its audio length); returns whether it is still in
        the conversation (a client may have deleted it) and its ``previous_item_id``."""
        ...


@dataclass(slots=True, eq=False)
class ResponseOutput:
    """One response as it is being written.

    ``conversation_id`` is ``None`` for an out-of-band response (``conversation:
    "none"``): its items go to no :class:`ItemLog`. ``truncated_ms`` is set when the
    client truncates the message while it is still being written (it has heard only
    that much): the message closes with the words heard up to there.
    """

    id: str
    item_id: str  # of the assistant message, once opened
    format: RealtimeAudioFormat = PCM16_24K
    modalities: list[Modality] = field(default_factory=lambda: ["audio"])
    voice: str | None = None
    conversation_id: str | None = "conv_default"
    cancel_reason: str | None = None
    text: list[str] = field(default_factory=list)
    audio_ms: float = 0.0
    message: Literal["none", "open", "closed"] = "none"
    message_index: int = 0
    truncated_ms: float | None = None
    outputs: list[ConversationItem] = field(default_factory=list)  # finished items
    arguments: list[str] = field(default_factory=list)  # of its function calls

    @property
    def audio(self) -> bool:
        return "audio" in self.modalities

    @property
    def in_conversation(self) -> bool:
        return self.conversation_id is not None

    @property
    def transcript(self) -> str:
        return "".join(self.text).strip()

    @property
    def next_index(self) -> int:
        return len(self.outputs) + (1 if self.message == "open" else 0)

    def heard(self, heard_text: HeardText) -> str:
        """The message's text as the client heard it (all of it unless truncated)."""
        if self.truncated_ms is None:
            return self.transcript
        if self.audio_ms <= 0:
            return ""
        return heard_text([(self.transcript, 0.0, self.audio_ms)], self.truncated_ms)


def _scope(out: ResponseOutput) -> dict[str, Any]:
    """The fields that place an event in the response's message content."""
    return {
        "response_id": out.id,
        "item_id": out.item_id,
        "output_index": out.message_index,
        "content_index": 0,
    }


class ResponseWriter:
    """The events of each step of a response (see the module docstring).

    ``ids`` makes event ids; ``items`` is the conversation; ``heard_text`` cuts a
    truncated message's text; ``max_delta_ms`` splits long audio into several deltas
    (``None``: one delta per call of :meth:`audio`).
    """

    def __init__(
        self,
        ids: Callable[[], str],
        items: ItemLog,
        heard_text: HeardText,
        *,
        max_delta_ms: float | None = DELTA_MS,
    ) -> None:
        self._eid = ids
        self._items = items
        self._heard_text = heard_text
        self._max_delta_ms = max_delta_ms

    # -- the response object -----------------------------------------------------------

    def response_object(
        self,
        out: ResponseOutput,
        status: Literal["in_progress", "completed", "cancelled", "failed"],
        usage: ResponseUsage | None = None,
    ) -> RealtimeResponse:
        details: StatusDetails | None = None
        if status == "cancelled":
            details = StatusDetails(type="cancelled", reason=out.cancel_reason)
        elif status == "failed":
            details = StatusDetails(type="failed", error={"type": "server_error"})
        return RealtimeResponse(
            id=out.id,
            object="realtime.response",
            status=status,
            status_details=details,
            output=[] if status == "in_progress" else list(out.outputs),
            conversation_id=out.conversation_id,
            output_modalities=out.modalities,
            max_output_tokens="inf",
            audio=ResponseAudio(output=ResponseAudioOutput(format=out.format, voice=out.voice)),
            metadata=None,
            usage=usage,
        )

    def created(self, out: ResponseOutput) -> list[ServerEvent]:
        return [
            ResponseCreated(event_id=self._eid(), response=self.response_object(out, "in_progress"))
        ]

    # -- the assistant message ---------------------------------------------------------

    def _message_item(
        self,
        out: ResponseOutput,
        status: Literal["in_progress", "completed", "incomplete"],
        text: str = "",
    ) -> ConversationItem:
        content: list[ContentPart] = []
        if status != "in_progress":
            content = [
                ContentPart(type="output_audio", transcript=text)
                if out.audio
                else ContentPart(type="output_text", text=text)
            ]
        return ConversationItem(
            type="message",
            id=out.item_id,
            object="realtime.item",
            status=status,
            role="assistant",
            content=content,
        )

    def _part(self, out: ResponseOutput, text: str) -> Part:
        return Part(type="audio", transcript=text) if out.audio else Part(type="text", text=text)

    def _open_message(self, out: ResponseOutput, events: list[ServerEvent]) -> bool:
        """Open the message if it is not yet (its events go to ``events``); False once
        it was closed."""
        if out.message == "closed":
            return False
        if out.message == "open":
            return True
        out.message_index = out.next_index
        out.message = "open"
        item = self._message_item(out, "in_progress")
        events.append(
            ResponseOutputItemAdded(
                event_id=self._eid(), response_id=out.id, output_index=out.message_index, item=item
            )
        )
        if out.in_conversation:
            previous = self._items.item_added(item)
            events.append(
                ConversationItemAdded(event_id=self._eid(), item=item, previous_item_id=previous)
            )
        events.append(
            ResponseContentPartAdded(event_id=self._eid(), part=self._part(out, ""), **_scope(out))
        )
        return True

    def text(self, out: ResponseOutput, delta: str) -> list[ServerEvent]:
        """A piece of the reply's text (the transcript of its audio, or its text)."""
        events: list[ServerEvent] = []
        if not delta or not self._open_message(out, events):
            return events
        out.text.append(delta)
        cls = ResponseOutputAudioTranscriptDelta if out.audio else ResponseOutputTextDelta
        events.append(cls(event_id=self._eid(), delta=delta, **_scope(out)))
        return events

    def audio(self, out: ResponseOutput, wire: bytes) -> list[ServerEvent]:
        """Reply audio, already in ``out.format``."""
        events: list[ServerEvent] = []
        if wire and self._open_message(out, events):
            self._audio_deltas(out, wire, events)
        return events

    def _audio_deltas(self, out: ResponseOutput, wire: bytes, events: list[ServerEvent]) -> None:
        fmt = out.format.audio_format
        step = len(wire)
        if self._max_delta_ms is not None:
            step = max(1, int(fmt.sample_rate * self._max_delta_ms / 1000)) * fmt.sample_width
        for i in range(0, len(wire), step):
            chunk = wire[i : i + step]
            out.audio_ms += fmt.duration_ms(len(chunk))
            events.append(
                ResponseOutputAudioDelta(
                    event_id=self._eid(), delta=encode_audio(chunk), **_scope(out)
                )
            )

    def close_message(
        self, out: ResponseOutput, status: FinalStatus, tail: bytes = b""
    ) -> list[ServerEvent]:
        """Close the open message (nothing when none is open). ``tail`` is the last
        audio (a resampler's), sent when the message completes."""
        events: list[ServerEvent] = []
        if out.message != "open":
            out.message = "closed"
            return events
        index = out.message_index
        if out.audio and tail and status == "completed" and out.truncated_ms is None:
            self._audio_deltas(out, tail, events)
        text = out.heard(self._heard_text)
        scope = _scope(out)
        if out.audio:
            events.append(ResponseOutputAudioDone(event_id=self._eid(), **scope))
            events.append(
                ResponseOutputAudioTranscriptDone(event_id=self._eid(), transcript=text, **scope)
            )
        else:
            events.append(ResponseOutputTextDone(event_id=self._eid(), text=text, **scope))
        events.append(
            ResponseContentPartDone(event_id=self._eid(), part=self._part(out, text), **scope)
        )
        out.message = "closed"
        complete = status == "completed" and out.truncated_ms is None
        item = self._message_item(out, "completed" if complete else "incomplete", text)
        out.outputs.insert(index, item)
        events.append(
            ResponseOutputItemDone(
                event_id=self._eid(), response_id=out.id, output_index=index, item=item
            )
        )
        if out.in_conversation:
            audio_ms = out.audio_ms if out.truncated_ms is None else out.truncated_ms
            found, previous = self._items.item_done(item, audio_ms)
            if found:
                events.append(
                    ConversationItemDone(event_id=self._eid(), item=item, previous_item_id=previous)
                )
        return events

    # -- function calls ----------------------------------------------------------------

    def function_call(
        self, out: ResponseOutput, call_id: str, name: str, arguments: str, item_id: str
    ) -> list[ServerEvent]:
        """A whole function call item (the model has made the complete arguments)."""
        events = self.close_message(out, "completed")
        index = out.next_index
        started = ConversationItem(
            type="function_call",
            id=item_id,
            object="realtime.item",
            status="in_progress",
            call_id=call_id,
            name=name,
            arguments="",
        )
        events.append(
            ResponseOutputItemAdded(
                event_id=self._eid(), response_id=out.id, output_index=index, item=started
            )
        )
        if out.in_conversation:
            previous = self._items.item_added(started)
            events.append(
                ConversationItemAdded(event_id=self._eid(), item=started, previous_item_id=previous)
            )
        if arguments:
            events.append(
                ResponseFunctionCallArgumentsDelta(
                    event_id=self._eid(),
                    response_id=out.id,
                    item_id=item_id,
                    output_index=index,
                    call_id=call_id,
                    delta=arguments,
                )
            )
        events.append(
            ResponseFunctionCallArgumentsDone(
                event_id=self._eid(),
                response_id=out.id,
                item_id=item_id,
                output_index=index,
                call_id=call_id,
                arguments=arguments,
                name=name,
            )
        )
        item = ConversationItem(
            type="function_call",
            id=item_id,
            object="realtime.item",
            status="completed",
            call_id=call_id,
            name=name,
            arguments=arguments,
        )
        out.outputs.append(item)
        out.arguments.append(arguments)
        events.append(
            ResponseOutputItemDone(
                event_id=self._eid(), response_id=out.id, output_index=index, item=item
            )
        )
        if out.in_conversation:
            found, previous = self._items.item_done(item, 0.0)
            if found:
                events.append(
                    ConversationItemDone(event_id=self._eid(), item=item, previous_item_id=previous)
                )
        return events

    # -- the end -----------------------------------------------------------------------

    def done(
        self,
        out: ResponseOutput,
        status: FinalStatus,
        usage: ResponseUsage | None = None,
        tail: bytes = b"",
    ) -> list[ServerEvent]:
        """Close what is open, then ``response.done`` with ``usage``."""
        events = self.close_message(out, status, tail)
        events.append(
            ResponseDone(event_id=self._eid(), response=self.response_object(out, status, usage))
        )
        return events

"""The client side of a Realtime conversation, sans-I/O: replies, items, truncation,
transcripts.

:class:`ClientConversation` is what a Realtime *client* (``RealtimeEngine``, and
through it ``VoiceClient``) knows between server events: the replies it is being
sent (audio so far, transcript, how much the caller heard), the finished turns of
the conversation (to seed a new session after a reconnect, in order), and what a
barge-in or a cancel must tell the server. It is fed typed server events (and the
client's own acts: typed text, an interrupt, a cancel, a lost connection) and
returns :data:`Action`\\ s in order — :mod:`parley.events` to emit, client events to
:class:`Send`, tools to run — for a thin asyncio shell to carry out. No sockets, no
clock of its own: the shell passes ``now``.

Barge-in (protocols.md §1.10, §2.7): when the caller speaks over a reply that is
still playing, the reply is cut where the caller's ear is (the transport's playback
report, else real time since its first audio): ``Interrupted`` with the words heard,
``conversation.item.truncate`` at those milliseconds, and ``response.cancel`` unless
server VAD cancels by itself. How much was heard comes from a :class:`Playback`
model (``parley.engines.playback``, given from above: this layer imports no engine
code).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeAlias

from parley.audio.format import AudioFormat
from parley.events import (
    AudioDelta,
    ErrorEvent,
    Event,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    ResponseStatus,
    Role,
    TextDelta,
    ToolCall,
    ToolResult,
    TranscriptDelta,
    TranscriptFinal,
    Usage,
    UserSpeechStarted,
    UserSpeechStopped,
)

from .client_events import (
    ClientEvent,
    ConversationItemCreate,
    ConversationItemTruncate,
    ResponseCancel,
    ResponseCreate,
)
from .items import ConversationItem
from .server_events import (
    ErrorCode,
    InputAudioBufferCommitted,
    InputAudioBufferSpeechStarted,
    InputAudioBufferSpeechStopped,
    InputAudioTranscriptionCompleted,
    InputAudioTranscriptionDelta,
    InputAudioTranscriptionFailed,
    RealtimeErrorEvent,
    ResponseCreated,
    ResponseFunctionCallArgumentsDone,
    ResponseOutputAudioDelta,
    ResponseOutputAudioTranscriptDelta,
    ResponseOutputAudioTranscriptDone,
    ResponseOutputItemAdded,
    ResponseOutputTextDelta,
    ServerEvent,
    UnknownServerEvent,
)
from .server_events import (
    ResponseDone as WireResponseDone,
)

__all__ = [
    "Action",
    "ClientConversation",
    "HistoryItem",
    "Playback",
    "Reply",
    "RunTools",
    "Send",
    "SessionExpired",
]

HistoryRole = Literal["user", "assistant", "system", "function_call", "function_call_output"]


class Playback(Protocol):
    """How much of a reply the caller heard (the module ``parley.engines.playback``
    is one: mypy accepts a module for a Protocol)."""

    def estimated_played_ms(
        self, audio_ms: float, played_ms: float | None, first_audio_t: float | None, now: float
    ) -> float: ...

    def still_playing(
        self,
        generating: bool,
        audio_ms: float,
        played_ms: float | None,
        first_audio_t: float | None,
        now: float,
    ) -> bool: ...

    def heard_text(self, segments: Iterable[tuple[str, float, float]], played_ms: float) -> str: ...


@dataclass(frozen=True, slots=True)
class Send:
    """Send this client event (dropped while disconnected: what matters is in the
    history, and goes up with the next session's seed)."""

    event: ClientEvent


@dataclass(frozen=True, slots=True)
class RunTools:
    """Run these calls; hand each result to :meth:`ClientConversation.tool_result`,
    then send what :meth:`ClientConversation.tools_done` returns."""

    calls: tuple[ToolCall, ...]


@dataclass(frozen=True, slots=True)
class SessionExpired:
    """The server ended the session (``session_expired``): open a new one."""


Action: TypeAlias = Event | Send | RunTools | SessionExpired


@dataclass(slots=True, eq=False)
class Reply:
    """One response as the client tracks it."""

    id: str
    item_id: str = ""  # the assistant message item carrying the audio
    transcript: str = ""
    audio_ms: float = 0.0
    first_audio_t: float | None = None
    played_ms: float | None = None  # reported by the transport
    generating: bool = True
    interrupted: bool = False  # cut (barge-in or cancel): the rest is not shown
    cancelled: bool = False  # cancel_response: its ResponseDone went out already
    played_text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    tool_names: dict[str, str] = field(default_factory=dict)  # call_id → name


@dataclass(slots=True, eq=False)
class HistoryItem:
    """One finished (or placeholder) turn of the conversation, for re-seeding."""

    key: str  # server item id, or a local id
    role: HistoryRole
    text: str = ""
    call_id: str = ""
    name: str = ""

    def wire(self) -> ConversationItem | None:
        if self.role == "function_call":
            return ConversationItem.function_call(self.call_id, self.name, self.text)
        if self.role == "function_call_output":
            return ConversationItem.function_call_output(self.call_id, self.text)
        if not self.text:
            return None
        if self.role == "user":
            return ConversationItem.user_text(self.text)
        if self.role == "assistant":
            return ConversationItem.assistant_text(self.text)
        return ConversationItem.system_text(self.text)


class ClientConversation:
    """See the module docstring.

    ``audio`` is the wire format of both directions (what ``AudioDelta`` carries);
    ``server_cancels`` says server VAD cancels a reply on speech by itself
    (``interrupt_response``); ``transcription`` that user transcripts will come.
    """

    def __init__(
        self,
        playback: Playback,
        *,
        audio: AudioFormat,
        server_cancels: bool,
        transcription: bool,
    ) -> None:
        self._playback = playback
        self._audio = audio
        self.server_cancels = server_cancels
        self._transcription = transcription
        self._items: list[HistoryItem] = []
        self._reply: Reply | None = None
        self._replies: dict[str, Reply] = {}
        self._redo_reply = False  # a reply was cut by a drop: ask again after re-seeding
        self._local_ids = itertools.count(1)
        self.usage = Usage()
        self.responses = 0

    # -- what the shell reads ----------------------------------------------------------

    @property
    def history(self) -> list[tuple[str, str]]:
        """The finished turns as ``(role, text)``, in order (what a new session is seeded with)."""
        return [(i.role, i.text) for i in self._items if i.text or i.role.startswith("func")]

    @property
    def current(self) -> Reply | None:
        return self._reply

    def reply(self, response_id: str) -> Reply | None:
        return self._replies.get(response_id)

    def busy(self, now: float) -> bool:
        """A reply is being made or is still playing (not a moment to roll over)."""
        rec = self._reply
        return rec is not None and self._playing(rec, now)

    # -- the client's own acts ---------------------------------------------------------

    def seed(self, items: Sequence[HistoryItem]) -> None:
        """Start from a conversation under way: ``items`` replace the history and go up
        as conversation items when the next session opens (:meth:`opening`)."""
        self._items = list(items)

    def opening(self) -> list[ClientEvent]:
        """What a new session gets after its ``session.update``: the conversation so far,
        in order, and the reply a drop cut off, asked for again."""
        events: list[ClientEvent] = []
        for item in self._items:
            wire = item.wire()
            if wire is not None:
                events.append(ConversationItemCreate(item=wire))
        if self._redo_reply:
            self._redo_reply = False
            events.append(ResponseCreate())
        return events

    def user_text(self, text: str, said: str, now: float, *, connected: bool) -> list[Action]:
        """A typed user message (``text`` after the request hook, ``said`` as typed):
        it cuts a reply still playing and asks for a new one."""
        self._items.append(HistoryItem(f"local_{next(self._local_ids)}", "user", text))
        if not connected:
            self._redo_reply = True  # the item goes up with the re-seed; then a reply
        actions: list[Action] = [
            Send(ConversationItemCreate(item=ConversationItem.user_text(text))),
            TranscriptFinal(Role.USER, said),
        ]
        actions += self._barge_in(0.0, now, speech=False)
        actions.append(Send(ResponseCreate()))
        return actions

    def interrupt(self, now: float) -> list[Action]:
        """Stop the current reply as a barge-in would (the caller pressed "stop")."""
        return self._barge_in(0.0, now, speech=False)

    def cancel(self, response_id: str, now: float) -> list[Action]:
        """Stop reply ``response_id`` now (``Cancellable``): ``response.cancel``, the
        item truncated at what was heard, and ``ResponseDone(cancelled)`` with those
        words. Nothing for a reply that is unknown, already cut or already made."""
        rec = self._replies.get(response_id)
        if rec is None or not rec.generating or rec.interrupted:
            return []
        rec.interrupted = rec.cancelled = True
        played_ms = self._played_ms(rec, now)
        rec.played_text = self._heard(rec, played_ms)
        actions: list[Action] = [Send(ResponseCancel(response_id=response_id))]
        actions += self._truncate(rec, played_ms)
        self._fill(rec.item_id, "assistant", rec.played_text)
        actions.append(ResponseDone(rec.id, "cancelled", rec.played_text))
        return actions

    def report_playback(self, response_id: str, played_ms: float) -> None:
        rec = self._replies.get(response_id)
        if rec is not None and (rec.played_ms is None or played_ms > rec.played_ms):
            rec.played_ms = played_ms

    def context(self, key: str, text: str) -> list[Action]:
        """Data for the model: a system item (a newer one for ``key`` replaces it in the
        history); the current reply goes on."""
        local = f"context:{key}"
        self._items = [i for i in self._items if i.key != local]
        self._items.append(HistoryItem(local, "system", text))
        return [Send(ConversationItemCreate(item=ConversationItem.system_text(text)))]

    def connection_lost(self) -> list[Action]:
        """The session is gone: a reply it was making ends ``incomplete`` (what was heard
        stays heard) and is asked for again on the next session."""
        rec = self._reply
        if rec is None or not rec.generating:
            return []
        rec.generating = False
        self._redo_reply = True
        self._items = [i for i in self._items if i.key != rec.item_id or not rec.item_id]
        self._reply = None
        return [ResponseDone(rec.id, "incomplete", rec.transcript.strip())]

    def tool_result(self, result: ToolResult) -> list[Action]:
        call_id = result.call_id
        self._items.append(
            HistoryItem(f"out:{call_id}", "function_call_output", result.output, call_id)
        )
        item = ConversationItem.function_call_output(call_id, result.output)
        return [result, Send(ConversationItemCreate(item=item))]

    def tools_done(self) -> list[Action]:
        # A function output alone does not make the model answer (protocols.md §1.6.3).
        return [Send(ResponseCreate())]

    # -- server events -----------------------------------------------------------------

    def receive(self, ev: ServerEvent | UnknownServerEvent, now: float) -> list[Action]:
        """One server event → what follows from it, in order."""
        if isinstance(ev, ResponseOutputAudioDelta):
            rec = self._live(ev.response_id)
            if rec is None:
                return []  # audio of a reply the caller already talked over
            audio = ev.audio_bytes()
            if rec.first_audio_t is None:
                rec.first_audio_t = now
            rec.audio_ms += self._audio.duration_ms(len(audio))
            rec.item_id = rec.item_id or ev.item_id
            fmt = self._audio
            return [AudioDelta(ev.response_id, audio, fmt.sample_rate, fmt.encoding)]  # type: ignore[arg-type]
        if isinstance(ev, ResponseOutputAudioTranscriptDelta | ResponseOutputTextDelta):
            rec = self._live(ev.response_id)
            if rec is None or not ev.delta:
                return []
            rec.transcript += ev.delta
            if isinstance(ev, ResponseOutputTextDelta):
                return [TextDelta(ev.response_id, ev.delta)]
            return [TranscriptDelta(Role.ASSISTANT, ev.delta, ev.item_id)]
        if isinstance(ev, ResponseOutputAudioTranscriptDone):
            rec = self._live(ev.response_id)
            if rec is None:
                return []
            rec.transcript = ev.transcript
            return [TranscriptFinal(Role.ASSISTANT, rec.transcript, ev.item_id)]
        if isinstance(ev, InputAudioBufferSpeechStarted):
            return self._barge_in(float(ev.audio_start_ms), now, speech=True)
        if isinstance(ev, InputAudioBufferSpeechStopped):
            return [UserSpeechStopped(float(ev.audio_end_ms))]
        if isinstance(ev, InputAudioBufferCommitted):
            # Hold the user turn's place in the history; the transcript comes later.
            self._items.append(HistoryItem(ev.item_id, "user"))
            return [] if self._transcription else [TranscriptFinal(Role.USER, "", ev.item_id)]
        if isinstance(ev, InputAudioTranscriptionDelta):
            return [TranscriptDelta(Role.USER, ev.delta, ev.item_id)] if ev.delta else []
        if isinstance(ev, InputAudioTranscriptionCompleted):
            text = ev.transcript.strip()
            self._fill(ev.item_id, "user", text)
            return [TranscriptFinal(Role.USER, text, ev.item_id)]
        if isinstance(ev, InputAudioTranscriptionFailed):
            return [
                ErrorEvent(ev.error.code or "transcription_failed", ev.error.message),
                TranscriptFinal(Role.USER, "", ev.item_id),
            ]
        if isinstance(ev, ResponseCreated):
            return self._created(ev)
        if isinstance(ev, ResponseOutputItemAdded):
            rec = self._replies.get(ev.response_id)
            item = ev.item
            if rec is not None and isinstance(item.id, str):
                if item.type == "message":
                    rec.item_id = item.id
                    self._items.append(HistoryItem(item.id, "assistant"))
                elif item.type == "function_call" and isinstance(item.call_id, str):
                    rec.tool_names[item.call_id] = item.name if isinstance(item.name, str) else ""
            return []
        if isinstance(ev, ResponseFunctionCallArgumentsDone):
            rec = self._replies.get(ev.response_id)
            name = ev.name or (rec.tool_names.get(ev.call_id, "") if rec is not None else "")
            call = ToolCall(ev.call_id, name, ev.arguments)
            self._items.append(
                HistoryItem(ev.item_id, "function_call", ev.arguments, ev.call_id, name)
            )
            if rec is not None:
                rec.calls.append(call)
            return [call]
        if isinstance(ev, WireResponseDone):
            return self._done(ev)
        if isinstance(ev, RealtimeErrorEvent):
            code = ev.code or "error"
            if code == ErrorCode.RESPONSE_CANCEL_NOT_ACTIVE:
                return []  # we cancelled a reply that had already finished: fine
            if code == ErrorCode.SESSION_EXPIRED:
                return [SessionExpired()]
            return [ErrorEvent(code, ev.error.message, fatal=False)]
        return []

    def _created(self, ev: ResponseCreated) -> list[Action]:
        rid = ev.response.id
        if not isinstance(rid, str):
            rid = f"resp_local_{next(self._local_ids)}"
        rec = Reply(rid)
        for old in [k for k, r in self._replies.items() if r is not self._reply]:
            del self._replies[old]
        self._replies[rid] = rec
        self._reply = rec
        return [ResponseStarted(rid)]

    def _done(self, ev: WireResponseDone) -> list[Action]:
        resp = ev.response
        rid = resp.id if isinstance(resp.id, str) else ""
        rec = self._replies.get(rid)
        usage = ev.parley_usage()
        if usage is not None:
            self.usage = self.usage + usage
        self.responses += 1
        raw = resp.status if isinstance(resp.status, str) else "completed"
        status: ResponseStatus = "incomplete" if raw == "in_progress" else raw
        if rec is None:
            return [ResponseDone(rid, status, "", usage)]
        rec.generating = False
        if rec.cancelled:
            return []  # cancel() said it is done already
        if rec.interrupted:
            text = rec.played_text
        else:
            text = rec.transcript.strip()
            if not text and isinstance(resp.output, list):
                text = " ".join(i.text for i in resp.output if i.type == "message").strip()
        if rec.item_id:
            self._fill(
                rec.item_id, "assistant", text if status == "completed" or rec.interrupted else ""
            )
        actions: list[Action] = [ResponseDone(rid, status, text, usage)]
        if rec.calls and status == "completed":
            actions.append(RunTools(tuple(rec.calls)))
        return actions

    # -- barge-in ----------------------------------------------------------------------

    def _barge_in(self, audio_ms: float, now: float, *, speech: bool) -> list[Action]:
        actions: list[Action] = []
        rec = self._reply
        if rec is not None and not rec.interrupted and self._playing(rec, now):
            rec.interrupted = True
            played_ms = self._played_ms(rec, now)
            rec.played_text = self._heard(rec, played_ms)
            actions.append(Interrupted(rec.id, rec.played_text, played_ms))
            # The server keeps the whole reply unless told what was actually heard.
            actions += self._truncate(rec, played_ms)
            if rec.generating and (not speech or not self.server_cancels):
                # Server VAD cancels on its own; otherwise we must. A reply that has
                # just finished answers response_cancel_not_active, which is ignored.
                actions.append(Send(ResponseCancel()))
            if not rec.generating:
                self._fill(rec.item_id, "assistant", rec.played_text)
        if speech:
            actions.append(UserSpeechStarted(audio_ms))
        return actions

    def _truncate(self, rec: Reply, played_ms: float) -> list[Action]:
        if not rec.item_id or rec.audio_ms <= 0:
            return []
        end_ms = int(min(played_ms, rec.audio_ms))
        return [Send(ConversationItemTruncate(item_id=rec.item_id, audio_end_ms=end_ms))]

    # -- plumbing ----------------------------------------------------------------------

    def _live(self, response_id: str) -> Reply | None:
        rec = self._replies.get(response_id)
        return None if rec is None or rec.interrupted else rec

    def _played_ms(self, rec: Reply, now: float) -> float:
        return self._playback.estimated_played_ms(
            rec.audio_ms, rec.played_ms, rec.first_audio_t, now
        )

    def _playing(self, rec: Reply, now: float) -> bool:
        return self._playback.still_playing(
            rec.generating, rec.audio_ms, rec.played_ms, rec.first_audio_t, now
        )

    def _heard(self, rec: Reply, played_ms: float) -> str:
        # The transcript runs ahead of the audio: one segment over the audio sent.
        segments = [(rec.transcript, 0.0, rec.audio_ms)] if rec.audio_ms > 0 else []
        return self._playback.heard_text(segments, played_ms)

    def _fill(self, key: str, role: HistoryRole, text: str) -> None:
        for item in reversed(self._items):
            if item.key == key and item.role == role:
                item.text = text
                return

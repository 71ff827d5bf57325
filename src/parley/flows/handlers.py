"""``ConversationEventHandler``: event handlers an app extends (seed 002's
``events.py``), one instance per call.

Subclass it, override the methods for the events you care about, and register the
class (``@app.event_handler`` or ``app.event_handler(MyHandler)``). The server makes
one instance per call — ``/realtime/{id}`` and ``/v1/realtime`` sessions, phone and
browser calls alike — and hands it every event of that call once, in order, as the
typed :mod:`parley.events` (the same events the Realtime socket relays to the client
as ``response.*`` / ``input_audio_buffer.*`` events)::

    class Notes(ConversationEventHandler):
        async def on_transcript_delta(self, event: TranscriptDelta) -> None:
            self.partial += event.text                  # partial transcripts
        async def on_function_call(self, event: ToolCall) -> None:
            log.info("model called %s", event.name)     # function calls
        async def on_transcript(self, event: TranscriptFinal) -> None:
            if self.observations is not None and "@" in event.text:
                self.observations.add_observation("email", event.text)   # user data

``self.observations`` is the call's :class:`ObservationTracker` when it follows a
guided flow (else None). A handler that raises is logged with the call id and the
call goes on. ``handle_event`` dispatches; override it to see every event raw.
"""

from __future__ import annotations

from parley.events import (
    AudioDelta,
    ContextInjected,
    DTMFReceived,
    EngineSwitched,
    ErrorEvent,
    Event,
    Interrupted,
    PhaseChanged,
    ResponseDone,
    ResponseStarted,
    TextDelta,
    ToolCall,
    ToolResult,
    TranscriptDelta,
    TranscriptFinal,
    TurnMetrics,
    UserSpeechStarted,
    UserSpeechStopped,
)
from parley.flows.observations import ObservationTracker

__all__ = ["ConversationEventHandler"]


class ConversationEventHandler:
    """See the module docstring. Every ``on_*`` method does nothing by default."""

    def __init__(self, session_id: str, observations: ObservationTracker | None = None) -> None:
        self.session_id = session_id
        self.observations = observations

    async def handle_event(self, event: Event) -> None:
        """Call the ``on_*`` method of ``event``'s type."""
        match event:
            case UserSpeechStarted():
                await self.on_speech_started(event)
            case UserSpeechStopped():
                await self.on_speech_stopped(event)
            case TranscriptDelta():
                await self.on_transcript_delta(event)
            case TranscriptFinal():
                await self.on_transcript(event)
            case ResponseStarted():
                await self.on_response_started(event)
            case TextDelta():
                await self.on_text_delta(event)
            case AudioDelta():
                await self.on_audio_delta(event)
            case ResponseDone():
                await self.on_response_done(event)
            case ToolCall():
                await self.on_function_call(event)
            case ToolResult():
                await self.on_function_result(event)
            case PhaseChanged():
                await self.on_phase_changed(event)
            case ContextInjected():
                await self.on_context_injected(event)
            case Interrupted():
                await self.on_interrupted(event)
            case ErrorEvent():
                await self.on_error(event)
            case DTMFReceived():
                await self.on_dtmf(event)
            case EngineSwitched():
                await self.on_engine_switched(event)
            case TurnMetrics():
                await self.on_turn_metrics(event)

    async def on_start(self) -> None:
        """Before the first turn."""

    async def on_end(self) -> None:
        """After the call ended."""

    async def on_speech_started(self, event: UserSpeechStarted) -> None: ...
    async def on_speech_stopped(self, event: UserSpeechStopped) -> None: ...
    async def on_transcript_delta(self, event: TranscriptDelta) -> None: ...
    async def on_transcript(self, event: TranscriptFinal) -> None: ...
    async def on_response_started(self, event: ResponseStarted) -> None: ...
    async def on_text_delta(self, event: TextDelta) -> None: ...
    async def on_audio_delta(self, event: AudioDelta) -> None: ...
    async def on_response_done(self, event: ResponseDone) -> None: ...
    async def on_function_call(self, event: ToolCall) -> None: ...
    async def on_function_result(self, event: ToolResult) -> None: ...
    async def on_phase_changed(self, event: PhaseChanged) -> None: ...
    async def on_context_injected(self, event: ContextInjected) -> None: ...
    async def on_interrupted(self, event: Interrupted) -> None: ...
    async def on_error(self, event: ErrorEvent) -> None: ...
    async def on_dtmf(self, event: DTMFReceived) -> None: ...
    async def on_engine_switched(self, event: EngineSwitched) -> None: ...
    async def on_turn_metrics(self, event: TurnMetrics) -> None: ...

"""``LiveCall``: one running call's wiring between its engine and the app.

Made by the switchboard when a call starts, for every kind of call (phone and
browser streams, ``/v1/realtime`` sessions). It runs the app's side of the call:
the context layer (providers, triggers, injection), the user's event handlers
(``@app.on_event`` functions, ``@app.event_handler`` classes), the
lifecycle hooks, and the one log line per error or failover that names the call.
Every event of the call passes :meth:`LiveCall.observe` once, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from parley.analytics.hub import AnalyticsHub, CallMetrics
from parley.conversation.context import ContextManager, ContextProvider
from parley.conversation.journal import Journal
from parley.conversation.state import ConversationState
from parley.conversation.triggers import TriggerRunner, TriggerType
from parley.engines.seams import CallEngine
from parley.events import (
    EngineSwitched,
    ErrorEvent,
    Event,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    TranscriptFinal,
)
from parley.flows import ConversationEventHandler, FlowController, ObservationTracker
from parley.server.calls import CallRecord
from parley.server.setup import CallSetup

__all__ = ["LiveCall"]

log = logging.getLogger("parley.server")

# What the context layer watches: transcripts (SEMANTIC triggers) and reply boundaries.
_CONTEXT_EVENTS: frozenset[type] = frozenset(
    {TranscriptFinal, ResponseStarted, ResponseDone, Interrupted}
)

#: Shows an event to the peer (the browser page); ``state`` is the call's state after it.
Sink = Callable[[Event, ConversationState], Awaitable[None]]


class LiveCall:
    """See the module docstring. ``journal`` is given for calls whose events no
    ``Conversation`` records (``/v1/realtime`` sessions)."""

    def __init__(
        self,
        setup: CallSetup,
        record: CallRecord,
        engine: CallEngine,
        *,
        journal: Journal | None = None,
        analytics: AnalyticsHub | None = None,
        metrics: CallMetrics | None = None,
        providers: Sequence[ContextProvider] | None = None,
        after: Callable[[Event], Awaitable[None]] | None = None,
        flow: FlowController | None = None,
    ) -> None:
        """``providers``: the call's context providers (default: the app's);
        ``after``: awaited with each event once the journal has it (the session
        store's turn writer: a finished turn is committed before the next event);
        ``flow``: the call's guided flow, whose observations its handlers see."""
        self.setup = setup
        self.record = record
        self.engine = engine
        self._journal = journal
        #: The call's meter (None when metrics are off); closed into the hub at the end.
        self.metrics = metrics
        self._analytics = analytics
        self._after = after
        observations = ObservationTracker(flow) if flow is not None else None
        #: The app's ``@app.event_handler`` classes, one instance each for this call.
        self.handlers: list[ConversationEventHandler] = [
            cls(record.id, observations) for cls in setup.event_handlers
        ]
        cfg = setup.config
        self.context = TriggerRunner(
            record.id,
            ContextManager(
                engine,
                max_tokens=cfg.max_context_size,
                window_seconds=cfg.context_window_minutes * 60,
                async_injection=cfg.enable_async_injection,
            ),
            triggers=tuple(setup.context_triggers),
            providers=tuple(setup.context_providers if providers is None else providers),
            user_id=record.user_id,
        )
        # The context layer watches transcripts for SEMANTIC triggers, and reply
        # boundaries when injections wait for the end of a reply.
        self._watch = not cfg.enable_async_injection or any(
            t.type is TriggerType.SEMANTIC for t in setup.context_triggers
        )

    async def start(self) -> None:
        """Before the first turn: the providers' data is in the context, then the
        app's ``on_conversation_start`` hooks run."""
        await self.context.start()
        for hook in self.setup.on_start:
            await _guarded(hook(self.record.id, self.record.user_id), "on_conversation_start", self)
        for handler in self.handlers:
            await _guarded(handler.on_start(), "event handler", self)

    async def end(self) -> None:
        self._close_metrics()
        await self.context.close()
        for hook in self.setup.on_end:
            await _guarded(hook(self.record.id, self.record.user_id), "on_conversation_end", self)
        for handler in self.handlers:
            await _guarded(handler.on_end(), "event handler", self)

    def playback(self, response_id: str, played_ms: float) -> None:
        """A playback report from the peer (Twilio's mark echo, the page's report)."""
        if self.metrics is not None:
            self.metrics.playback(response_id, played_ms)

    def _close_metrics(self) -> None:
        if self.metrics is None or self._analytics is None:
            return
        journal = self.record.journal
        error = journal.error if journal is not None else None
        ended_by = (
            "server"
            if self.record.end_requested
            else "error"
            if error is not None and error.fatal
            else "caller"
        )
        self._analytics.close_call(
            self.metrics,
            transcript=list(journal.transcript) if journal is not None else [],
            ended_by=ended_by,
            dropped_audio_chunks=self.engine.stats().dropped_audio_chunks,
        )

    async def observe(self, event: Event) -> None:
        """One event of the call (the engine's, or reported from outside it)."""
        if self.metrics is not None:
            self.metrics.observe(event)
        if self._journal is not None:
            self._journal.record(event)
        kind = type(event)
        if isinstance(event, ErrorEvent):
            log.warning(
                "call %s: %s%s: %s",
                self.record.id,
                "fatal " if event.fatal else "",
                event.code,
                event.message,
            )
        elif isinstance(event, EngineSwitched):
            log.warning(
                "call %s: failover from %s to %s: %s",
                self.record.id,
                event.previous,
                event.current,
                event.reason,
            )
        if self._after is not None:
            await self._after(event)
        if self._watch and kind in _CONTEXT_EVENTS:
            await self.context.observe(event)
        for fn in self.setup.handlers.get(kind, ()):
            await _guarded(fn(self.record.id, event), "on_event", self)
        for handler in self.handlers:
            await _guarded(handler.handle_event(event), "event handler", self)


async def _guarded(call: Awaitable[Any], what: str, live: LiveCall) -> None:
    try:
        await call
    except Exception:  # the user-code boundary: a failing hook must not drop the call
        log.exception("call %s: %s hook failed", live.record.id, what)

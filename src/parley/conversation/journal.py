"""``Journal``: what happened in one call — transcript, errors, the engine serving —
kept from the call's events (its metrics are the call meter's, :mod:`parley.metrics`).

It knows nothing of audio or sockets: a :class:`~parley.conversation.Conversation`
feeds it the events of a phone or browser call, and the switchboard feeds it the
events of a ``/v1/realtime`` session, so every call has the same record (REST, the
store and analytics read it).

Turn rules: a user turn opens at ``UserSpeechStarted`` and gets its words from the
``TranscriptFinal`` that follows its ``UserSpeechStopped`` (typed text opens and
closes one at once); a noise that transcribes to nothing leaves no turn. An
assistant turn opens at ``ResponseStarted``; its text is what was said
(``ResponseDone``), or what the caller heard (``Interrupted``). A reply that failed
(``ResponseDone(status="failed")``, e.g. a provider error answered with a spoken
apology) is kept with ``failed=True`` and the apology as its text — never as an
empty assistant turn.
"""

from __future__ import annotations

import time
from collections import deque

from parley.conversation.transcript import Transcript, Turn
from parley.events import (
    AudioDelta,
    EngineSwitched,
    ErrorEvent,
    Event,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    Role,
    TranscriptFinal,
    UserSpeechStarted,
    UserSpeechStopped,
)

__all__ = ["Journal"]

#: Errors kept per call (the newest): enough to see what went wrong, bounded.
MAX_ERRORS = 50


class Journal:
    """Transcript and errors of one call, from its events (in order)."""

    __slots__ = ("_awaiting", "_current_user", "errors", "serving", "transcript")

    def __init__(self, serving: str = "") -> None:
        self.transcript = Transcript()
        #: Every error reported during the call (provider errors, middleware errors,
        #: failovers' causes), newest last; bounded to :data:`MAX_ERRORS`.
        self.errors: deque[ErrorEvent] = deque(maxlen=MAX_ERRORS)
        #: The engine answering now ("cascade" after a failover from "realtime").
        self.serving = serving
        self._awaiting: deque[Turn] = deque()  # user turns whose transcript is coming
        self._current_user: Turn | None = None

    @property
    def error(self) -> ErrorEvent | None:
        """The latest error, or None."""
        return self.errors[-1] if self.errors else None

    def record(self, event: Event, now: float | None = None) -> None:
        """Take one event into the record (cheap for audio: one dict-free lookup)."""
        if now is None:
            now = time.time()
        if isinstance(event, AudioDelta):
            if event.text:
                turn = self.transcript.find(event.response_id)
                if turn is not None:
                    turn.text = f"{turn.text} {event.text}" if turn.text else event.text
        elif isinstance(event, UserSpeechStarted):
            self._current_user = self.transcript.open(Role.USER, now)
        elif isinstance(event, UserSpeechStopped):
            if self._current_user is not None:
                self._current_user.ended_at = now
                self._awaiting.append(self._current_user)
                self._current_user = None
        elif isinstance(event, TranscriptFinal) and event.role is Role.USER:
            turn = self._awaiting.popleft() if self._awaiting else None
            if turn is None and event.text:  # typed text: no speech events before it
                turn = self.transcript.open(Role.USER, now)
                turn.ended_at = now
            if turn is not None:
                turn.text = event.text
                self.transcript.drop_empty(turn)
        elif isinstance(event, ResponseStarted):
            self.transcript.open(Role.ASSISTANT, now, response_id=event.response_id)
        elif isinstance(event, ResponseDone):
            self._done(event, now)
        elif isinstance(event, Interrupted):
            turn = self.transcript.find(event.response_id)
            if turn is not None:
                turn.text = event.played_text
                turn.interrupted = True
                if turn.ended_at is None:
                    turn.ended_at = now
                if not turn.text:
                    self.transcript.drop_empty(turn)
        elif isinstance(event, ErrorEvent):
            self.errors.append(event)
        elif isinstance(event, EngineSwitched):
            self.serving = event.current

    def _done(self, event: ResponseDone, now: float) -> None:
        turn = self.transcript.find(event.response_id)
        if turn is None or turn.ended_at is not None:
            return
        turn.ended_at = now
        if event.status == "completed":
            turn.text = event.text
        elif event.status == "failed":
            turn.failed = True
            turn.text = event.text or turn.text
            if not turn.text:
                self.transcript.drop_empty(turn)

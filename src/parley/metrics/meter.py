"""One call's meter: typed events in, per-turn snapshots and a call summary out (sans-I/O).

The switchboard holds one :class:`CallMeter` per call and feeds it every event the
engine yields, with the time it saw it::

    meter = CallMeter(session_id, time.monotonic(), plan=plan, sinks=[registry, tracer])
    async for event in engine.events():
        snapshot = meter.observe(event, time.monotonic())
        if snapshot is not None:                    # a turn just ended
            await app.on_metrics_update(snapshot)
    ...
    meter.playback(report.response_id, report.played_ms, time.monotonic())  # Twilio marks
    summary = meter.finish(time.monotonic(), ended_by="caller",
                           dropped_audio_chunks=engine.stats().dropped_audio_chunks)

A turn runs from the caller's speech (or, for a greeting, the reply's start) to the
reply's ``ResponseDone``. ``observe`` returns the :class:`ConversationMetrics`
snapshot when an event closes a turn, else ``None``. ``AudioDelta`` — fifty a second
— costs a type check, a multiply and a few additions: no allocation beyond the float
counters, no dict lookup unless a new reply starts.

Sinks (:class:`MetricsSink`: the Prometheus registry, the OpenTelemetry tracer) hear
about turns, incidents and the call's start and end — never about audio chunks.

Silence: a gap of at least ``silence_threshold_ms`` during which neither party is
talking and that ends with the caller speaking or hanging up (dead air the caller
sits through). A gap that ends with the agent's reply is latency, measured as
voice-to-voice instead. The agent is taken to be talking from its reply's first
audio for as long as the audio sent lasts (cut short by a barge-in).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Protocol

from parley.events import (
    AudioDelta,
    ContextInjected,
    EngineSwitched,
    ErrorEvent,
    Event,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    TextDelta,
    TurnMetrics,
    Usage,
    UserSpeechStarted,
    UserSpeechStopped,
)
from parley.metrics.conversation_metrics import (
    LATENCY_FIELDS,
    ConversationMetrics,
    TurnFigures,
    latency_stats,
)
from parley.metrics.cost import CostBreakdown, CostMeter, CostPlan
from parley.metrics.engagement import EngagementInputs, EngagementWeights, engagement_score
from parley.metrics.prices import DEFAULT_PRICE_BOOK, PriceBook

__all__ = ["CallInfo", "CallMeter", "Incident", "MetricsSink"]

_DEFAULT_WEIGHTS = EngagementWeights()
_MAX_UTTERANCE_MS = 600_000.0  # stream positions further apart than this are not one utterance


class Incident(StrEnum):
    INTERRUPTION = "interruption"
    ERROR = "error"
    FATAL_ERROR = "fatal_error"
    FAILOVER = "failover"
    CONTEXT_INJECTED = "context_injected"


@dataclass(frozen=True, slots=True)
class CallInfo:
    session_id: str
    started_at: float
    engine: str  # the engine serving at the start
    transport: str = ""


class MetricsSink(Protocol):
    """Where a meter reports what exporters need (called on the meter's thread)."""

    def call_started(self, call: CallInfo) -> None: ...

    def turn_finished(self, call: CallInfo, turn: TurnFigures) -> None: ...

    def incident(self, call: CallInfo, kind: Incident, detail: str, value: float) -> None:
        """``detail``: the error code, the new engine or the context source; ``value``:
        the context injection's latency in ms (else 0)."""

    def call_finished(self, call: CallInfo, summary: ConversationMetrics) -> None: ...


class _Turn:
    """A turn being built (mutable; frozen into TurnFigures when it closes)."""

    __slots__ = (
        "audio_ms",
        "first_audio_at",
        "first_output_at",
        "heard_at",
        "interrupted",
        "reported",
        "response_id",
        "response_started_at",
        "speech_ended_at",
        "speech_ms",
        "started_at",
    )

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self.speech_ended_at: float | None = None
        self.speech_ms = 0.0
        self.response_id = ""
        self.response_started_at: float | None = None
        self.first_output_at: float | None = None
        self.first_audio_at: float | None = None
        self.heard_at: float | None = None
        self.audio_ms = 0.0
        self.interrupted = False
        self.reported: TurnMetrics | None = None


def _ms_per_byte(sample_rate: int, encoding: str) -> float:
    width = 2 if encoding == "pcm16" else 1
    return 1000.0 / (sample_rate * width) if sample_rate > 0 else 0.0


class CallMeter:
    """Latency, talk, silences, cost and engagement of one call, from its events."""

    def __init__(
        self,
        session_id: str,
        started_at: float,
        *,
        plan: CostPlan | None = None,
        book: PriceBook = DEFAULT_PRICE_BOOK,
        on: date | None = None,
        track_costs: bool = True,
        track_engagement: bool = True,
        silence_threshold_ms: float = 3000.0,
        engagement_weights: EngagementWeights = _DEFAULT_WEIGHTS,
        sinks: Sequence[MetricsSink] = (),
        transport: str = "",
    ) -> None:
        plan = plan or CostPlan()
        self._cost: CostMeter | None = CostMeter(plan, book=book, on=on) if track_costs else None
        self._engine = plan.engines[0].engine
        self.info = CallInfo(session_id, started_at, self._engine, transport)
        self._track_engagement = track_engagement
        self._weights = engagement_weights
        self._silence_s = silence_threshold_ms / 1000.0
        self._sinks = tuple(sinks)
        # turns
        self._listening: _Turn | None = None  # caller speech not yet answered
        self._replying: dict[str, _Turn] = {}  # reply started, not done
        self._last_replying: _Turn | None = None
        self._turns: list[TurnFigures] = []
        self._closed: dict[str, int] = {}  # response id → index in _turns
        self._caller_turns = 0
        # caller speech
        self._speaking = False
        self._speech_start_at = started_at
        self._speech_start_ms = 0.0
        self._user_quiet_at = started_at
        self._caller_ms = 0.0
        # agent audio (the hot path): format cache, the reply now sounding
        self._rate = 0
        self._encoding = ""
        self._ms_per_byte = 0.0
        self._agent_ms = 0.0
        self._audio_rid: str | None = None
        self._audio_start = started_at
        self._audio_ms = 0.0  # of the reply now sounding
        self._agent_quiet_at = started_at
        self._tts_chars = 0  # since the last flush into the cost meter
        self._tts_audio_ms = 0.0
        # incidents and silences
        self._interruptions = 0
        self._errors = 0
        self._failovers = 0
        self._context = 0
        self._silences = 0
        self._silence_ms = 0.0
        self._v2v_sum = 0.0
        self._v2v_n = 0
        self._played_rid = ""
        self._finished: ConversationMetrics | None = None
        for sink in self._sinks:
            sink.call_started(self.info)

    # -- input --------------------------------------------------------------------------

    def observe(self, event: Event, at: float) -> ConversationMetrics | None:
        """Account for ``event`` seen at ``at``; the snapshot if it closed a turn."""
        if type(event) is AudioDelta:  # the hot path: ~50 a second
            if event.sample_rate != self._rate or event.encoding != self._encoding:
                self._rate, self._encoding = event.sample_rate, event.encoding
                self._ms_per_byte = _ms_per_byte(event.sample_rate, event.encoding)
            ms = len(event.audio) * self._ms_per_byte
            if event.response_id != self._audio_rid:
                self._reply_audio_starts(event.response_id, at)
            self._audio_ms += ms
            self._agent_ms += ms
            self._tts_audio_ms += ms
            if event.text:
                self._tts_chars += len(event.text)
            return None
        if self._finished is not None:
            return None
        handler = _HANDLERS.get(type(event))
        return handler(self, event, at) if handler is not None else None

    def playback(self, response_id: str, played_ms: float, at: float) -> None:
        """The caller has heard ``played_ms`` of reply ``response_id`` (a playback report).

        The first report of a reply dates when the caller started hearing it:
        ``at − played_ms``.
        """
        if response_id == self._played_rid or self._finished is not None:
            return
        self._played_rid = response_id
        heard = at - played_ms / 1000.0
        turn = self._replying.get(response_id)
        if turn is not None:
            if turn.heard_at is None:
                turn.heard_at = heard
            return
        index = self._closed.get(response_id)
        if index is not None:
            fig = self._turns[index]
            if fig.played_voice_to_voice_ms is None:
                played = _played(fig.voice_to_voice_ms, fig.first_audio_at, heard)
                self._turns[index] = dataclasses.replace(fig, played_voice_to_voice_ms=played)

    def add_cpu(self, component: str, seconds: float) -> None:
        """CPU seconds a local model spent for this call (reported at no cost)."""
        if self._cost is not None:
            self._cost.add_cpu(component, seconds)

    # -- handlers (one per event type; AudioDelta is inlined above) ---------------------

    def _reply_audio_starts(self, response_id: str, at: float) -> None:
        self._agent_quiet_at = max(self._agent_quiet_at, self._audio_start + self._audio_ms / 1000)
        self._audio_rid = response_id
        self._audio_start = at
        self._audio_ms = 0.0
        turn = self._replying.get(response_id)
        if turn is not None and turn.first_audio_at is None:
            turn.first_audio_at = at
            if turn.first_output_at is None:
                turn.first_output_at = at

    def _on_speech_started(self, event: UserSpeechStarted, at: float) -> None:
        if self._speaking:
            return
        self._count_silence(at)
        self._speaking = True
        self._speech_start_at = at
        self._speech_start_ms = event.audio_ms
        if self._listening is None:
            self._listening = _Turn(at)

    def _on_speech_stopped(self, event: UserSpeechStopped, at: float) -> None:
        if not self._speaking:
            return
        self._speaking = False
        ms = event.audio_ms - self._speech_start_ms
        if not 0.0 <= ms <= _MAX_UTTERANCE_MS:  # positions not comparable: use our clock
            ms = (at - self._speech_start_at) * 1000.0
        self._caller_ms += ms
        self._user_quiet_at = at
        if self._cost is not None:
            self._cost.add_caller_speech(ms)
        turn = self._listening
        if turn is not None:
            turn.speech_ms += ms
            turn.speech_ended_at = at

    def _on_response_started(self, event: ResponseStarted, at: float) -> None:
        turn = self._listening or _Turn(at)
        self._listening = None
        turn.response_id = event.response_id
        turn.response_started_at = at
        self._replying[event.response_id] = turn
        self._last_replying = turn
        if event.response_id == self._audio_rid and turn.first_audio_at is None:
            turn.first_audio_at = turn.first_output_at = self._audio_start

    def _on_text(self, event: TextDelta, at: float) -> None:
        turn = self._replying.get(event.response_id)
        if turn is not None and turn.first_output_at is None:
            turn.first_output_at = at

    def _on_turn_metrics(self, event: TurnMetrics, at: float) -> None:
        if self._last_replying is not None:
            self._last_replying.reported = event
        elif self._turns:  # the engine reported after the reply ended: fill in the gaps
            fig = self._turns[-1]
            self._turns[-1] = dataclasses.replace(
                fig,
                voice_to_voice_ms=event.voice_to_voice_ms or fig.voice_to_voice_ms,
                end_of_turn_ms=event.end_of_turn_ms,
                stt_ms=event.stt_ms,
                llm_first_token_ms=event.llm_first_token_ms or fig.llm_first_token_ms,
                tts_first_byte_ms=event.tts_first_byte_ms,
            )

    def _on_interrupted(self, event: Interrupted, at: float) -> None:
        self._interruptions += 1
        if event.response_id == self._audio_rid:
            unheard = self._audio_ms - event.played_ms
            if unheard > 0:  # sent but never played: not agent talk time
                self._agent_ms -= unheard
                self._audio_ms = event.played_ms
            self._agent_quiet_at = at
        turn = self._replying.get(event.response_id)
        if turn is not None:
            turn.interrupted = True
        else:
            index = self._closed.get(event.response_id)
            if index is not None:
                self._turns[index] = dataclasses.replace(self._turns[index], interrupted=True)
        self._incident(Incident.INTERRUPTION, "", 0.0)

    def _on_response_done(self, event: ResponseDone, at: float) -> ConversationMetrics:
        turn = self._replying.pop(event.response_id, None)
        if turn is None:  # a reply whose start we did not see
            turn = self._listening or _Turn(at)
            self._listening = None
            turn.response_id = event.response_id
        if self._last_replying is turn:
            self._last_replying = None
        if event.usage is not None and self._cost is not None:
            self._cost.add_usage(event.usage)
        figures = self._close(turn, at, event.status, event.usage)
        return self._snapshot(at, figures)

    def _on_error(self, event: ErrorEvent, at: float) -> None:
        self._errors += 1
        self._incident(Incident.FATAL_ERROR if event.fatal else Incident.ERROR, event.code, 0.0)

    def _on_switch(self, event: EngineSwitched, at: float) -> None:
        self._failovers += 1
        self._engine = event.current
        if self._cost is not None:
            self._flush_tts()
            self._cost.switch(event.current)
        self._incident(Incident.FAILOVER, event.current, 0.0)

    def _on_context(self, event: ContextInjected, at: float) -> None:
        self._context += 1
        self._incident(Incident.CONTEXT_INJECTED, event.source, event.latency_ms)

    # -- bookkeeping --------------------------------------------------------------------

    def _incident(self, kind: Incident, detail: str, value: float) -> None:
        for sink in self._sinks:
            sink.incident(self.info, kind, detail, value)

    def _count_silence(self, at: float) -> None:
        """A gap ending now (caller speaks or hangs up) is a silence if long enough."""
        agent_end = max(self._agent_quiet_at, self._audio_start + self._audio_ms / 1000)
        gap = at - max(self._user_quiet_at, agent_end)
        if gap >= self._silence_s:
            self._silences += 1
            self._silence_ms += gap * 1000.0

    def _flush_tts(self) -> None:
        if self._cost is not None and (self._tts_chars or self._tts_audio_ms):
            self._cost.add_spoken(self._tts_chars, self._tts_audio_ms)
        self._tts_chars = 0
        self._tts_audio_ms = 0.0

    def _close(self, turn: _Turn, at: float, status: str, usage: Usage | None) -> TurnFigures:
        rep = turn.reported
        v2v = rep.voice_to_voice_ms if rep is not None else None
        if v2v is None and turn.first_audio_at is not None and turn.speech_ended_at is not None:
            v2v = round((turn.first_audio_at - turn.speech_ended_at) * 1000.0, 1)
        ttft = rep.llm_first_token_ms if rep is not None else None
        started, first = turn.response_started_at, turn.first_output_at
        if rep is None and started is not None and first is not None:
            ttft = round((first - started) * 1000.0, 1)  # no engine figure: to first output
        audio_ms = self._audio_ms if turn.response_id == self._audio_rid else 0.0
        figures = TurnFigures(
            index=len(self._turns),
            response_id=turn.response_id,
            status=status,
            engine=self._engine,
            started_at=turn.started_at,
            ended_at=at,
            speech_ended_at=turn.speech_ended_at,
            response_started_at=turn.response_started_at,
            first_output_at=turn.first_output_at,
            first_audio_at=turn.first_audio_at,
            caller_speech_ms=turn.speech_ms,
            agent_audio_ms=audio_ms,
            voice_to_voice_ms=v2v,
            played_voice_to_voice_ms=(
                _played(v2v, turn.first_audio_at, turn.heard_at)
                if turn.heard_at is not None
                else None
            ),
            end_of_turn_ms=rep.end_of_turn_ms if rep is not None else None,
            stt_ms=rep.stt_ms if rep is not None else None,
            llm_first_token_ms=ttft,
            tts_first_byte_ms=rep.tts_first_byte_ms if rep is not None else None,
            interrupted=turn.interrupted,
            usage=usage,
        )
        if turn.response_id:
            self._closed[turn.response_id] = figures.index
        self._turns.append(figures)
        if turn.speech_ms > 0:
            self._caller_turns += 1
        if v2v is not None:
            self._v2v_sum += v2v
            self._v2v_n += 1
        for sink in self._sinks:
            sink.turn_finished(self.info, figures)
        return figures

    # -- output -------------------------------------------------------------------------

    @property
    def turns(self) -> tuple[TurnFigures, ...]:
        return tuple(self._turns)

    @property
    def engine(self) -> str:
        return self._engine

    def cost(self, at: float) -> CostBreakdown | None:
        """The cost so far (``None`` when costs are not tracked)."""
        if self._cost is None:
            return None
        self._flush_tts()
        return self._cost.breakdown((at - self.info.started_at) * 1000.0)

    def snapshot(self, at: float) -> ConversationMetrics:
        """The metrics so far, without closing anything (for a live view)."""
        if self._finished is not None:
            return self._finished
        return self._snapshot(at, self._turns[-1] if self._turns else None)

    def _snapshot(
        self,
        at: float,
        last: TurnFigures | None,
        *,
        final: bool = False,
        ended_by: str = "",
        dropped: int = 0,
    ) -> ConversationMetrics:
        duration_ms = (at - self.info.started_at) * 1000.0
        talk = self._caller_ms + self._agent_ms
        ratio = self._caller_ms / talk if talk > 0 else None
        cost = self.cost(at)
        engagement = None
        if self._track_engagement:
            caller_turns = self._caller_turns
            engagement = engagement_score(
                EngagementInputs(
                    caller_turns=caller_turns,
                    talk_ratio=ratio,
                    interruptions=self._interruptions,
                    mean_voice_to_voice_ms=self._v2v_sum / self._v2v_n if self._v2v_n else None,
                    silences=self._silences,
                    duration_s=duration_ms / 1000.0,
                    ended_by_caller=final and ended_by == "caller",
                ),
                self._weights,
            )
        turns = tuple(self._turns) if final else ()
        return ConversationMetrics(
            session_id=self.info.session_id,
            turn_index=last.index if last is not None else -1,
            turns=len(self._turns),
            voice_to_voice_ms=last.voice_to_voice_ms if last else None,
            played_voice_to_voice_ms=last.played_voice_to_voice_ms if last else None,
            end_of_turn_ms=last.end_of_turn_ms if last else None,
            stt_ms=last.stt_ms if last else None,
            llm_first_token_ms=last.llm_first_token_ms if last else None,
            tts_first_byte_ms=last.tts_first_byte_ms if last else None,
            interruptions=self._interruptions,
            silences=self._silences,
            silence_ms=self._silence_ms,
            caller_talk_ms=self._caller_ms,
            agent_talk_ms=self._agent_ms,
            talk_ratio=ratio,
            duration_ms=duration_ms,
            estimated_cost=round(cost.total, 6) if cost is not None else None,
            engagement_score=engagement,
            engine=self._engine,
            errors=self._errors,
            failovers=self._failovers,
            context_injections=self._context,
            dropped_audio_chunks=dropped,
            cost=cost,
            final=final,
            ended_by=ended_by,
            latency=(
                {f: latency_stats([getattr(t, f) for t in turns]) for f in LATENCY_FIELDS}
                if final
                else {}
            ),
            turn_figures=turns,
        )

    def finish(
        self, at: float, *, ended_by: str = "caller", dropped_audio_chunks: int = 0
    ) -> ConversationMetrics:
        """End the call at ``at``: close what is open and return the summary (once;
        later calls return the same summary). ``ended_by``: ``"caller"`` (hung up),
        ``"agent"``, ``"server"`` or ``"error"``."""
        if self._finished is not None:
            return self._finished
        if self._speaking:  # hung up mid-sentence
            self._on_speech_stopped(UserSpeechStopped(-1.0), at)
        else:
            self._count_silence(at)
        for turn in list(self._replying.values()):
            self._close(turn, at, "incomplete", None)
        self._replying.clear()
        if self._listening is not None and self._listening.speech_ms > 0:
            self._close(self._listening, at, "unanswered", None)
        self._listening = None
        summary = self._snapshot(
            at,
            self._turns[-1] if self._turns else None,
            final=True,
            ended_by=ended_by,
            dropped=dropped_audio_chunks,
        )
        self._finished = summary
        for sink in self._sinks:
            sink.call_finished(self.info, summary)
        return summary


def _played(v2v: float | None, first_audio_at: float | None, heard_at: float) -> float | None:
    if v2v is None or first_audio_at is None:
        return None
    return round(v2v + (heard_at - first_audio_at) * 1000.0, 1)


_HANDLERS: dict[type, Callable[[CallMeter, Any, float], ConversationMetrics | None]] = {
    UserSpeechStarted: CallMeter._on_speech_started,
    UserSpeechStopped: CallMeter._on_speech_stopped,
    ResponseStarted: CallMeter._on_response_started,
    TextDelta: CallMeter._on_text,
    TurnMetrics: CallMeter._on_turn_metrics,
    Interrupted: CallMeter._on_interrupted,
    ResponseDone: CallMeter._on_response_done,
    ErrorEvent: CallMeter._on_error,
    EngineSwitched: CallMeter._on_switch,
    ContextInjected: CallMeter._on_context,
}

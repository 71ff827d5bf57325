"""What a call's metrics say: per turn (:class:`TurnFigures`) and per call so far
(:class:`ConversationMetrics`, what ``@app.on_metrics_update`` receives).

Times in ``TurnFigures`` are the meter's clock (``time.monotonic()`` seconds as the
switchboard passes them); durations are milliseconds; money is USD.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from parley.events import Usage
from parley.metrics.cost import CostBreakdown

__all__ = ["LATENCY_FIELDS", "ConversationMetrics", "LatencyStats", "TurnFigures", "latency_stats"]

#: The per-turn latency figures, in the order dashboards show them.
LATENCY_FIELDS = (
    "voice_to_voice_ms",
    "played_voice_to_voice_ms",
    "end_of_turn_ms",
    "stt_ms",
    "llm_first_token_ms",
    "tts_first_byte_ms",
)


@dataclass(frozen=True, slots=True)
class TurnFigures:
    """One turn: the caller spoke (or not, for a greeting) and the agent replied.

    ``voice_to_voice_ms`` is server side — end of the caller's speech to the first
    reply audio leaving the server (the engine's own figure when it reports one, as
    the cascade does, which then includes the end-of-turn wait). ``played_…`` is the
    same span to when the caller started *hearing* the reply, from the first playback
    report (Twilio mark echo): heard start = report time − ms played. Figures the
    meter computes are rounded to 0.1 ms.
    """

    index: int
    response_id: str
    status: str  # ResponseDone's: completed | cancelled | failed | incomplete; or unanswered
    engine: str  # the engine that served it
    started_at: float  # caller speech start, or reply start for a turn without speech
    ended_at: float  # ResponseDone
    speech_ended_at: float | None
    response_started_at: float | None
    first_output_at: float | None  # first text or audio of the reply
    first_audio_at: float | None
    caller_speech_ms: float
    agent_audio_ms: float
    voice_to_voice_ms: float | None = None
    played_voice_to_voice_ms: float | None = None
    end_of_turn_ms: float | None = None
    stt_ms: float | None = None
    llm_first_token_ms: float | None = None
    tts_first_byte_ms: float | None = None
    interrupted: bool = False
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class LatencyStats:
    count: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None


def _percentile(xs: Sequence[float], q: float) -> float:
    # Linear interpolation between closest ranks (numpy's default), on a sorted list.
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def latency_stats(values: Sequence[float | None]) -> LatencyStats:
    """p50/p90/p99/mean of the measured values (``None`` skipped)."""
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return LatencyStats(0, None, None, None, None)
    return LatencyStats(
        len(xs),
        _percentile(xs, 0.50),
        _percentile(xs, 0.90),
        _percentile(xs, 0.99),
        sum(xs) / len(xs),
    )


@dataclass(frozen=True, slots=True)
class ConversationMetrics:
    """A call's metrics after a turn (``final=False``) or at its end (``final=True``).

    The latency fields are the *latest* turn's (``None`` where not measured); the
    counts and times are the call's so far. ``talk_ratio`` is the caller's share of
    the talk time, caller / (caller + agent), ``None`` before anyone spoke.
    ``estimated_cost`` (USD, rounded to a millionth; ``cost`` has the parts unrounded) is
    ``None`` unless costs are tracked, ``engagement_score``
    (0..1, :mod:`parley.metrics.engagement`) unless engagement is. ``latency`` (p50/p90
    per figure over the turns) and ``turn_figures`` are filled in the final summary
    only, so that a per-turn snapshot stays cheap.
    """

    session_id: str
    turn_index: int  # the turn just finished; -1 before the first
    turns: int
    voice_to_voice_ms: float | None
    played_voice_to_voice_ms: float | None
    end_of_turn_ms: float | None
    stt_ms: float | None
    llm_first_token_ms: float | None
    tts_first_byte_ms: float | None
    interruptions: int
    silences: int
    silence_ms: float
    caller_talk_ms: float
    agent_talk_ms: float
    talk_ratio: float | None
    duration_ms: float
    estimated_cost: float | None
    engagement_score: float | None
    engine: str
    errors: int = 0
    failovers: int = 0
    context_injections: int = 0
    dropped_audio_chunks: int = 0
    cost: CostBreakdown | None = None
    final: bool = False
    ended_by: str = ""
    latency: Mapping[str, LatencyStats] = field(default_factory=dict)
    turn_figures: tuple[TurnFigures, ...] = ()

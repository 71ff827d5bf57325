"""How engaged a caller is, from 0 to 1: a documented formula over the call's figures.

Six observable signals, each mapped to a sub-score in [0, 1] (1 = engaged):

=================  ===========================================  ========  ===========
signal             sub-score                                    weight    unknown when
=================  ===========================================  ========  ===========
caller turns n     P = 1 − exp(−n / 3)                          0.30      never
talk ratio r       B = 1 − |r − 0.5| / 0.5  (caller's share of  0.15      nobody spoke
                   the talk time; 0.5 = an even conversation)
interruptions i    I = exp(−i / max(n, 1))                      0.15      never
response latency   L = clamp(1 − (v2v − 800 ms) / 2400 ms)      0.20      no turn measured
                   (mean voice-to-voice; ≤ 0.8 s → 1, ≥ 3.2 s → 0)
long silences s    S = exp(−s / max(n, 1))                      0.20      never
early hang-up      H = 0.5 if the caller hung up with ≤ 1 turn  factor    live calls
                   or within 15 s of the start, else 1
=================  ===========================================  ========  ===========

``score = H × Σ wₖ·subₖ / Σ wₖ`` over the known sub-scores (an unknown one drops out
and the weights of the rest are renormalised, so a missing latency does not count
as good or bad). A caller who hangs up after the greeting has n = 0, r = 0, no latency
and H = ½: at most 0.5 × (0.15 + 0.20) / 0.80 ≈ 0.22; one who talks for six turns with
a fair share of the talk and quick replies scores above 0.85.

Why these shapes: participation saturates (the tenth turn says less than the
second); talk balance is symmetric (a caller who cannot get a word in is as
disengaged as one who says nothing); interruptions and silences are counted per
turn so that a long call is not penalised for being long; latency is linear
between what feels immediate on a phone line (0.8 s) and what makes callers ask
"hello?" (3.2 s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["EngagementInputs", "EngagementWeights", "engagement_score"]

EARLY_HANGUP_S = 15.0


@dataclass(frozen=True, slots=True)
class EngagementWeights:
    """The weights of the sub-scores (any non-negative numbers; they are normalised)."""

    participation: float = 0.30
    balance: float = 0.15
    interruptions: float = 0.15
    latency: float = 0.20
    silences: float = 0.20
    early_hangup_factor: float = 0.5
    latency_good_ms: float = 800.0
    latency_bad_ms: float = 3200.0


@dataclass(frozen=True, slots=True)
class EngagementInputs:
    """The call's figures the score reads (see the module docstring)."""

    caller_turns: int
    talk_ratio: float | None  # caller share of talk time, 0..1
    interruptions: int
    mean_voice_to_voice_ms: float | None
    silences: int
    duration_s: float
    ended_by_caller: bool = False  # only a finished call can have hung up early


_DEFAULT = EngagementWeights()


def engagement_score(x: EngagementInputs, w: EngagementWeights = _DEFAULT) -> float:
    """The engagement of a call, 0..1 (module docstring)."""
    n = max(x.caller_turns, 0)
    per_turn = max(n, 1)
    parts: list[tuple[float, float]] = [
        (w.participation, 1.0 - math.exp(-n / 3.0)),
        (w.interruptions, math.exp(-max(x.interruptions, 0) / per_turn)),
        (w.silences, math.exp(-max(x.silences, 0) / per_turn)),
    ]
    if x.talk_ratio is not None:
        parts.append((w.balance, max(0.0, 1.0 - abs(x.talk_ratio - 0.5) / 0.5)))
    if x.mean_voice_to_voice_ms is not None:
        span = max(w.latency_bad_ms - w.latency_good_ms, 1.0)
        lat = 1.0 - (x.mean_voice_to_voice_ms - w.latency_good_ms) / span
        parts.append((w.latency, min(1.0, max(0.0, lat))))
    total_w = sum(weight for weight, _ in parts)
    score = sum(weight * sub for weight, sub in parts) / total_w if total_w > 0 else 0.0
    if x.ended_by_caller and (n <= 1 or x.duration_s < EARLY_HANGUP_S):
        score *= w.early_hangup_factor
    return min(1.0, max(0.0, score))

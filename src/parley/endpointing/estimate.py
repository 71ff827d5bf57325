"""One signal's opinion about the end of a turn, and how opinions add up.

Every end-of-turn signal (the transcript's syntax, the dialogue context, the
Smart Turn audio model) answers the same question — *is the caller done?* — as an
:class:`Estimate`: a probability that the turn is finished, a weight (how much to
trust this signal) and a short reason for logs and benches. :func:`combine` adds
the signals' weighted log-odds (a naive-Bayes sum around an even prior): two
signals that agree make the verdict surer, a strong one outvotes a weak one, and a
signal with no opinion simply returns ``None`` and is left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Estimate", "combine", "logit"]

_EPS = 1e-4


@dataclass(frozen=True, slots=True)
class Estimate:
    """``p_finished`` in [0, 1]: the signal's probability that the turn is over."""

    p_finished: float
    reason: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_finished <= 1.0:  # also rejects NaN
            raise ValueError(f"p_finished must be in [0, 1], not {self.p_finished!r}")
        if not self.weight >= 0.0:
            raise ValueError(f"weight must be ≥ 0, not {self.weight!r}")


def logit(p: float) -> float:
    p = min(1.0 - _EPS, max(_EPS, p))
    return math.log(p / (1.0 - p))


def combine(estimates: Iterable[Estimate | None]) -> float:
    """The combined probability that the turn is finished (0.5 when nobody knows)."""
    total = sum(e.weight * logit(e.p_finished) for e in estimates if e is not None)
    total = max(-30.0, min(30.0, total))
    return 1.0 / (1.0 + math.exp(-total))

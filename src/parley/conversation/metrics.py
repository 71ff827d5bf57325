"""Per-turn latency figures of one conversation and their summary."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from parley.events import TurnMetrics

__all__ = ["ConversationMetrics", "LatencySummary", "summarize"]


@dataclass(frozen=True, slots=True)
class LatencySummary:
    count: int
    p50_ms: float | None
    p90_ms: float | None
    mean_ms: float | None


def summarize(values: Sequence[float | None]) -> LatencySummary:
    """Percentiles of the measured values (``None`` entries are skipped)."""
    xs = np.array([v for v in values if v is not None], dtype=np.float64)
    if xs.size == 0:
        return LatencySummary(0, None, None, None)
    p50, p90 = np.percentile(xs, [50, 90])
    return LatencySummary(int(xs.size), float(p50), float(p90), float(xs.mean()))


_FIELDS = (
    "voice_to_voice_ms",
    "end_of_turn_ms",
    "stt_ms",
    "llm_first_token_ms",
    "tts_first_byte_ms",
)


class ConversationMetrics:
    """The :class:`~parley.events.TurnMetrics` of each turn, in order."""

    __slots__ = ("_turns",)

    def __init__(self) -> None:
        self._turns: list[TurnMetrics] = []

    def add(self, metrics: TurnMetrics) -> None:
        self._turns.append(metrics)

    def __iter__(self) -> Iterator[TurnMetrics]:
        return iter(self._turns)

    def __len__(self) -> int:
        return len(self._turns)

    @property
    def turns(self) -> list[TurnMetrics]:
        return list(self._turns)

    def summary(self) -> dict[str, LatencySummary]:
        """p50/p90/mean of each latency field over the turns so far."""
        return {f: summarize([getattr(m, f) for m in self._turns]) for f in _FIELDS}

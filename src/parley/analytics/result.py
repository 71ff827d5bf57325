"""What an analytics processor says about a finished call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["AnalyticsResult", "ResolutionStatus", "sentiment_label"]


class ResolutionStatus(StrEnum):
    RESOLVED = "resolved"  # the caller's need was met and they said so
    UNRESOLVED = "unresolved"  # the call ended with the need unmet
    ESCALATED = "escalated"  # handed to a person (or the caller asked for one)
    ONGOING = "ongoing"  # neither: the conversation was still open
    UNKNOWN = "unknown"  # nothing to judge (the caller never spoke)


_STATUSES = frozenset(s.value for s in ResolutionStatus)


def sentiment_label(score: float) -> str:
    """VADER's conventional thresholds: ≥ 0.05 positive, ≤ −0.05 negative."""
    if score >= 0.05:
        return "positive"
    if score <= -0.05:
        return "negative"
    return "neutral"


@dataclass(frozen=True, slots=True)
class AnalyticsResult:
    """Sentiment (−1..1, or a label of your own), topics, resolution status, anything else.

    ``resolution_status`` takes a :class:`ResolutionStatus` or its value as a string
    (``"resolved"``, as seed 000 writes it); any other string is kept as given.
    ``custom`` holds a processor's own fields (JSON-serialisable values).
    """

    sentiment: float | str = 0.0
    topics: Sequence[str] = ()
    resolution_status: ResolutionStatus | str = ResolutionStatus.UNKNOWN
    custom: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "topics", tuple(self.topics))
        status = self.resolution_status
        if (
            not isinstance(status, ResolutionStatus)
            and status in ResolutionStatus._value2member_map_
        ):
            object.__setattr__(self, "resolution_status", ResolutionStatus(status))
        object.__setattr__(self, "custom", dict(self.custom))

    @property
    def sentiment_label(self) -> str:
        s = self.sentiment
        return sentiment_label(float(s)) if isinstance(s, int | float) else str(s)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sentiment": self.sentiment,
            "sentiment_label": self.sentiment_label,
            "topics": list(self.topics),
            "resolution_status": str(self.resolution_status),
            "custom": dict(self.custom),
        }

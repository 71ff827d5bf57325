"""Finished calls as records, and their cost totals per user, session, tier or day.

:class:`CallRecord` is the small row a store keeps per finished call (the store itself
comes with the production issue); :func:`aggregate_costs` is a pure function over a
list of them — what ``GET /analytics/costs?group_by=user|session|tier|day`` returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from enum import StrEnum

from parley.metrics.conversation_metrics import ConversationMetrics
from parley.metrics.cost import CostBreakdown

__all__ = ["CallRecord", "CostTotal", "GroupBy", "aggregate_costs"]

_PARTS = ("realtime", "llm", "stt", "tts", "telephony")


class GroupBy(StrEnum):
    USER = "user"
    SESSION = "session"
    TIER = "tier"
    DAY = "day"


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One finished call. Times are wall-clock epoch seconds (``time.time()``)."""

    session_id: str
    user_id: str
    tier: str
    started_at: float
    ended_at: float
    cost: CostBreakdown
    engagement_score: float | None = None
    turns: int = 0

    @classmethod
    def from_summary(
        cls,
        summary: ConversationMetrics,
        *,
        user_id: str,
        tier: str = "",
        ended_at: float,
    ) -> CallRecord:
        """The record of a call from its final metrics; ``ended_at`` is wall-clock."""
        return cls(
            session_id=summary.session_id,
            user_id=user_id,
            tier=tier,
            started_at=ended_at - summary.duration_ms / 1000.0,
            ended_at=ended_at,
            cost=summary.cost or CostBreakdown(),
            engagement_score=summary.engagement_score,
            turns=summary.turns,
        )


@dataclass(frozen=True, slots=True)
class CostTotal:
    """The calls of one group and what they cost (USD), by part."""

    key: str
    calls: int
    cost_usd: float
    duration_s: float
    by_part: Mapping[str, float] = field(default_factory=dict)
    cpu_seconds: Mapping[str, float] = field(default_factory=dict)
    unpriced: tuple[str, ...] = ()  # models some call used without a price: a lower bound

    def as_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "calls": self.calls,
            "cost_usd": self.cost_usd,
            "duration_s": self.duration_s,
            "by_part": dict(self.by_part),
            "cpu_seconds": dict(self.cpu_seconds),
            "unpriced": list(self.unpriced),
        }


def _key(record: CallRecord, group_by: GroupBy, tz: tzinfo) -> str:
    if group_by is GroupBy.USER:
        return record.user_id
    if group_by is GroupBy.SESSION:
        return record.session_id
    if group_by is GroupBy.TIER:
        return record.tier
    return datetime.fromtimestamp(record.started_at, tz).date().isoformat()


class _Acc:
    __slots__ = ("calls", "cpu", "duration", "parts", "unpriced")

    def __init__(self) -> None:
        self.calls = 0
        self.duration = 0.0
        self.parts = dict.fromkeys(_PARTS, 0.0)
        self.cpu: dict[str, float] = {}
        self.unpriced: dict[str, None] = {}


def aggregate_costs(
    records: Iterable[CallRecord],
    group_by: GroupBy | str,
    *,
    since: float | None = None,
    until: float | None = None,
    tz: tzinfo = UTC,
) -> list[CostTotal]:
    """Cost totals of the calls started in [``since``, ``until``) per ``group_by``.

    Days are calendar days in ``tz`` (UTC by default) of each call's start, listed in
    date order; users, sessions and tiers are listed most expensive first.
    """
    by = GroupBy(group_by)
    groups: dict[str, _Acc] = {}
    for r in records:
        if (since is not None and r.started_at < since) or (
            until is not None and r.started_at >= until
        ):
            continue
        acc = groups.setdefault(_key(r, by, tz), _Acc())
        acc.calls += 1
        acc.duration += max(0.0, r.ended_at - r.started_at)
        for part in _PARTS:
            acc.parts[part] += getattr(r.cost, part)
        for component, seconds in r.cost.cpu_seconds.items():
            acc.cpu[component] = acc.cpu.get(component, 0.0) + seconds
        acc.unpriced.update(dict.fromkeys(r.cost.unpriced))
    totals = [
        CostTotal(
            key=key,
            calls=acc.calls,
            cost_usd=sum(acc.parts.values()),
            duration_s=acc.duration,
            by_part=dict(acc.parts),
            cpu_seconds=dict(acc.cpu),
            unpriced=tuple(acc.unpriced),
        )
        for key, acc in groups.items()
    ]
    if by is GroupBy.DAY:
        totals.sort(key=lambda t: t.key)
    else:
        totals.sort(key=lambda t: (-t.cost_usd, t.key))
    return totals

"""What the dashboard and the analytics routes show, computed from plain rows (pure).

Histograms use the Prometheus buckets (:data:`~parley.metrics.prometheus.LATENCY_BUCKETS`,
in ms here) so that the page and ``/metrics`` agree; context-injection performance is
count, p50 and p99 per source (``trigger:semantic``, ``trigger:periodic``,
``trigger:event``, ``provider``, ``rest``, ``app``, …) of the ``ContextInjected``
events; incidents are counted by kind with the newest errors and failovers listed.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from parley.analytics.history import IncidentRow
from parley.metrics.conversation_metrics import ConversationMetrics, latency_stats
from parley.metrics.meter import Incident
from parley.metrics.prometheus import LATENCY_BUCKETS

__all__ = [
    "HISTOGRAM_EDGES_MS",
    "HISTOGRAM_FIELDS",
    "context_performance",
    "engagement_trend",
    "histogram",
    "incident_summary",
    "metrics_json",
]

#: The figures the dashboard draws a histogram of, in this order.
HISTOGRAM_FIELDS = (
    "voice_to_voice_ms",
    "llm_first_token_ms",
    "tts_first_byte_ms",
    "end_of_turn_ms",
    "played_voice_to_voice_ms",
)
HISTOGRAM_EDGES_MS: tuple[float, ...] = tuple(round(b * 1000.0, 3) for b in LATENCY_BUCKETS)


def _stats(values: Sequence[float]) -> dict[str, float | int | None]:
    s = latency_stats(values)
    return {"count": s.count, "p50_ms": s.p50_ms, "p90_ms": s.p90_ms, "p99_ms": s.p99_ms}


def histogram(values: Sequence[float]) -> dict[str, Any]:
    """Counts per bucket (a value ≤ an edge falls in that edge's bucket; the last
    bucket is everything above the largest edge), with the count, p50, p90 and p99."""
    counts = [0] * (len(HISTOGRAM_EDGES_MS) + 1)
    for v in values:
        counts[bisect.bisect_left(HISTOGRAM_EDGES_MS, v)] += 1
    return {"edges_ms": list(HISTOGRAM_EDGES_MS), "counts": counts, **_stats(values)}


def context_performance(incidents: Iterable[IncidentRow]) -> list[dict[str, Any]]:
    """Per context source: how many injections and their latency p50/p99, busiest first."""
    by_source: dict[str, list[float]] = {}
    for i in incidents:
        if i.kind == Incident.CONTEXT_INJECTED:
            by_source.setdefault(i.detail or "unknown", []).append(i.value)
    rows = [{"source": source, **_stats(values)} for source, values in by_source.items()]
    rows.sort(key=lambda r: (-int(r["count"] or 0), str(r["source"])))
    return rows


def incident_summary(incidents: Sequence[IncidentRow], *, recent: int = 20) -> dict[str, Any]:
    """Counts of errors (fatal ones too), failovers and barge-ins; the newest errors and
    failovers (``incidents`` newest first)."""
    counts = dict.fromkeys((k.value for k in Incident), 0)
    for i in incidents:
        counts[i.kind] = counts.get(i.kind, 0) + 1
    shown = (Incident.ERROR, Incident.FATAL_ERROR, Incident.FAILOVER)
    listed = [
        {"session_id": i.session_id, "at": i.at, "kind": i.kind, "detail": i.detail}
        for i in incidents
        if i.kind in shown
    ][:recent]
    return {
        "errors": counts[Incident.ERROR] + counts[Incident.FATAL_ERROR],
        "fatal_errors": counts[Incident.FATAL_ERROR],
        "failovers": counts[Incident.FAILOVER],
        "interruptions": counts[Incident.INTERRUPTION],
        "context_injections": counts[Incident.CONTEXT_INJECTED],
        "recent": listed,
    }


def engagement_trend(
    calls: Iterable[Mapping[str, Any]], *, limit: int = 200
) -> list[dict[str, Any]]:
    """(end time, engagement) of finished calls, oldest first (rows with ``ended_at``,
    ``engagement`` and ``session_id``)."""
    points = [
        {"at": c["ended_at"], "score": c["engagement"], "session_id": c["session_id"]}
        for c in calls
        if c.get("engagement") is not None
    ]
    points.sort(key=lambda p: p["at"])
    return points[-limit:]


def metrics_json(m: ConversationMetrics, *, turns: bool = False) -> dict[str, Any]:
    """A ConversationMetrics as JSON-ready data (``turns``: with the per-turn figures)."""
    skip = {"cost", "latency", "turn_figures"}
    d: dict[str, Any] = {
        f.name: getattr(m, f.name) for f in dataclasses.fields(m) if f.name not in skip
    }
    d["cost"] = m.cost.as_dict() if m.cost is not None else None
    d["latency"] = {k: dataclasses.asdict(v) for k, v in m.latency.items()}
    if turns:
        d["turn_figures"] = [dataclasses.asdict(t) for t in m.turn_figures]
    return d

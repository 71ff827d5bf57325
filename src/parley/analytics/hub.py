"""``AnalyticsHub``: the process's side of every call's metrics and analytics.

The switchboard holds one hub. For each call it opens a :class:`CallMetrics` (the
call's :class:`~parley.metrics.CallMeter`, wired to the hub, the Prometheus registry
and the OpenTelemetry tracer) and feeds it every event and playback report; when the
call ends it closes it. From there, all off the call's path:

- ``@app.on_metrics_update`` handlers get each turn's snapshot (and the final
  summary) in a task of their own: a slow handler delays nobody, a failing one is
  logged; more than ``handler_tasks`` in flight and new updates are dropped (counted).
- With ``enable_analytics``: the finished call goes to the
  :class:`~parley.analytics.history.CallHistory` (SQLite, written on one thread of its
  own) and to the :class:`~parley.analytics.queue.AnalyticsQueue`, which runs the app's
  ``@app.analytics_processor`` (or the built-in one) on its own thread and loop; the
  result is stored with the call.
- The :class:`~parley.analytics.feed.LiveFeed` tells open dashboards what happened.

What the hot path pays: per ``AudioDelta``, one ``time.monotonic()`` and the meter's
``observe`` (a type check, a multiply, a few additions); per inbound audio frame,
nothing (the meter sees no caller audio; playback reports are per mark, not per frame).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from parley.analytics.feed import LiveFeed
from parley.analytics.history import CallHistory, IncidentRow, StoredCall
from parley.analytics.processor import AnalyticsProcessor, default_processor
from parley.analytics.queue import AnalyticsJob, AnalyticsOutcome, AnalyticsQueue
from parley.analytics.result import AnalyticsResult
from parley.analytics.views import (
    HISTOGRAM_FIELDS,
    context_performance,
    engagement_trend,
    histogram,
    incident_summary,
    metrics_json,
)
from parley.conversation.transcript import Turn
from parley.errors import ConfigError
from parley.events import Event
from parley.metrics.conversation_metrics import (
    LATENCY_FIELDS,
    ConversationMetrics,
    LatencyStats,
    TurnFigures,
    latency_stats,
)
from parley.metrics.cost import CostPlan
from parley.metrics.meter import CallInfo, CallMeter, Incident, MetricsSink
from parley.metrics.prometheus import MetricsRegistry
from parley.metrics.records import CallRecord, CostTotal, GroupBy, aggregate_costs

__all__ = [
    "AnalyticsHub",
    "CallMetrics",
    "CallView",
    "HubOptions",
    "MetricsHandler",
    "view_fields",
]

log = logging.getLogger("parley.analytics")

#: ``async def f(metrics: ConversationMetrics) -> None`` (``@app.on_metrics_update``).
MetricsHandler = Callable[[ConversationMetrics], Awaitable[None]]
_T = TypeVar("_T")
_monotonic = time.monotonic
_OTEL_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


@dataclass(frozen=True, slots=True)
class HubOptions:
    """``metrics``: meters at all (False: nothing below runs); ``prometheus``: the
    ``/metrics`` registry; ``history_path``: where finished calls are kept (with
    ``enable_analytics``; None keeps the newest ``keep_finished`` in memory only)."""

    metrics: bool = True
    prometheus: bool = True
    enable_analytics: bool = False
    track_costs: bool = False
    track_engagement: bool = False
    history_path: Path | None = None
    retention_days: float = 30.0
    otlp_endpoint: str | None = None
    queue_size: int = 1000
    processor_timeout_s: float = 30.0
    handler_tasks: int = 1000
    keep_finished: int = 1000


class CallMetrics:
    """One live call's meter as the switchboard feeds it."""

    __slots__ = (
        "_hub",
        "_observe",
        "incidents",
        "kind",
        "meter",
        "session_id",
        "started_at",
        "tier",
        "user_id",
    )

    def __init__(
        self, hub: AnalyticsHub, meter: CallMeter, *, user_id: str, kind: str, tier: str
    ) -> None:
        self._hub = hub
        self.meter = meter
        self._observe = meter.observe
        self.session_id = meter.info.session_id
        self.user_id, self.kind, self.tier = user_id, kind, tier
        self.started_at = time.time()
        self.incidents: deque[IncidentRow] = deque(maxlen=500)

    def observe(self, event: Event) -> None:
        """Every event of the call, in order (the hot path: see the module docstring)."""
        snapshot = self._observe(event, _monotonic())
        if snapshot is not None:
            self._hub._turn_closed(snapshot)

    def playback(self, response_id: str, played_ms: float) -> None:
        """A playback report: the caller has heard ``played_ms`` of the reply."""
        self.meter.playback(response_id, played_ms, _monotonic())

    def live(self, now: float | None = None) -> dict[str, Any]:
        m = self.meter.snapshot(_monotonic() if now is None else now)
        return {
            "session_id": self.session_id,
            "user_id": self.user_id,
            "kind": self.kind,
            "engine": m.engine,
            "started_at": self.started_at,
            "duration_s": round(m.duration_ms / 1000.0, 1),
            "turns": m.turns,
            "voice_to_voice_ms": m.voice_to_voice_ms,
            "estimated_cost": m.estimated_cost,
            "engagement_score": m.engagement_score,
            "interruptions": m.interruptions,
            "errors": m.errors,
        }


@dataclass(slots=True)
class _Finished:
    summary: ConversationMetrics
    user_id: str
    analytics: AnalyticsResult | None = None
    analytics_error: str | None = None


@dataclass(frozen=True, slots=True)
class CallView:
    """A call's figures for the REST conversation view: live (so far) or final."""

    metrics: ConversationMetrics
    turns: tuple[TurnFigures, ...]
    latency: dict[str, LatencyStats]
    analytics: AnalyticsResult | None = None
    analytics_error: str | None = None


def view_fields(view: CallView) -> dict[str, Any]:
    """A call's figures as JSON-able fields (REST's conversation view, and the session
    store's summary of an ended call)."""
    m = view.metrics
    return {
        "metrics": {
            k: {
                "count": v.count,
                "p50_ms": v.p50_ms,
                "p90_ms": v.p90_ms,
                "p99_ms": v.p99_ms,
                "mean_ms": v.mean_ms,
            }
            for k, v in view.latency.items()
        },
        "turn_metrics": [
            {
                "turn_index": t.index,
                "status": t.status,
                "engine": t.engine,
                "interrupted": t.interrupted,
                **{f: getattr(t, f) for f in LATENCY_FIELDS},
            }
            for t in view.turns
        ],
        "estimated_cost": m.estimated_cost,
        "cost": m.cost.as_dict() if m.cost is not None else None,
        "engagement_score": m.engagement_score,
        "analytics": view.analytics.as_dict() if view.analytics is not None else None,
        "analytics_error": view.analytics_error,
    }


def _tracer(options: HubOptions) -> tuple[MetricsSink, Callable[[], object]] | None:
    """The tracer sink and its provider's shutdown (flushes the batches), when traces
    are configured (``otlp_endpoint`` or the standard OTEL variables)."""
    if not (options.otlp_endpoint or any(os.environ.get(v) for v in _OTEL_VARS)):
        return None
    try:
        from parley.metrics.tracing import CallTracer, build_tracer_provider
    except ImportError as exc:
        raise ConfigError(
            f"OpenTelemetry traces need parley-voice[otel] ({exc})", field="otlp_endpoint"
        ) from None
    provider = build_tracer_provider(otlp_endpoint=options.otlp_endpoint)
    return CallTracer(provider), provider.shutdown


class AnalyticsHub:
    """See the module docstring. ``processor`` is read at each job (a processor
    registered after the start applies to the next call); ``handlers`` is the app's
    list, read at each turn."""

    def __init__(
        self,
        options: HubOptions,
        *,
        processor: Callable[[], AnalyticsProcessor | None] = lambda: None,
        handlers: Sequence[MetricsHandler] = (),
    ) -> None:
        self.options = options
        self._processor_source = processor
        self._handlers = handlers
        on = options.metrics
        self.registry = MetricsRegistry() if on and options.prometheus else None
        traced = _tracer(options) if on else None
        self.tracer: MetricsSink | None = traced[0] if traced is not None else None
        self._tracer_shutdown = traced[1] if traced is not None else None
        analytics = on and options.enable_analytics
        self.history = (
            CallHistory(options.history_path, retention_days=options.retention_days)
            if analytics and options.history_path is not None
            else None
        )
        self.queue = (
            AnalyticsQueue(
                self._process,
                self._outcome,
                maxsize=options.queue_size,
                timeout_s=options.processor_timeout_s,
            )
            if analytics
            else None
        )
        self.feed = LiveFeed()
        self._sinks: tuple[MetricsSink, ...] = tuple(
            s for s in (self, self.registry, self.tracer) if s is not None
        )
        self._live: dict[str, CallMetrics] = {}
        self._finished: OrderedDict[str, _Finished] = OrderedDict()
        self._recent_turns: deque[TurnFigures] = deque(maxlen=20_000)
        self._recent_incidents: deque[IncidentRow] = deque(maxlen=5_000)
        self._recent_calls: deque[dict[str, Any]] = deque(maxlen=options.keep_finished)
        self._writer = (
            ThreadPoolExecutor(1, thread_name_prefix="parley-history") if self.history else None
        )
        self._writes: set[asyncio.Future[Any]] = set()
        self._handler_tasks: set[asyncio.Task[None]] = set()
        self.handler_dropped = 0
        self._started = False
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """At server start: open the history (applying the retention), start the queue."""
        self._ensure_started()
        if self.history is not None:
            await self._io(self.history.open)

    def _ensure_started(self) -> None:
        if not self._started:
            self._started = True
            if self.queue is not None:
                self.queue.start()

    async def aclose(self) -> None:
        """At shutdown: finish queued analytics (bounded), flush traces, close the file."""
        if self._closed:
            return
        self._closed = True
        self.feed.close()
        if self.queue is not None and self._started:
            await self.queue.close(drain=True, wait_s=10.0)
        if self._handler_tasks:
            await asyncio.wait(self._handler_tasks, timeout=5.0)
        if self._writes:
            await asyncio.wait(self._writes, timeout=10.0)
        if self._tracer_shutdown is not None:
            await asyncio.to_thread(self._tracer_shutdown)
        if self.history is not None and self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(self._writer, self.history.close)
            self._writer.shutdown(wait=False)

    # -- calls ----------------------------------------------------------------------------

    @property
    def live_count(self) -> int:
        return len(self._live)

    def open_call(
        self, session_id: str, *, plan: CostPlan, user_id: str = "", kind: str = "", tier: str = ""
    ) -> CallMetrics | None:
        """A call starts: its meter (None when metrics are off)."""
        if not self.options.metrics:
            return None
        meter = CallMeter(
            session_id,
            _monotonic(),
            plan=plan,
            track_costs=self.options.track_costs,
            track_engagement=self.options.track_engagement,
            sinks=self._sinks,
            transport=kind,
        )
        call = self._live[session_id] = CallMetrics(
            self, meter, user_id=user_id, kind=kind, tier=tier
        )
        self.feed.publish("call_started", call.live())
        return call

    def close_call(
        self,
        call: CallMetrics,
        *,
        transcript: Sequence[Turn] = (),
        ended_by: str = "caller",
        dropped_audio_chunks: int = 0,
    ) -> ConversationMetrics:
        """A call ended: its summary; storage and analytics start, off the call's path."""
        summary = call.meter.finish(
            _monotonic(), ended_by=ended_by, dropped_audio_chunks=dropped_audio_chunks
        )
        if self._live.pop(call.session_id, None) is None:
            return summary  # closed already
        ended_at = time.time()
        self._finished[call.session_id] = _Finished(summary, call.user_id)
        while len(self._finished) > self.options.keep_finished:
            self._finished.popitem(last=False)
        row = {
            "session_id": call.session_id,
            "user_id": call.user_id,
            "tier": call.tier,
            "kind": call.kind,
            "engine": summary.engine,
            "started_at": ended_at - summary.duration_ms / 1000.0,
            "ended_at": ended_at,
            "turns": summary.turns,
            "estimated_cost": summary.estimated_cost,
            "engagement": summary.engagement_score,
            "analytics": None,
            "analytics_error": None,
        }
        self._recent_calls.appendleft(row)
        self._dispatch(summary)
        if self.options.enable_analytics:
            self._ensure_started()
            if self.history is not None:
                stored = StoredCall(
                    CallRecord.from_summary(
                        summary, user_id=call.user_id, tier=call.tier, ended_at=ended_at
                    ),
                    call.kind,
                    summary.engine,
                    metrics_json(summary),
                    summary.turn_figures,
                    tuple(call.incidents),
                    clock_offset=ended_at - _monotonic(),
                )
                self._write(self.history.save, stored)
            if self.queue is not None:
                self.queue.submit(AnalyticsJob(call.session_id, transcript, summary, call.user_id))
        self.feed.publish("call_ended", row)
        return summary

    # -- MetricsSink (the meters report here, on the calls' loop) -------------------------

    def call_started(self, call: CallInfo) -> None:
        pass

    def turn_finished(self, call: CallInfo, turn: TurnFigures) -> None:
        self._recent_turns.append(turn)
        self.feed.publish(
            "turn",
            {"session_id": call.session_id, **{f: getattr(turn, f) for f in LATENCY_FIELDS}},
        )

    def incident(self, call: CallInfo, kind: Incident, detail: str, value: float) -> None:
        row = IncidentRow(call.session_id, time.time(), kind.value, detail, value)
        self._recent_incidents.append(row)
        live = self._live.get(call.session_id)
        if live is not None:
            live.incidents.append(row)
        if kind is not Incident.INTERRUPTION:
            self.feed.publish("incident", {"session_id": call.session_id, "kind": kind.value})

    def call_finished(self, call: CallInfo, summary: ConversationMetrics) -> None:
        pass

    # -- off the call's path ----------------------------------------------------------------

    def _turn_closed(self, snapshot: ConversationMetrics) -> None:
        self._dispatch(snapshot)

    def _dispatch(self, metrics: ConversationMetrics) -> None:
        handlers = tuple(self._handlers)
        if not handlers:
            return
        if len(self._handler_tasks) >= self.options.handler_tasks:
            self.handler_dropped += 1
            if self.handler_dropped == 1 or self.handler_dropped % 100 == 0:
                log.warning(
                    "on_metrics_update: %d handler runs still pending, dropped the update of"
                    " %s (%d dropped so far)",
                    len(self._handler_tasks),
                    metrics.session_id,
                    self.handler_dropped,
                )
            return
        task = asyncio.get_running_loop().create_task(self._run_handlers(handlers, metrics))
        self._handler_tasks.add(task)
        task.add_done_callback(self._handler_tasks.discard)

    async def _run_handlers(
        self, handlers: Sequence[MetricsHandler], metrics: ConversationMetrics
    ) -> None:
        for fn in handlers:
            try:
                await fn(metrics)
            # The app's code: its failure is logged and the next handler still runs.
            except Exception:
                log.exception("on_metrics_update handler failed for %s", metrics.session_id)

    async def _process(self, transcript: list[Turn]) -> AnalyticsResult:
        """On the analytics thread: the app's processor, else the built-in one."""
        fn = self._processor_source() or default_processor
        return await fn(transcript)

    def _outcome(self, outcome: AnalyticsOutcome) -> None:
        sid = outcome.job.session_id
        done = self._finished.get(sid)
        if done is not None:
            done.analytics, done.analytics_error = outcome.result, outcome.error
        result = outcome.result.as_dict() if outcome.result is not None else None
        for row in self._recent_calls:
            if row["session_id"] == sid:
                row["analytics"], row["analytics_error"] = result, outcome.error
                break
        if self.history is not None:
            self._write(self.history.save_analytics, sid, result, outcome.error)
        self.feed.publish("analytics", {"session_id": sid, "error": outcome.error})

    def _write(self, fn: Callable[..., Any], *args: Any) -> None:
        future = asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)
        self._writes.add(future)
        future.add_done_callback(self._written)

    def _written(self, future: asyncio.Future[Any]) -> None:
        self._writes.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("analytics history: %s", future.exception())

    async def _io(self, fn: Callable[..., _T], *args: Any) -> _T:
        """A read or write of the history, in order with the writes."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    # -- views ------------------------------------------------------------------------------

    def live_calls(self) -> list[dict[str, Any]]:
        now = _monotonic()
        return [c.live(now) for c in list(self._live.values())]

    def view(self, session_id: str) -> CallView | None:
        """A call's metrics so far (live) or its final summary (finished, in memory)."""
        live = self._live.get(session_id)
        if live is not None:
            turns = live.meter.turns
            return CallView(live.meter.snapshot(_monotonic()), turns, _latency(turns))
        done = self._finished.get(session_id)
        if done is None:
            return None
        s = done.summary
        return CallView(s, s.turn_figures, dict(s.latency), done.analytics, done.analytics_error)

    async def recent_calls(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest finished calls, newest first (stored ones, else those in memory)."""
        if self.history is not None:
            return await self._io(self.history.recent, limit)
        return list(self._recent_calls)[:limit]

    async def stored_call(self, session_id: str) -> dict[str, Any] | None:
        """A finished call as stored (None without history or such a call)."""
        if self.history is None:
            return None
        return await self._io(self.history.get, session_id)

    async def records(
        self, since: float | None = None, until: float | None = None, *, live: bool = False
    ) -> list[CallRecord]:
        """Finished calls as cost records (``live``: the calls in progress too, so far)."""
        if self.history is not None:
            records = await self._io(self.history.records, since, until)
        else:
            records = [
                CallRecord.from_summary(
                    f.summary,
                    user_id=f.user_id,
                    ended_at=row["ended_at"],
                    tier=row["tier"],
                )
                for row in self._recent_calls
                if (f := self._finished.get(row["session_id"])) is not None
            ]
        if live:
            now, wall = _monotonic(), time.time()
            for c in list(self._live.values()):
                records.append(
                    CallRecord.from_summary(
                        c.meter.snapshot(now), user_id=c.user_id, tier=c.tier, ended_at=wall
                    )
                )
        return records

    async def costs(
        self,
        group_by: GroupBy | str,
        *,
        since: float | None = None,
        until: float | None = None,
        live: bool = False,
    ) -> list[CostTotal]:
        return aggregate_costs(await self.records(since, until, live=live), group_by)

    async def summary(self, *, since: float | None = None) -> dict[str, Any]:
        """Everything the dashboard shows, for the calls finished since ``since`` (wall
        clock) plus those in progress."""
        live = list(self._live.values())
        if self.history is not None:
            history = self.history
            calls = await self._io(history.recent, 500, since)
            values = await self._io(history.latencies, since)
            incidents = await self._io(history.incidents, since)
            for c in live:
                for t in c.meter.turns:
                    for f in LATENCY_FIELDS:
                        v = getattr(t, f)
                        if v is not None:
                            values[f].append(v)
                incidents.extend(c.incidents)
        else:
            calls = [r for r in self._recent_calls if since is None or r["ended_at"] >= since]
            values = {
                f: [v for t in self._recent_turns if (v := getattr(t, f)) is not None]
                for f in LATENCY_FIELDS
            }
            incidents = [i for i in self._recent_incidents if since is None or i.at >= since]
        incidents.sort(key=lambda i: -i.at)
        records = await self.records(since, live=True)
        by_user = aggregate_costs(records, GroupBy.USER)
        by_session = aggregate_costs(records, GroupBy.SESSION)
        return {
            "time": time.time(),
            "since": since,
            "pid": os.getpid(),
            "analytics": self.options.enable_analytics,
            "stored": self.history is not None,
            "live": {"count": len(live), "calls": self.live_calls()},
            "finished": {
                "count": len(calls),
                "calls": calls[:50],
                "cost_usd": sum(r.cost.total for r in records),
            },
            "histograms": {f: histogram(values[f]) for f in HISTOGRAM_FIELDS},
            "cost_by_user": [t.as_dict() for t in by_user[:20]],
            "cost_by_session": [t.as_dict() for t in by_session[:20]],
            "engagement_trend": engagement_trend(calls),
            "context": context_performance(incidents),
            "incidents": incident_summary(incidents),
            "queue": {
                "depth": self.queue.depth if self.queue is not None else 0,
                "dropped": self.queue.dropped if self.queue is not None else 0,
                "failed": self.queue.failed if self.queue is not None else 0,
            },
        }

    def exposition(self) -> tuple[bytes, str]:
        """The ``/metrics`` body (queue depths set as of now)."""
        if self.registry is None:
            raise ConfigError("metrics are off (metrics: false)", field="metrics")
        self.registry.set_queue_depth("analytics", self.queue.depth if self.queue else 0)
        self.registry.set_queue_depth("metrics_handlers", len(self._handler_tasks))
        return self.registry.exposition()


def _latency(turns: Sequence[TurnFigures]) -> dict[str, LatencyStats]:
    return {f: latency_stats([getattr(t, f) for t in turns]) for f in LATENCY_FIELDS}

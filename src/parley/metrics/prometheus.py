"""The server's Prometheus metrics, correct across ``--workers N`` processes.

:class:`MetricsRegistry` is a :class:`~parley.metrics.meter.MetricsSink`: call meters
report turns, incidents and call ends to it, never audio chunks, so a scrape-able
figure costs a few counter increments per turn. What it exports (``parley_`` prefix):

- histograms (seconds, label ``engine``): ``voice_to_voice_seconds``,
  ``played_voice_to_voice_seconds``, ``llm_first_token_seconds``,
  ``tts_first_byte_seconds``, ``end_of_turn_seconds``, ``stt_seconds``,
  ``context_injection_seconds`` (label ``source``);
- counters: ``calls_total`` (label ``engine``), ``turns_total``, ``interruptions_total``,
  ``dropped_audio_chunks_total``, ``provider_errors_total`` (label ``fatal``),
  ``failovers_total``, ``cost_usd_total``, ``analytics_dropped_total``;
- gauges: ``live_calls``, ``queue_depth`` (label ``queue``).

Several worker processes: prometheus-client's multiprocess mode. Each process writes
its values to memory-mapped files under ``PROMETHEUS_MULTIPROC_DIR``, and a scrape of
any worker merges them all (:meth:`MetricsRegistry.exposition`). The variable must be
set before ``prometheus_client`` is first imported in a worker (the library picks its
value class at import) — ``parley serve --workers N`` sets it in the parent, before
the workers start; the registry refuses to start half-configured. When a worker exits,
call :func:`mark_process_dead` with its pid so its live gauges stop counting.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from parley.errors import ConfigError
from parley.metrics.conversation_metrics import ConversationMetrics, TurnFigures
from parley.metrics.meter import CallInfo, Incident

__all__ = [
    "LATENCY_BUCKETS",
    "MULTIPROC_ENV",
    "MetricsRegistry",
    "mark_process_dead",
    "render_multiprocess",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Seconds: fine around the 0.3–1.5 s a voice turn takes, coarse beyond.
LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)

_TURN_FIGURES = (
    ("voice_to_voice_ms", "voice_to_voice_seconds", "End of caller speech to first reply out"),
    (
        "played_voice_to_voice_ms",
        "played_voice_to_voice_seconds",
        "End of caller speech to the caller hearing the reply (playback reports)",
    ),
    ("llm_first_token_ms", "llm_first_token_seconds", "LLM time to first token"),
    ("tts_first_byte_ms", "tts_first_byte_seconds", "TTS time to first audio byte"),
    ("end_of_turn_ms", "end_of_turn_seconds", "Wait for the end of the caller's turn"),
    ("stt_ms", "stt_seconds", "Speech-to-text time"),
)


def mark_process_dead(pid: int, path: str | os.PathLike[str] | None = None) -> None:
    """A worker ``pid`` has exited: drop its live gauges (multiprocess mode)."""
    directory = path or os.environ.get(MULTIPROC_ENV)
    if directory:
        multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


class MetricsRegistry:
    """The process's metrics; one per worker. ``multiprocess_dir`` defaults to
    ``$PROMETHEUS_MULTIPROC_DIR`` (unset: single process)."""

    def __init__(
        self,
        *,
        multiprocess_dir: str | os.PathLike[str] | None = None,
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        env_dir = os.environ.get(MULTIPROC_ENV)
        directory = multiprocess_dir if multiprocess_dir is not None else env_dir
        self.multiprocess_dir = Path(directory) if directory else None
        if self.multiprocess_dir is not None:
            if env_dir is None or Path(env_dir) != self.multiprocess_dir:
                raise ConfigError(
                    f"multiprocess metrics need {MULTIPROC_ENV}={self.multiprocess_dir} in the"
                    " environment before prometheus_client is imported",
                    field="metrics",
                )
            if values.ValueClass is values.MutexValue:
                raise ConfigError(
                    f"{MULTIPROC_ENV} was set after prometheus_client was imported: set it"
                    " before the worker processes start",
                    field="metrics",
                )
            if not self.multiprocess_dir.is_dir():
                raise ConfigError(f"{self.multiprocess_dir} is not a directory", field="metrics")
        # Our own registry, never the global one: two registries in one process (tests,
        # two apps) must not collide. In multiprocess mode it is only written to; a
        # scrape reads every process's files instead.
        self._registry = CollectorRegistry(auto_describe=True)
        r, b = self._registry, tuple(buckets)
        self._turn_hist = [
            (attr, Histogram(f"parley_{name}", doc, ["engine"], registry=r, buckets=b))
            for attr, name, doc in _TURN_FIGURES
        ]
        self._context_hist = Histogram(
            "parley_context_injection_seconds",
            "Context injection latency",
            ["source"],
            registry=r,
            buckets=b,
        )
        self._calls = Counter("parley_calls", "Calls started", ["engine"], registry=r)
        self._turns = Counter("parley_turns", "Turns finished", ["engine"], registry=r)
        self._interruptions = Counter("parley_interruptions", "Barge-ins", registry=r)
        self._dropped = Counter(
            "parley_dropped_audio_chunks", "Caller audio chunks dropped (engine lag)", registry=r
        )
        self._errors = Counter(
            "parley_provider_errors", "Errors from engines and providers", ["fatal"], registry=r
        )
        self._failovers = Counter("parley_failovers", "Engine failovers", registry=r)
        self._cost = Counter("parley_cost_usd", "Estimated cost of finished calls", registry=r)
        self._analytics_dropped = Counter(
            "parley_analytics_dropped", "Analytics jobs dropped (queue full)", registry=r
        )
        self._live = Gauge(
            "parley_live_calls", "Calls in progress", registry=r, multiprocess_mode="livesum"
        )
        self._queues = Gauge(
            "parley_queue_depth",
            "Items waiting in a queue",
            ["queue"],
            registry=r,
            multiprocess_mode="livesum",
        )

    # -- MetricsSink ----------------------------------------------------------------------

    def call_started(self, call: CallInfo) -> None:
        self._calls.labels(call.engine).inc()
        self._live.inc()

    def turn_finished(self, call: CallInfo, turn: TurnFigures) -> None:
        self._turns.labels(turn.engine).inc()
        for attr, hist in self._turn_hist:
            ms = getattr(turn, attr)
            if ms is not None:
                hist.labels(turn.engine).observe(ms / 1000.0)

    def incident(self, call: CallInfo, kind: Incident, detail: str, value: float) -> None:
        if kind is Incident.INTERRUPTION:
            self._interruptions.inc()
        elif kind is Incident.ERROR or kind is Incident.FATAL_ERROR:
            self._errors.labels("true" if kind is Incident.FATAL_ERROR else "false").inc()
        elif kind is Incident.FAILOVER:
            self._failovers.inc()
        elif kind is Incident.CONTEXT_INJECTED:
            self._context_hist.labels(detail or "unknown").observe(value / 1000.0)

    def call_finished(self, call: CallInfo, summary: ConversationMetrics) -> None:
        self._live.dec()
        if summary.dropped_audio_chunks:
            self._dropped.inc(summary.dropped_audio_chunks)
        if summary.cost is not None and summary.cost.total > 0:
            self._cost.inc(summary.cost.total)

    # -- other inputs -----------------------------------------------------------------------

    def set_queue_depth(self, queue: str, depth: int) -> None:
        """How many items wait in ``queue`` now (set it when scraped, or periodically)."""
        self._queues.labels(queue).set(depth)

    def analytics_dropped(self, n: int = 1) -> None:
        self._analytics_dropped.inc(n)

    # -- output -----------------------------------------------------------------------------

    def exposition(self) -> tuple[bytes, str]:
        """The ``/metrics`` body and its content type: every worker's figures merged in
        multiprocess mode, this process's otherwise."""
        if self.multiprocess_dir is None:
            return generate_latest(self._registry), CONTENT_TYPE_LATEST
        return render_multiprocess(self.multiprocess_dir), CONTENT_TYPE_LATEST


def render_multiprocess(path: str | os.PathLike[str]) -> bytes:
    """The merged exposition of every process that wrote under ``path``."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
    return generate_latest(registry)

"""CPU cost of per-call analytics: the call meter and its exporters vs no analytics.

Input: one scripted 81 s call — a greeting and 12 turns, each with 2 s of caller
speech, a reply of 3 s sent as 20 ms µ-law ``AudioDelta`` chunks (50 a second, as on a
phone line), text deltas, the engine's ``TurnMetrics`` and a ``ResponseDone`` with
usage; two barge-ins, two context injections — as typed events with their times
(1,987 events, 1,800 of them audio). Every variant replays the same events ``--calls`` times:

- ``baseline``: the loop a switchboard runs anyway, handing each event to a no-op;
- ``meter``: ``CallMeter.observe`` per event and ``finish`` per call (costs on,
  engagement on), no sinks;
- ``meter_prometheus``: plus the Prometheus registry (multiprocess mode, as under
  ``--workers N``: every update writes a memory-mapped file);
- ``meter_prometheus_otel``: plus the OpenTelemetry tracer (SDK, batch processor,
  an exporter that drops the batches — everything but the network).

CPU is ``time.process_time`` (all threads: the OTel batch thread counts), best of
``--repeats``. Reported: CPU per event and per call over the baseline, CPU per second
of call, and that as a share of the server's own CPU per call — the named reference is
README's ``bench/calls.py`` figure, 0.32 % of a core per loopback call at 300 calls
(3.2 ms of CPU per second of call). The issue's goal is ≤ 2 % of server CPU.

Run: ``python bench/analytics.py`` (prints one JSON line).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# Multiprocess mode is chosen when prometheus_client is imported: set it first.
_PROM_DIR = tempfile.mkdtemp(prefix="parley-bench-prom-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _PROM_DIR

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402

from parley.events import (  # noqa: E402
    AudioDelta,
    ContextInjected,
    Event,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    Role,
    TextDelta,
    TranscriptFinal,
    TurnMetrics,
    Usage,
    UserSpeechStarted,
    UserSpeechStopped,
)
from parley.metrics import CallMeter, CostPlan, EnginePlan, MetricsSink  # noqa: E402
from parley.metrics.prometheus import MetricsRegistry  # noqa: E402
from parley.metrics.tracing import CallTracer, build_tracer_provider  # noqa: E402

SERVER_CPU_S_PER_CALL_SECOND = 0.0032  # README: bench/calls.py, 300 loopback calls
GOAL_SHARE = 0.02
CHUNK = b"\x7f" * 160  # 20 ms of µ-law at 8 kHz
PLAN = CostPlan(
    (
        EnginePlan("realtime", realtime_model="gpt-realtime"),
        EnginePlan("cascade", llm="gpt-4o-mini", stt="local", tts="local"),
    ),
    telephony="twilio-us",
)


def scripted_call() -> tuple[list[tuple[Event, float]], float]:
    events: list[tuple[Event, float]] = []
    t = 0.0
    pos = 0.0

    def reply(n: int, after: float, seconds: float, cut: bool) -> float:
        rid = f"resp_{n}"
        nonlocal t
        events.append((ResponseStarted(rid), t + after / 2))
        events.extend((TextDelta(rid, "word "), t + after * 0.8 + k * 0.05) for k in range(8))
        t += after
        chunks = int(seconds * 50)
        for i in range(chunks):
            if cut and i == chunks // 2:
                events.append((UserSpeechStarted(pos + (t * 1000)), t))
                events.append((Interrupted(rid, "half of it", i * 20.0), t))
                events.append((ResponseDone(rid, "cancelled", "half", Usage(1, 2, 0)), t))
                return t
            events.append((AudioDelta(rid, CHUNK, 8000, "ulaw", "Sure." if i == 0 else ""), t))
            if i == 0:
                events.append((TurnMetrics(n, 700.0, 250.0, 150.0, 300.0, 80.0), t))
            t += 0.02
        usage = Usage(input_text_tokens=400, input_audio_tokens=300, output_audio_tokens=60)
        events.append((ResponseDone(rid, "completed", "Sure, done.", usage), t))
        return t

    reply(0, 0.3, 3.0, False)
    for n in range(1, 13):
        t += 0.8
        events.append((UserSpeechStarted(t * 1000), t))
        t += 2.0
        events.append((UserSpeechStopped(t * 1000), t))
        events.append((TranscriptFinal(Role.USER, "I would like to check my order"), t + 0.2))
        if n in (4, 9):
            events.append((ContextInjected("orders", "semantic", 35.0), t + 0.3))
        reply(n, 0.7, 3.0, cut=n in (5, 10))
        if n in (5, 10):
            t += 1.0
            events.append((UserSpeechStopped(t * 1000), t))
    return events, t + 1.0


class DropExporter(SpanExporter):
    """Takes batches and drops them: the SDK's work without the network."""

    def export(self, spans: Sequence[object]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def cpu(fn: Callable[[], None], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    events, duration_s = scripted_call()
    audio = sum(1 for e, _ in events if type(e) is AudioDelta)
    registry = MetricsRegistry()
    provider = build_tracer_provider(exporter=DropExporter())
    tracer = CallTracer(provider)

    def noop(event: Event, at: float) -> None:
        return None

    def baseline() -> None:
        for _ in range(args.calls):
            for event, at in events:
                noop(event, at)

    def metered(sinks: Sequence[MetricsSink]) -> Callable[[], None]:
        def run() -> None:
            for i in range(args.calls):
                meter = CallMeter(f"c{i}", 0.0, plan=PLAN, sinks=sinks)
                observe = meter.observe
                for event, at in events:
                    observe(event, at)
                meter.finish(duration_s)

        return run

    def audio_only() -> None:
        meter = CallMeter("a", 0.0, plan=PLAN)
        chunks = [e for e, _ in events if type(e) is AudioDelta] * args.calls
        observe = meter.observe
        for i, chunk in enumerate(chunks):
            observe(chunk, i * 0.02)

    base = cpu(baseline, args.repeats)
    chunk_s = cpu(audio_only, args.repeats)
    variants = {
        "meter": cpu(metered(()), args.repeats),
        "meter_prometheus": cpu(metered((registry,)), args.repeats),
        "meter_prometheus_otel": cpu(metered((registry, tracer)), args.repeats),
    }
    provider.shutdown()
    n_events = len(events) * args.calls
    out: dict[str, object] = {
        "bench": "analytics",
        "calls": args.calls,
        "events_per_call": len(events),
        "audio_chunks_per_call": audio,
        "call_seconds": round(duration_s, 1),
        "baseline_ns_per_event": round(base / n_events * 1e9, 1),
        "meter_ns_per_audio_chunk": round((chunk_s / (audio * args.calls)) * 1e9, 1),
    }
    budget_us = SERVER_CPU_S_PER_CALL_SECOND * GOAL_SHARE * 1e6
    for name, total in variants.items():
        extra = max(total - base, 0.0)
        per_call = extra / args.calls
        per_call_second = per_call / duration_s
        out[f"{name}_ns_per_event"] = round(extra / n_events * 1e9, 1)
        out[f"{name}_us_per_call"] = round(per_call * 1e6, 1)
        out[f"{name}_us_per_call_second"] = round(per_call_second * 1e6, 2)
        out[f"{name}_share_of_server_cpu"] = round(
            per_call_second / SERVER_CPU_S_PER_CALL_SECOND, 4
        )
    out["budget_us_per_call_second"] = round(budget_us, 1)
    out["reference"] = "server 3.2 ms CPU per call-second (README, bench/calls.py, 300 calls)"
    share = out["meter_prometheus_otel_share_of_server_cpu"]
    out["goal_met"] = isinstance(share, float) and share <= GOAL_SHARE
    print(json.dumps(out))
    for f in Path(_PROM_DIR).glob("*.db"):
        f.unlink()
    Path(_PROM_DIR).rmdir()


if __name__ == "__main__":
    main()

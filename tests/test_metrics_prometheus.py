"""The Prometheus registry fed by call meters: one process, and two real worker
processes writing while a third reads (prometheus-client's multiprocess mode), parsed
with ``prometheus_client.parser``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from call_script import Script
from parley.errors import ConfigError
from parley.events import ContextInjected, EngineSwitched, ErrorEvent, Usage
from parley.metrics import CallMeter, CostPlan, EnginePlan
from parley.metrics.prometheus import MetricsRegistry, mark_process_dead, render_multiprocess
from servers import ROOT

PLAN = CostPlan((EnginePlan("realtime", realtime_model="gpt-realtime"),), "twilio-us")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def a_call(meter: CallMeter, script: Script) -> None:
    for event, at in script.events:
        meter.observe(event, at)


def scripted(turns: int) -> Script:
    s = Script()
    for i in range(turns):
        s.wait(0.5).say(1.0)
        if i == 1:
            s.reply(after=0.6, seconds=2.0, cut_at=0.5)
            s.wait(0.5).stop()
        s.reply(after=0.6, seconds=1.0, usage=Usage(output_audio_tokens=500))
    s.at(ErrorEvent("rate_limit_exceeded", "the caller said +1 415 555 0100"))
    s.at(ContextInjected("orders", "semantic", 120.0))
    s.at(EngineSwitched("realtime", "cascade", "upstream"))
    return s


def test_one_process_exposes_what_the_meters_reported() -> None:
    registry = MetricsRegistry(multiprocess_dir=None)
    done = CallMeter("a", 1000.0, plan=PLAN, sinks=[registry])
    a_call(done, scripted(3))
    summary = done.finish(1100.0, dropped_audio_chunks=4)
    live = CallMeter("b", 1000.0, plan=PLAN, sinks=[registry])
    a_call(live, scripted(1))
    registry.set_queue_depth("analytics", 2)
    registry.analytics_dropped()
    body, content_type = registry.exposition()
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert value(text, "parley_calls_total", engine="realtime") == 2
    assert value(text, "parley_live_calls") == 1
    # Turns: 3 + 1 answered, + the cancelled reply of the barge-in in call a.
    assert value(text, "parley_turns_total", engine="realtime") == 5
    assert value(text, "parley_interruptions_total") == 1
    assert value(text, "parley_provider_errors_total", fatal="false") == 2
    assert value(text, "parley_failovers_total") == 2
    assert value(text, "parley_dropped_audio_chunks_total") == 4
    assert summary.cost is not None and summary.cost.total > 0
    assert value(text, "parley_cost_usd_total") == pytest.approx(summary.cost.total)
    assert value(text, "parley_queue_depth", queue="analytics") == 2
    assert value(text, "parley_analytics_dropped_total") == 1
    v2v = ("parley_voice_to_voice_seconds_count", (("engine", "realtime"),))
    assert samples(text)[v2v] == 5
    le_1s = value(text, "parley_voice_to_voice_seconds_bucket", engine="realtime", le="1.0")
    le_05 = value(text, "parley_voice_to_voice_seconds_bucket", engine="realtime", le="0.5")
    assert (le_05, le_1s) == (0, 5)  # every reply came 0.6 s after the speech ended
    ctx = value(text, "parley_context_injection_seconds_sum", source="semantic")
    assert ctx == pytest.approx(0.24)
    # An error message never becomes a label (the sample values hold process start
    # times, which may contain the digits: only labels are searched).
    labels = [v for _, pairs in samples(text) for _, v in pairs]
    assert labels and not any("415" in v or "caller said" in v for v in labels)


WORKER = textwrap.dedent(
    """
    import sys
    from call_script import Script
    from parley.events import Usage
    from parley.metrics import CallMeter
    from parley.metrics.prometheus import MetricsRegistry

    finished, live = int(sys.argv[1]), int(sys.argv[2])
    registry = MetricsRegistry()
    for i in range(finished + live):
        s = Script()
        for _ in range(2):
            s.wait(0.5).say(1.0).reply(after=0.7, seconds=1.0, usage=Usage(output_audio_tokens=100))
        meter = CallMeter(f"call-{i}", s.start, sinks=[registry])
        for event, at in s.events:
            meter.observe(event, at)
        if i < finished:
            meter.finish(s.t)
    print("ready", flush=True)
    sys.stdin.readline()  # stay alive (with live calls) until the test lets go
    """
)


@pytest.fixture
def multiproc_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "prom"
    d.mkdir()
    yield d


def start_worker(directory: Path, finished: int, live: int) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(finished), str(live)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"  # blocks until it has written
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("\n")
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    proc.stdout.close()


def test_two_worker_processes_are_merged_by_the_collector(multiproc_dir: Path) -> None:
    a = start_worker(multiproc_dir, finished=2, live=1)
    b = start_worker(multiproc_dir, finished=3, live=2)
    try:
        text = render_multiprocess(multiproc_dir).decode()
        assert value(text, "parley_calls_total", engine="loopback") == 8
        assert value(text, "parley_turns_total", engine="loopback") == 16
        assert value(text, "parley_live_calls") == 3
        hist = ("parley_voice_to_voice_seconds_count", (("engine", "loopback"),))
        assert samples(text)[hist] == 16
        assert value(
            text, "parley_voice_to_voice_seconds_bucket", engine="loopback", le="0.8"
        ) == pytest.approx(16)
        assert value(
            text, "parley_voice_to_voice_seconds_bucket", engine="loopback", le="0.6"
        ) == pytest.approx(0)
        # Worker a exits: its counters stay, its live calls stop counting.
        stop(a)
        mark_process_dead(a.pid, multiproc_dir)
        after = render_multiprocess(multiproc_dir).decode()
        assert value(after, "parley_calls_total", engine="loopback") == 8
        assert value(after, "parley_live_calls") == 2
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                stop(proc)


def test_a_half_configured_multiprocess_registry_is_refused(multiproc_dir: Path) -> None:
    # This test process imported prometheus_client without the variable set.
    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR"):
        MetricsRegistry(multiprocess_dir=multiproc_dir)

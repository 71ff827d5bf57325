"""bench/analytics.py runs and prints one JSON line with its figures."""

from __future__ import annotations

import json
import subprocess
import sys

from servers import ROOT


def test_bench_prints_one_json_line() -> None:
    out = subprocess.run(
        [sys.executable, "bench/analytics.py", "--calls", "3", "--repeats", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out.stdout
    result = json.loads(lines[0])
    assert result["bench"] == "analytics" and result["calls"] == 3
    assert result["audio_chunks_per_call"] == 1800
    for name in ("meter", "meter_prometheus", "meter_prometheus_otel"):
        assert result[f"{name}_us_per_call"] >= 0
        assert 0 <= result[f"{name}_share_of_server_cpu"] < 1
    assert isinstance(result["goal_met"], bool)

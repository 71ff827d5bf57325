"""``bench/mark_truth.py``: the default mark cadence keeps the playback truth within its
stated bound, and sends fewer messages than a mark per chunk (a small run)."""

from __future__ import annotations

import json
import subprocess
import sys

from servers import ROOT


def test_default_cadence_is_honest_within_its_bound_and_sends_fewer_messages() -> None:
    out = subprocess.run(
        [sys.executable, "bench/mark_truth.py", "--trials", "12"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["default"] == "mark_ms=100"
    assert result["stated_bound_ms"] == 140
    assert result["default_within_bound"] is True
    runs = result["cadences"]
    for kind in ("tts", "echo"):
        for cadence in ("per-chunk", "mark_ms=100", "mark_ms=200", "mark_ms=500"):
            error = runs[f"{kind} {cadence}"]["error_ms"]
            assert error["min"] >= 0  # a report is never ahead of what was heard
    # A mark per 20 ms echo message is more exact, at 100 messages a second each way;
    # the default trades that for 60 a second and errors within 110 ms.
    per_chunk, default = runs["echo per-chunk"], runs["echo mark_ms=100"]
    assert per_chunk["error_ms"]["max"] <= 40
    assert default["error_ms"]["max"] <= 140
    assert default["messages_sent_per_s"] < 0.7 * per_chunk["messages_sent_per_s"]
    assert default["messages_received_per_s"] < 0.7 * per_chunk["messages_received_per_s"]
    # Longer intervals loosen the bound with the interval.
    assert runs["echo mark_ms=500"]["error_ms"]["max"] > 200

"""Local models cost no money but CPU: a real model call timed on its worker thread."""

from __future__ import annotations

import time

import pytest

from parley.metrics import CallMeter, CostPlan, EnginePlan, cpu_timed
from parley.providers.minilm import MiniLMEmbedder
from parley.providers.models import run_blocking


async def test_a_local_model_call_reports_cpu_seconds_at_no_cost() -> None:
    embedder = MiniLMEmbedder()
    await run_blocking(embedder.load)  # loading is not the call's work
    texts = ["I would like to check the status of my order, please."] * 16
    vectors, cpu_s = await run_blocking(cpu_timed(embedder.embed), texts)
    assert len(vectors) == 16 and cpu_s > 0.0
    plan = CostPlan((EnginePlan("cascade", llm="echo", stt="local:whisper", tts="local"),))
    meter = CallMeter("c", 0.0, plan=plan)
    meter.add_cpu("embeddings", cpu_s)
    meter.add_cpu("embeddings", cpu_s)
    cost = meter.cost(30.0)
    assert cost is not None
    assert cost.total == 0.0 and cost.unpriced == ()
    assert cost.cpu_seconds == {"embeddings": pytest.approx(2 * cpu_s)}


def test_thread_time_counts_work_not_waiting() -> None:
    def busy_then_idle() -> int:
        t0, n = time.thread_time(), 0
        while time.thread_time() - t0 < 0.05:  # 50 ms of this thread's CPU
            n += 1
        time.sleep(0.2)  # waiting costs no CPU
        return n

    n, cpu_s = cpu_timed(busy_then_idle)()
    assert n > 0
    assert 0.05 <= cpu_s < 0.15  # the 200 ms sleep is not in it
    _, whole = cpu_timed(busy_then_idle, process=True)()
    assert whole >= 0.05

"""The analytics queue keeps processors off the call's path: a slow, blocking or failing
processor never delays or breaks the calls' loop; a full queue drops and counts."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from call_script import Script
from parley.analytics import (
    AnalyticsJob,
    AnalyticsOutcome,
    AnalyticsQueue,
    AnalyticsResult,
    ResolutionStatus,
    default_processor,
)
from parley.conversation.transcript import Turn
from parley.events import Role
from parley.metrics import CallMeter

TRANSCRIPT = [
    Turn(Role.ASSISTANT, "Hi, how can I help?", 0.0, 1.0),
    Turn(Role.USER, "I need a refund for my order, it arrived broken.", 1.0, 3.0),
    Turn(Role.ASSISTANT, "Done: the refund is on its way.", 3.0, 5.0),
    Turn(Role.USER, "Perfect, thank you!", 5.0, 6.0),
]


class Outcomes:
    """The sink: collects outcomes and says on which thread it was called."""

    def __init__(self) -> None:
        self.items: list[AnalyticsOutcome] = []
        self.threads: set[int] = set()
        self.changed = asyncio.Event()

    def __call__(self, outcome: AnalyticsOutcome) -> None:
        self.items.append(outcome)
        self.threads.add(threading.get_ident())
        self.changed.set()

    async def wait_for(self, n: int) -> list[AnalyticsOutcome]:
        async with asyncio.timeout(30):
            while len(self.items) < n:
                self.changed.clear()
                await self.changed.wait()
        return self.items


def job(sid: str) -> AnalyticsJob:
    return AnalyticsJob(sid, TRANSCRIPT, user_id="u1")


async def a_call_on_this_loop() -> float:
    """What a call does on the calls' loop: meter a scripted call, yielding between
    events as the switchboard's event loop would. Returns the longest stall (s)."""
    s = Script()
    for _ in range(3):
        s.wait(0.3).say(1.0).reply(after=0.5, seconds=1.5)
    meter = CallMeter("live", s.start)
    worst, last = 0.0, time.perf_counter()
    for event, at in s.events:
        meter.observe(event, at)
        await asyncio.sleep(0)  # one loop turn per event, as a live call gives the loop
        now = time.perf_counter()
        worst, last = max(worst, now - last), now
    meter.finish(s.t)
    return worst


async def test_the_default_processor_result_reaches_the_sink_on_the_calls_loop() -> None:
    sink = Outcomes()
    queue = AnalyticsQueue(default_processor, sink)
    queue.start()
    assert queue.submit(job("c1"))
    (outcome,) = await sink.wait_for(1)
    await queue.close()
    assert outcome.error is None and outcome.result is not None
    assert outcome.result.resolution_status is ResolutionStatus.RESOLVED
    assert {"refund", "orders"} <= set(outcome.result.topics)
    assert sink.threads == {threading.get_ident()}
    assert (queue.done, queue.failed, queue.dropped, queue.depth) == (1, 0, 0, 0)


async def test_a_blocking_processor_does_not_stall_the_calls() -> None:
    release = threading.Event()

    async def hog(transcript: list[Turn]) -> AnalyticsResult:
        release.wait(20)  # blocks its thread outright, as CPU work in an async def would
        return AnalyticsResult(sentiment=0.1)

    sink = Outcomes()
    queue = AnalyticsQueue(hog, sink, concurrency=1)
    queue.start()
    t0 = time.perf_counter()
    assert queue.submit(job("c1")) and queue.submit(job("c2"))
    submit_s = time.perf_counter() - t0
    # While the analytics thread is stuck, a call runs on this loop without stalls.
    worst = await a_call_on_this_loop()
    assert not sink.items  # really still stuck
    release.set()
    outcomes = await sink.wait_for(2)
    await queue.close()
    assert submit_s < 0.05
    assert worst < 0.25  # a stuck processor on this loop would stall it for 20 s
    assert all(o.error is None for o in outcomes)


async def test_a_slow_processor_times_out_and_the_next_job_runs() -> None:
    never = asyncio.Event()

    async def slow_then_fine(transcript: list[Turn]) -> AnalyticsResult:
        if transcript[1].text.startswith("slow"):
            await never.wait()
        return AnalyticsResult(topics=["fine"])

    sink = Outcomes()
    queue = AnalyticsQueue(slow_then_fine, sink, concurrency=1, timeout_s=0.3)
    queue.start()
    slow = AnalyticsJob("slow", [TRANSCRIPT[0], Turn(Role.USER, "slow one", 1, 2)])
    assert queue.submit(slow) and queue.submit(job("fast"))
    first, second = await sink.wait_for(2)
    await queue.close()
    assert (first.job.session_id, first.result, first.error) == (
        "slow",
        None,
        "timeout after 0.3 s",
    )
    assert second.result is not None and second.result.topics == ("fine",)
    assert queue.timeouts == 1


async def test_a_failing_processor_breaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(transcript: list[Turn]) -> AnalyticsResult:
        if len(transcript) > 2:
            raise ValueError("no sentiment for you")
        return AnalyticsResult(sentiment=0.5)

    sink = Outcomes()
    queue = AnalyticsQueue(broken, sink)
    queue.start()
    with caplog.at_level(logging.WARNING, logger="parley.analytics"):
        assert queue.submit(job("bad"))
        assert queue.submit(AnalyticsJob("good", TRANSCRIPT[:2]))
        outcomes = await sink.wait_for(2)
        worst = await a_call_on_this_loop()
    await queue.close()
    by_sid = {o.job.session_id: o for o in outcomes}
    assert by_sid["bad"].error == "ValueError: no sentiment for you"
    assert by_sid["good"].result == AnalyticsResult(sentiment=0.5)
    assert queue.failed == 1 and worst < 0.25
    assert any("no sentiment for you" in r.getMessage() for r in caplog.records)


async def test_a_full_queue_drops_counts_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()

    async def stuck(transcript: list[Turn]) -> AnalyticsResult:
        release.wait(20)
        return AnalyticsResult()

    sink = Outcomes()
    queue = AnalyticsQueue(stuck, sink, maxsize=3, concurrency=1)
    queue.start()
    with caplog.at_level(logging.WARNING, logger="parley.analytics"):
        accepted = [queue.submit(job(f"c{i}")) for i in range(5)]
    assert accepted == [True, True, True, False, False]
    assert queue.dropped == 2 and queue.depth == 3
    drops = [r for r in caplog.records if "dropped the job" in r.getMessage()]
    assert len(drops) == 1 and "c3" in drops[0].getMessage()  # first drop logged, not each
    release.set()
    await sink.wait_for(3)
    await queue.close()
    assert queue.depth == 0


async def test_an_async_sink_and_close_without_draining() -> None:
    got: list[str] = []

    async def store(outcome: AnalyticsOutcome) -> None:
        await asyncio.sleep(0)  # a sink that suspends, as a real one's I/O would
        got.append(outcome.job.session_id)

    never = asyncio.Event()

    async def hangs(transcript: list[Turn]) -> AnalyticsResult:
        await never.wait()
        return AnalyticsResult()

    queue = AnalyticsQueue(default_processor, store)
    queue.start()
    queue.submit(job("a"))
    await queue.close()  # drains: the async sink has run
    assert got == ["a"]
    assert not queue.submit(job("late")) and queue.dropped == 1

    stuck = AnalyticsQueue(hangs, store, timeout_s=60)
    stuck.start()
    stuck.submit(job("b"))
    t0 = time.perf_counter()
    await stuck.close(drain=False)
    assert time.perf_counter() - t0 < 5 and got == ["a"]


def test_a_job_copies_the_transcript() -> None:
    turns = [Turn(Role.USER, "hello", 0.0)]
    j = AnalyticsJob("c", turns)
    turns[0].text = "changed later by the live call"
    assert j.transcript[0].text == "hello"

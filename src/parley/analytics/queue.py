"""Analytics off the call's path: a bounded queue worked by its own thread and loop.

When a call ends the switchboard ``submit``\\s an :class:`AnalyticsJob` — O(1), never
blocks, never awaits. Processors run on a separate thread with its own event loop,
``concurrency`` at a time, each under ``timeout_s``; the outcome (a result, or the
error / timeout) goes to the ``sink`` on the loop that started the queue. So:

- a slow processor delays nobody: the calls' loop never waits for it, and one that
  blocks its thread outright (CPU work in an ``async def``) blocks only the analytics
  thread — the GIL is shared, but the calls' loop keeps being scheduled;
- a failing processor breaks nothing: its exception becomes the job's outcome, logged;
- a full queue drops the new job, counts it (``dropped``) and logs it (the first drop,
  then every 100th) rather than queueing without bound.

A timed-out processor that awaits is cancelled; one that blocks cannot be interrupted
and simply holds its worker until it returns (so the queue fills and drops instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from parley.analytics.processor import AnalyticsProcessor
from parley.analytics.result import AnalyticsResult
from parley.conversation.transcript import Turn
from parley.errors import ConfigError
from parley.metrics.conversation_metrics import ConversationMetrics

__all__ = ["AnalyticsJob", "AnalyticsOutcome", "AnalyticsQueue", "OutcomeSink"]

log = logging.getLogger("parley.analytics")


@dataclass(frozen=True, slots=True)
class AnalyticsJob:
    """One finished call to analyse. ``transcript`` is copied when the job is made."""

    session_id: str
    transcript: Sequence[Turn]
    metrics: ConversationMetrics | None = None
    user_id: str = ""

    def __post_init__(self) -> None:
        # The call's Turn objects are mutable: freeze a copy for the other thread.
        object.__setattr__(
            self,
            "transcript",
            tuple(
                Turn(t.role, t.text, t.started_at, t.ended_at, t.interrupted, t.response_id)
                for t in self.transcript
            ),
        )


@dataclass(frozen=True, slots=True)
class AnalyticsOutcome:
    job: AnalyticsJob
    result: AnalyticsResult | None
    error: str | None  # "timeout after 30 s", "ValueError: …"; None on success
    elapsed_ms: float


OutcomeSink = Callable[[AnalyticsOutcome], Awaitable[None] | None]


class AnalyticsQueue:
    """Runs ``processor`` on finished calls, off the calls' loop (module docstring)."""

    def __init__(
        self,
        processor: AnalyticsProcessor,
        sink: OutcomeSink,
        *,
        maxsize: int = 1000,
        concurrency: int = 2,
        timeout_s: float = 30.0,
    ) -> None:
        if maxsize < 1 or concurrency < 1 or timeout_s <= 0:
            raise ConfigError(
                "analytics queue: maxsize and concurrency ≥ 1, timeout > 0", field="analytics"
            )
        self._processor = processor
        self._sink = sink
        self._maxsize = maxsize
        self._concurrency = concurrency
        self._timeout = timeout_s
        self._lock = threading.Lock()
        self._pending = 0  # submitted, not yet finished (queued or running)
        self.dropped = 0
        self.failed = 0
        self.timeouts = 0
        self.done = 0
        self._owner: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: asyncio.Queue[AnalyticsJob | None] | None = None
        self._thread: threading.Thread | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._ready = threading.Event()
        self._idle = asyncio.Event()
        self._sink_tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- the calls' side ------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Jobs submitted and not finished yet."""
        return self._pending

    def start(self) -> None:
        """Start the worker thread; call it on the loop that should receive outcomes."""
        if self._thread is not None:
            return
        self._owner = asyncio.get_running_loop()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="parley-analytics", daemon=True)
        self._thread.start()
        self._ready.wait()

    def submit(self, job: AnalyticsJob) -> bool:
        """Queue ``job``; ``False`` (counted, logged) if the queue is full or closed."""
        loop, jobs = self._loop, self._jobs
        if loop is None or jobs is None or self._closed:
            return self._drop(job, "not running")
        with self._lock:
            if self._pending >= self._maxsize:
                full = True
            else:
                full = False
                self._pending += 1
        if full:
            return self._drop(job, f"full ({self._maxsize})")
        self._idle.clear()
        loop.call_soon_threadsafe(jobs.put_nowait, job)
        return True

    def _drop(self, job: AnalyticsJob, why: str) -> bool:
        with self._lock:
            self.dropped += 1
            n = self.dropped
        if n == 1 or n % 100 == 0:
            log.warning(
                "analytics queue %s: dropped the job of %s (%d dropped so far)",
                why,
                job.session_id,
                n,
            )
        return False

    async def close(self, *, drain: bool = True, wait_s: float = 10.0) -> None:
        """Stop taking jobs; with ``drain``, wait (up to ``wait_s``) for those queued."""
        self._closed = True
        if drain:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), wait_s)
        loop, jobs, thread = self._loop, self._jobs, self._thread
        if loop is not None and jobs is not None and not loop.is_closed():
            if drain:  # let the workers finish what is queued, then stop
                for _ in range(self._concurrency):
                    loop.call_soon_threadsafe(jobs.put_nowait, None)
            else:
                loop.call_soon_threadsafe(self._stop_now)
        if thread is not None:
            await asyncio.to_thread(thread.join, wait_s)
        if self._sink_tasks:
            await asyncio.gather(*self._sink_tasks, return_exceptions=True)

    # -- the worker thread ----------------------------------------------------------------

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._jobs = asyncio.Queue()
        self._ready.set()
        self._workers = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]
        # Cancelled workers (close without draining) end the loop like finished ones.
        await asyncio.gather(*self._workers, return_exceptions=True)

    def _stop_now(self) -> None:
        for task in self._workers:
            task.cancel()

    async def _work(self) -> None:
        assert self._jobs is not None
        while (job := await self._jobs.get()) is not None:
            t0 = time.perf_counter()
            result: AnalyticsResult | None = None
            error: str | None = None
            try:
                result = await asyncio.wait_for(
                    self._processor(list(job.transcript)), self._timeout
                )
            except TimeoutError:
                error = f"timeout after {self._timeout:g} s"
                with self._lock:
                    self.timeouts += 1
            # An app's processor is third-party code whose failure must stay its own:
            # any exception becomes the job's outcome instead of ending the worker.
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                with self._lock:
                    self.failed += 1
                log.warning("analytics processor failed for %s: %s", job.session_id, error)
            outcome = AnalyticsOutcome(job, result, error, (time.perf_counter() - t0) * 1000)
            with self._lock:
                self.done += 1
            owner = self._owner
            if owner is not None and not owner.is_closed():
                owner.call_soon_threadsafe(self._deliver, outcome)

    # -- back on the owner loop -----------------------------------------------------------

    def _deliver(self, outcome: AnalyticsOutcome) -> None:
        try:
            maybe = self._sink(outcome)
        # The sink is the app's (the store, the dashboard feed): log, keep delivering.
        except Exception:
            log.exception("analytics sink failed for %s", outcome.job.session_id)
            maybe = None
        if maybe is not None and inspect.isawaitable(maybe):
            task = asyncio.ensure_future(self._await_sink(maybe, outcome))
            self._sink_tasks.add(task)
            task.add_done_callback(self._sink_tasks.discard)
        self._finish_one()

    async def _await_sink(self, pending: Awaitable[None], outcome: AnalyticsOutcome) -> None:
        try:
            await pending
        except Exception:
            log.exception("analytics sink failed for %s", outcome.job.session_id)

    def _finish_one(self) -> None:
        with self._lock:
            self._pending -= 1
            idle = self._pending == 0
        if idle:
            self._idle.set()

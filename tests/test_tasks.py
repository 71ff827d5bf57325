"""``cancel_and_wait``: the task stops, our own cancellation is never swallowed."""

from __future__ import annotations

import asyncio

import pytest

from parley.tasks import cancel_and_wait


async def test_cancels_and_waits_for_the_task() -> None:
    cleaned = asyncio.Event()
    waiting = asyncio.Event()

    async def worker() -> None:
        try:
            waiting.set()
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    task = asyncio.create_task(worker())
    await waiting.wait()
    await cancel_and_wait(task)
    assert task.cancelled() and cleaned.is_set()


async def test_a_done_task_and_none_are_fine() -> None:
    task = asyncio.create_task(asyncio.sleep(0))  # a task that ends at once
    await task
    await cancel_and_wait(task)
    await cancel_and_wait(None)


async def test_a_failure_the_task_already_had_is_raised() -> None:
    async def fail() -> None:
        raise ValueError("boom")

    task = asyncio.create_task(fail())
    await asyncio.wait([task])
    with pytest.raises(ValueError, match="boom"):
        await cancel_and_wait(task)


async def test_the_waiters_own_cancellation_propagates() -> None:
    stubborn_started = asyncio.Event()
    stopping = asyncio.Event()  # the cancellation has reached it
    release = asyncio.Event()  # it may finish stopping

    async def stubborn() -> None:
        # Takes a while to stop: the waiter is cancelled during that time.
        stubborn_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopping.set()
            await release.wait()
            raise

    inner = asyncio.create_task(stubborn())
    await stubborn_started.wait()
    reached_after = False

    async def waiter() -> None:
        nonlocal reached_after
        await cancel_and_wait(inner)
        reached_after = True  # must not run: the waiter was cancelled

    outer = asyncio.create_task(waiter())
    await stopping.wait()  # the waiter has cancelled ``inner`` and waits for it
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert not reached_after
    assert not inner.done()  # the waiter stopped waiting; ``inner`` is still stopping
    release.set()
    await asyncio.wait([inner])

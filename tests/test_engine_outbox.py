"""``EventOutbox``: the queue semantics every engine relies on (back-pressure, the end
gets through, clear keeps the end), and the per-frame memory of the phone hot path."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from parley.engines.outbox import EventOutbox
from servers import ROOT


async def test_items_in_order_then_the_end_stops_iteration_every_time() -> None:
    box: EventOutbox[int] = EventOutbox(10)
    for i in range(3):
        box.put_nowait(i)
    box.end()
    assert [i async for i in box] == [0, 1, 2]
    assert [i async for i in box] == []  # iterating again ends again
    assert box.qsize() == 1  # the end marker


async def test_the_consumer_waits_for_an_item() -> None:
    box: EventOutbox[str] = EventOutbox(2)
    got = asyncio.create_task(anext(aiter(box)))
    await asyncio.sleep(0)  # one turn of the loop: the task runs up to its wait, no guess
    assert not got.done()
    box.put_nowait("a")
    assert await asyncio.wait_for(got, 1) == "a"


async def test_put_waits_for_room_put_nowait_raises_and_end_makes_room() -> None:
    box: EventOutbox[int] = EventOutbox(2)
    box.put_nowait(1)
    await box.put(2)
    with pytest.raises(asyncio.QueueFull):
        box.put_nowait(3)
    blocked = asyncio.create_task(box.put(3))
    await asyncio.sleep(0)  # one turn of the loop: the put runs up to its wait
    assert not blocked.done()
    items = aiter(box)
    assert await anext(items) == 1  # room: the waiting producer goes on
    await asyncio.wait_for(blocked, 1)
    assert box.qsize() == 2
    box.end()  # full: the oldest item makes room for the end
    assert [i async for i in items] == [3]


async def test_a_cancelled_put_passes_the_room_on() -> None:
    box: EventOutbox[int] = EventOutbox(1)
    box.put_nowait(0)
    first = asyncio.create_task(box.put(1))
    second = asyncio.create_task(box.put(2))
    await asyncio.sleep(0)  # one turn of the loop: both puts run up to their waits
    first.cancel()
    items = aiter(box)
    assert await anext(items) == 0
    await asyncio.wait_for(second, 1)
    assert first.cancelled()
    assert await anext(items) == 2


async def test_clear_drops_items_but_not_the_end() -> None:
    box: EventOutbox[int] = EventOutbox(0)  # unbounded
    for i in range(5):
        box.put_nowait(i)
    assert box.clear() == 5
    box.put_nowait(9)
    box.end()
    assert box.clear() == 1
    assert [i async for i in box] == []


def test_the_phone_hot_path_keeps_nothing_per_frame_and_allocates_little() -> None:
    out = subprocess.run(
        [sys.executable, "bench/frame_allocs.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["frames"] == 2000
    # One media message per frame and one mark per five (the default cadence).
    assert result["messages_sent_per_frame"] == pytest.approx(1.2, abs=0.01)
    # A call that runs for hours must not grow per frame.
    assert result["retained_bytes_per_frame"] < 16
    assert result["blocks_per_frame"] < 0.1
    # Everything one frame allocates at once: the JSON in, payload, event, JSON out, the
    # awaits (and this harness's own). Measured ~3.7 KB; the bound catches a regression
    # such as a copy of the frame per step or a task per frame.
    assert result["peak_bytes_per_frame"] < 6000

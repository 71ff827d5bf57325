"""``EventOutbox``: an engine's bounded queue of events, with an end.

Every engine yields its events from one of these: ``put`` waits while the
consumer lags (back-pressure: events are never dropped), ``end`` always gets
through (it makes room if it must — the consumer is gone or hopelessly behind, and
the end of the call wins), and iterating stops after it. One queue hop, no task.

Why not ``asyncio.Queue``: on a phone call this hop carries every 20 ms frame of
audio out, and the outbox has exactly one consumer, the conversation's event pump.
A deque with one waiting future for that consumer (and a line of futures for
producers waiting for room) does the same with less per item: no unfinished-task
count, no ``Event`` to clear, and the outbox is its own async iterator, so the pump's
``async for`` goes through no async generator. ``tests/test_engine_outbox.py``
holds it to the queue's semantics.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final, Generic, TypeVar

__all__ = ["EventOutbox"]

T = TypeVar("T")


class _End:
    pass


_END: Final = _End()


class EventOutbox(Generic[T]):
    """A bounded queue for one consumer; ``maxsize`` ≤ 0 means unbounded."""

    __slots__ = ("_getter", "_items", "_maxsize", "_putters")

    def __init__(self, maxsize: int) -> None:
        self._items: deque[T | _End] = deque()
        self._maxsize = maxsize
        self._getter: asyncio.Future[None] | None = None  # the consumer, waiting for an item
        self._putters: deque[asyncio.Future[None]] = deque()  # producers waiting for room

    def _full(self) -> bool:
        return 0 < self._maxsize <= len(self._items)

    def _wake_getter(self) -> None:
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    def _wake_putter(self) -> None:
        while self._putters:
            putter = self._putters.popleft()
            if not putter.done():
                putter.set_result(None)
                return

    async def put(self, item: T) -> None:
        while self._full():
            putter = asyncio.get_running_loop().create_future()
            self._putters.append(putter)
            try:
                await putter
            except BaseException:
                putter.cancel()
                if not self._full():  # the room we were woken for goes to the next one
                    self._wake_putter()
                raise
        self._items.append(item)
        self._wake_getter()

    def put_nowait(self, item: T) -> None:
        """Raises ``asyncio.QueueFull`` (a caller that drops, counts)."""
        if self._full():
            raise asyncio.QueueFull
        self._items.append(item)
        self._wake_getter()

    def end(self) -> None:
        """No more events; what is queued is still delivered, unless it had to make room."""
        while self._full():
            self._items.popleft()
        self._items.append(_END)
        self._wake_getter()

    def clear(self) -> int:
        """Drop what is queued (not the end); how many were dropped."""
        ended = any(item is _END for item in self._items)
        dropped = len(self._items) - ended
        self._items.clear()
        if ended:
            self._items.append(_END)  # the end stays the end
        while self._putters and not self._full():
            self._wake_putter()
        return dropped

    def qsize(self) -> int:
        return len(self._items)

    def __aiter__(self) -> EventOutbox[T]:
        return self

    async def __anext__(self) -> T:
        items = self._items
        while not items:
            getter = self._getter = asyncio.get_running_loop().create_future()
            try:
                await getter
            finally:
                self._getter = None
        item = items.popleft()
        if isinstance(item, _End):
            items.appendleft(item)  # iterating again ends again
            raise StopAsyncIteration
        if self._putters:
            self._wake_putter()
        return item

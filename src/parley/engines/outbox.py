"""``EventOutbox``: an engine's bounded queue of events, with an end.

Every engine yields its events from one of these: ``put`` waits while the
consumer lags (back-pressure: events are never dropped), ``end`` always gets
through (it makes room if it must — the consumer is gone or hopelessly behind, and
the end of the call wins), and iterating stops after it. One queue hop, no task.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Final, Generic, TypeVar

__all__ = ["EventOutbox"]

T = TypeVar("T")


class _End:
    pass


_END: Final = _End()


class EventOutbox(Generic[T]):
    __slots__ = ("_queue",)

    def __init__(self, maxsize: int) -> None:
        self._queue: asyncio.Queue[T | _End] = asyncio.Queue(maxsize)

    async def put(self, item: T) -> None:
        await self._queue.put(item)

    def put_nowait(self, item: T) -> None:
        """Raises ``asyncio.QueueFull`` (a caller that drops, counts)."""
        self._queue.put_nowait(item)

    def end(self) -> None:
        """No more events; what is queued is still delivered, unless it had to make room."""
        while self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(_END)

    def clear(self) -> int:
        """Drop what is queued (not the end); how many were dropped."""
        dropped = 0
        while not self._queue.empty():
            if isinstance(self._queue.get_nowait(), _End):
                self._queue.put_nowait(_END)  # the end stays the end
                break
            dropped += 1
        return dropped

    def qsize(self) -> int:
        return self._queue.qsize()

    async def __aiter__(self) -> AsyncIterator[T]:
        get = self._queue.get
        while not isinstance(item := await get(), _End):
            yield item

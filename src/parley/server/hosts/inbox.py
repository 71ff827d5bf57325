"""``FrameInbox``: frames a callback-style framework pushes, pulled by ``WireSocket.receive``.

Django Channels and python-socketio hand each frame to a handler method; the call
streams pull with ``await socket.receive()``. The inbox between them is bounded so
a slow call pushes back on the framework's reader for that one connection instead
of buffering without limit (hot-path rule: queues bounded).
"""

from __future__ import annotations

import asyncio
from typing import Final

__all__ = ["INBOX_FRAMES", "FrameInbox"]

#: Frames buffered per connection (about 1.3 s of 20 ms audio frames).
INBOX_FRAMES: Final = 64


class FrameInbox:
    """A bounded FIFO of frames with an end: ``get()`` returns None once it ended."""

    __slots__ = ("_ended", "_queue")

    def __init__(self, maxsize: int = INBOX_FRAMES) -> None:
        self._queue: asyncio.Queue[str | bytes | None] = asyncio.Queue(maxsize)
        self._ended = False

    @property
    def ended(self) -> bool:
        return self._ended

    async def put(self, frame: str | bytes) -> None:
        """Queue one frame, waiting while the inbox is full; dropped once it ended."""
        if not self._ended:
            await self._queue.put(frame)

    def end(self) -> None:
        """The peer left: frames already queued are still delivered, then None."""
        if self._ended:
            return
        self._ended = True
        if not self._queue.full():
            self._queue.put_nowait(None)  # wakes a reader blocked on an empty inbox
        # When full, the reader drains it and then sees ``ended`` (see get()).

    def discard(self) -> None:
        """Our side closed: drop what is queued, which frees a framework handler
        blocked in ``put()``, and wake a reader blocked in ``get()`` with None."""
        self._ended = True
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def get(self) -> str | bytes | None:
        if self._ended and self._queue.empty():
            return None
        return await self._queue.get()

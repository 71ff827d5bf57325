"""The dashboard's live feed: what happens to calls, pushed to every open page.

:class:`LiveFeed` fans small JSON-ready messages out to subscribers (one bounded queue
per open page, read by a server-sent-events response). Publishing never blocks and
never awaits: a page that does not keep up loses messages (counted) rather than
holding memory or the calls' loop — it re-reads the summary anyway.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["FeedMessage", "LiveFeed"]

#: (kind, data): ``call_started``, ``turn``, ``incident``, ``call_ended``, ``analytics``;
#: ``None`` ends the subscription (the server is shutting down).
FeedMessage = tuple[str, dict[str, Any]] | None


class LiveFeed:
    def __init__(self, *, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[FeedMessage]] = set()
        self.dropped = 0
        self.closed = False

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> asyncio.Queue[FeedMessage]:
        queue: asyncio.Queue[FeedMessage] = asyncio.Queue(self._queue_size)
        if self.closed:
            queue.put_nowait(None)
        else:
            self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[FeedMessage]) -> None:
        self._subscribers.discard(queue)

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        if not self._subscribers:
            return
        for queue in self._subscribers:
            try:
                queue.put_nowait((kind, data))
            except asyncio.QueueFull:
                self.dropped += 1

    def close(self) -> None:
        """End every subscription (each reader gets ``None``)."""
        self.closed = True
        for queue in self._subscribers:
            while True:
                try:
                    queue.put_nowait(None)
                    break
                except asyncio.QueueFull:
                    queue.get_nowait()  # make room for the end marker
        self._subscribers.clear()

"""``LoopbackEngine``: every caller's audio straight back, for transport and load tests.

It does no speech work at all, so what a load test measures is the transport and
the conversation plumbing: decode, resample, queue, encode, send. Audio goes from
``send_audio`` into one bounded queue that ``events()`` drains; when the consumer
lags the newest chunk is dropped and counted (a real-time echo must not build up
delay). Typed text is ignored.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from parley.engines.seams import ToolRunner
from parley.events import AudioDelta, Event

__all__ = ["LoopbackEngine"]

_END = object()


class LoopbackEngine:
    """Echoes PCM16 mono at ``sample_rate`` as one endless response ``response_id``."""

    def __init__(
        self, sample_rate: int = 8000, *, queue_chunks: int = 100, response_id: str = "loopback"
    ) -> None:
        self._rate = sample_rate
        self._response_id = response_id
        self._queue: asyncio.Queue[object] = asyncio.Queue(queue_chunks)
        self._closed = asyncio.Event()
        self.dropped_audio_chunks = 0
        self.echoed_chunks = 0
        self.played_ms = 0.0  # the transport's latest playback report

    @property
    def input_sample_rate(self) -> int:
        return self._rate

    def queue_depths(self) -> dict[str, int]:
        return {"audio_out": self._queue.qsize()}

    async def run(self) -> None:
        try:
            await self._closed.wait()
        finally:
            while self._queue.full():  # the end must get through
                self._queue.get_nowait()
            self._queue.put_nowait(_END)

    async def events(self) -> AsyncIterator[Event]:
        get = self._queue.get
        while (item := await get()) is not _END:
            yield item  # type: ignore[misc]

    async def send_audio(self, pcm: bytes) -> None:
        if self._closed.is_set():
            return
        try:
            self._queue.put_nowait(AudioDelta(self._response_id, pcm, self._rate))
            self.echoed_chunks += 1
        except asyncio.QueueFull:
            self.dropped_audio_chunks += 1

    async def send_text(self, text: str) -> None:
        return

    async def report_playback(self, response_id: str, played_ms: float) -> None:
        self.played_ms = played_ms

    async def inject_context(self, key: str, data: object) -> None:
        return

    async def update(
        self, *, instructions: str | None = None, tools: ToolRunner | None = None
    ) -> None:
        return

    async def close(self) -> None:
        self._closed.set()

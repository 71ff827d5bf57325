"""``LoopbackEngine``: every caller's audio straight back, for transport and load tests.

It does no speech work at all, so what a load test measures is the transport and
the conversation plumbing: decode, resample, queue, encode, send. Audio goes from
``send_audio`` into one bounded queue that ``events()`` drains; when the consumer
lags the newest chunk is dropped and counted (a real-time echo must not build up
delay). Typed text is ignored.

Built with the line's own ``encoding`` (``"ulaw"`` for Twilio), it declares that
format as its ``input_format``: the conversation then hands it the caller's bytes
untouched and passes its ``AudioDelta``s straight back out, so a loopback phone call
does no decode, resample or encode at all — the load test measures the transport.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Literal, get_args

from parley.audio.format import AudioFormat
from parley.endpointing import PhasePolicy
from parley.engines.outbox import EventOutbox
from parley.engines.seams import EngineStats, ToolRunner
from parley.engines.text_hooks import TextHook
from parley.errors import ConfigError
from parley.events import AudioDelta, Event
from parley.providers.seams import Message

__all__ = ["LoopbackEngine"]

log = logging.getLogger("parley.engines")


Encoding = Literal["pcm16", "ulaw", "alaw"]
_ENCODINGS = frozenset(get_args(Encoding))


class LoopbackEngine:
    """Echoes mono audio at ``sample_rate`` as one endless response ``response_id``.

    ``encoding`` is what it takes and gives back: PCM16 (the default), or the line's
    G.711 (``"ulaw"``/``"alaw"``) for pass-through on a phone call.
    """

    def __init__(
        self,
        sample_rate: int = 8000,
        *,
        encoding: str = "pcm16",
        queue_chunks: int = 100,
        response_id: str = "loopback",
    ) -> None:
        if encoding not in _ENCODINGS:
            raise ConfigError(
                f"loopback echoes pcm16, ulaw or alaw, not {encoding!r}", field="encoding"
            )
        self._rate = sample_rate
        self._encoding: Encoding = encoding  # type: ignore[assignment]
        self._format = AudioFormat(self._encoding, sample_rate, 1)
        self._response_id = response_id
        self._queue: EventOutbox[Event] = EventOutbox(queue_chunks)
        self._closed = asyncio.Event()
        self.dropped_audio_chunks = 0
        self.echoed_chunks = 0
        self.played_ms = 0.0  # the transport's latest playback report

    @property
    def input_format(self) -> AudioFormat:
        """What ``send_audio`` takes; a line in this format is passed through untouched."""
        return self._format

    def stats(self) -> EngineStats:
        return EngineStats(
            "loopback", {"audio_out": self._queue.qsize()}, self.dropped_audio_chunks
        )

    async def run(self) -> None:
        try:
            await self._closed.wait()
        finally:
            self._queue.end()

    def events(self) -> AsyncIterator[Event]:
        return self._queue  # the outbox is its own iterator: no generator per frame

    async def send_audio(self, pcm: bytes) -> None:
        if self._closed.is_set():
            return
        try:
            self._queue.put_nowait(
                AudioDelta(self._response_id, pcm, self._rate, encoding=self._encoding)
            )
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
        self,
        *,
        instructions: str | None = None,
        tools: ToolRunner | None = None,
        turn_taking: PhasePolicy | None = None,
    ) -> None:
        return

    async def close(self) -> None:
        self._closed.set()

    # -- capabilities (engines/seams.py): trivial for an engine that does not think ------

    def seed_history(self, messages: Sequence[Message]) -> None:
        return  # an echo has no conversation to continue

    async def greet(self, text: str) -> None:
        return  # an echo has no voice of its own

    async def cancel_response(self, response_id: str) -> None:
        """Drop the echo not yet taken by the transport."""
        if response_id != self._response_id:
            return
        self._queue.clear()

    def set_text_hooks(
        self, *, request: TextHook | None = None, response: TextHook | None = None
    ) -> None:
        if request is not None or response is not None:
            log.warning("the loopback engine handles no text: text middleware does not run")

"""Waiting on state without polling: ``Watch`` and the fakes that notify one.

A test that must wait for something to happen waits for the thing, not for a
guess of how long it takes. What the code under test already reports (engine
events through :class:`parley.testing.events.EventLog`, a hook, a future) comes
first; ``Watch`` is for the state only a test's own stand-in sees, such as how
often a fake STT was called:

    stt = WatchedSTT("hello")
    ...
    await stt.watch.until(lambda: stt.returned >= 1)

``Watch.until`` checks the predicate each time ``notify()`` is called, never on a
timer; ``limit_s`` is only how long it may take before the test fails.

The fake Realtime upstream has the same wait of its own,
:meth:`parley.testing.RealtimeUpstream.until`, woken by what its sockets record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from parley.errors import ParleyError
from parley.providers.seams import Transcript
from parley.testing.fakes import FakeSTT

__all__ = ["Watch", "WatchedSTT"]


class Watch:
    """A change signal: ``notify()`` where the state may have changed, ``until()``
    to wait for a predicate on it."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def notify(self) -> None:
        self._changed.set()

    async def until(self, predicate: Callable[[], object], limit_s: float = 5.0) -> None:
        async with asyncio.timeout(limit_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


class WatchedSTT(FakeSTT):
    """A :class:`FakeSTT` that notifies ``watch`` when a transcription starts
    (``calls`` grows) and when one returns (``returned`` counts them; a cancelled
    one never returns)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.watch = Watch()
        self.returned = 0

    async def transcribe(self, pcm: bytes) -> Transcript:
        self.watch.notify()  # ``calls`` has grown by the time a waiter runs
        try:
            result = await super().transcribe(pcm)
        except ParleyError:
            self._returned()
            raise
        self._returned()
        return result

    def _returned(self) -> None:
        self.returned += 1
        self.watch.notify()

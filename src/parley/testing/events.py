"""``EventLog``: every event an engine emitted so far, and a way to wait for more.

log = EventLog(engine)
async with asyncio.TaskGroup() as tg:
    tg.create_task(engine.run())
    tg.create_task(log.collect())
    await engine.send_text("hi")
    await log.until(lambda: bool(log.of(ResponseDone)))
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from parley.engines.seams import Engine
from parley.events import Event

__all__ = ["EventLog"]


class EventLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    async def collect(self) -> None:
        """Record the engine's events until its stream ends (run it as a task)."""
        async for event in self.engine.events():
            self.events.append(event)
            self._changed.set()

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def until(self, predicate: Callable[[], bool], limit_s: float = 5.0) -> None:
        """Wait until ``predicate()`` holds (checked at each new event)."""
        async with asyncio.timeout(limit_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

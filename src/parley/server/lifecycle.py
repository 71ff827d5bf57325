"""Start-up and graceful shutdown.

uvicorn, on SIGTERM, closes every WebSocket at once with 1012 before the app's
lifespan hears of it, which would cut live phone calls mid-sentence. So when the
app runs under a uvicorn server that captured the signals (``parley serve``,
``app.run()``, ``uvicorn myapp:app.asgi``), start-up chains our own SIGTERM handler
in front of uvicorn's: it drains first — new calls are refused (REST 503,
WebSocket close 1013, ``/readyz`` 503), live calls get ``settings.drain_seconds``
to finish, the rest are closed with 1001 — and only then lets uvicorn stop. A
second SIGTERM stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from types import FrameType
from typing import Any

import uvicorn

from parley.server.switchboard import Switchboard

__all__ = ["drain", "install_drain_on_sigterm"]

log = logging.getLogger("parley.server")

_tasks: set[asyncio.Task[None]] = set()


async def drain(board: Switchboard, seconds: float | None = None) -> None:
    """Refuse new calls, wait up to ``seconds`` for live ones, then end the rest."""
    board.draining = True
    budget = board.settings.drain_seconds if seconds is None else seconds
    live = len(board.calls.active())
    log.info("draining: %d live call(s), up to %.0f s", live, budget)
    deadline = time.monotonic() + budget
    # Calls still in their handshake when draining began may register late: look again.
    while (active := board.calls.active()) and (left := deadline - time.monotonic()) > 0:
        await board.calls.wait_finished(active, left)
    if board.calls.active():
        await board.end_all("server shutting down")
        await board.calls.wait_finished(board.calls.active(), 2.0)
    log.info("drained")


def install_drain_on_sigterm(board: Switchboard) -> bool:
    """Chain a draining SIGTERM handler in front of uvicorn's; False if not under uvicorn."""
    previous = signal.getsignal(signal.SIGTERM)
    if not isinstance(getattr(previous, "__self__", None), uvicorn.Server) or not callable(
        previous
    ):
        return False  # not a uvicorn server's handler (tests, embedding): leave it alone
    uvicorn_handler: Any = previous
    loop = asyncio.get_running_loop()

    async def drain_then_stop(sig: int) -> None:
        try:
            await drain(board)
        finally:
            uvicorn_handler(sig, None)

    def start(sig: int) -> None:
        task = loop.create_task(drain_then_stop(sig))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        if board.draining:
            uvicorn_handler(sig, frame)  # a second SIGTERM: stop now
            return
        board.draining = True  # refuse new calls from this instant
        loop.call_soon_threadsafe(start, sig)

    signal.signal(signal.SIGTERM, on_sigterm)
    return True

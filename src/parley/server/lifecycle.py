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
from typing import TYPE_CHECKING, Any

import uvicorn

from parley.transports.socket import CLOSE_GOING_AWAY

if TYPE_CHECKING:
    from parley.app import Parley

__all__ = ["drain", "end_all_calls", "install_drain_on_sigterm", "startup_messages"]

log = logging.getLogger("parley.server")

_tasks: set[asyncio.Task[None]] = set()


def startup_messages(app: Parley) -> list[tuple[int, str]]:
    """(level, message) pairs the server logs at start."""
    msgs = [(logging.INFO, app.engine_choice().banner())]
    if app.twilio_tokens is None:
        msgs.append(
            (
                logging.WARNING,
                "Twilio requests are NOT authenticated: set PARLEY_TWILIO_AUTH_TOKEN to check "
                "X-Twilio-Signature and the stream's one-time tokens",
            )
        )
    else:
        msgs.append(
            (logging.INFO, "Twilio requests are authenticated (signature + one-time token)")
        )
    if app.settings.realtime_server_api_key is None:
        msgs.append(
            (
                logging.WARNING,
                "/v1/realtime accepts any client: set PARLEY_REALTIME_SERVER_API_KEY to "
                "require a key",
            )
        )
    return msgs


async def end_all_calls(app: Parley, reason: str) -> None:
    for record in app.calls.active():
        if record.stream is not None:
            await record.stream.end(CLOSE_GOING_AWAY, reason)
        if record.conversation is not None:
            await record.conversation.end()


async def drain(app: Parley, seconds: float | None = None) -> None:
    """Refuse new calls, wait up to ``seconds`` for live ones, then end the rest."""
    app.draining = True
    budget = app.settings.drain_seconds if seconds is None else seconds
    live = len(app.calls.active())
    log.info("draining: %d live call(s), up to %.0f s", live, budget)
    deadline = time.monotonic() + budget
    # Calls still in their handshake when draining began may register late: look again.
    while (active := app.calls.active()) and (left := deadline - time.monotonic()) > 0:
        await app.calls.wait_finished(active, left)
    if app.calls.active():
        await end_all_calls(app, "server shutting down")
        await app.calls.wait_finished(app.calls.active(), 2.0)
    log.info("drained")


def install_drain_on_sigterm(app: Parley) -> bool:
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
            await drain(app)
        finally:
            uvicorn_handler(sig, None)

    def start(sig: int) -> None:
        task = loop.create_task(drain_then_stop(sig))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        if app.draining:
            uvicorn_handler(sig, frame)  # a second SIGTERM: stop now
            return
        app.draining = True  # refuse new calls from this instant
        loop.call_soon_threadsafe(start, sig)

    signal.signal(signal.SIGTERM, on_sigterm)
    return True

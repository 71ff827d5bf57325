"""Cancelling a task and waiting for it, without losing our own cancellation.

The common idiom ``task.cancel(); with suppress(CancelledError): await task`` has a
hole: if the *waiting* task is itself cancelled while it waits, the suppress eats
that cancellation too, and the waiter carries on as if nothing happened (a call
that should end keeps running). :func:`cancel_and_wait` re-raises in that case.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Future[Any] | None) -> None:
    """Cancel ``task`` and wait until it has finished.

    The task's own ``CancelledError`` (the expected outcome) is swallowed; an
    exception it had already failed with is raised here, as awaiting it would. If
    the task calling this is cancelled while it waits, that cancellation propagates.
    """
    if task is None:
        return
    task.cancel()
    if not task.done():
        # asyncio.wait never raises the task's own outcome: a CancelledError out of
        # it is ours (we were cancelled while waiting), and it propagates.
        await asyncio.wait([task])
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error

"""``LoggingMiddleware``: one line per turn on the way in (Parley's
:class:`parley.conversation.middleware.LoggingMiddleware`: conversation, length,
refusals) and one on the way out (the reply's length and the chain's time).

The words themselves are logged only with ``log_text=True``: they may hold exactly
what other middleware (PII redaction) is there to remove.
"""

from __future__ import annotations

import logging
import time
from typing import cast

from parley.conversation.middleware import LoggingMiddleware as _ParleyLogging
from parley.conversation.middleware import MiddlewareContext
from parley.realtime_conversation.core.interfaces import ConversationContext, NextMiddleware

__all__ = ["LoggingMiddleware"]

log = logging.getLogger("parley.realtime_conversation.middleware")


class LoggingMiddleware:
    """Logs each turn before and after the rest of the chain (see the module docstring)."""

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        level: int = logging.INFO,
        log_text: bool = False,
    ) -> None:
        self.logger = logger or log
        self.level = level
        self.log_text = log_text
        self._entry = _ParleyLogging(self.logger, level=level, log_text=log_text)

    async def process(
        self, context: ConversationContext, next_middleware: NextMiddleware
    ) -> ConversationContext:
        t0 = time.perf_counter()
        result = context

        async def rest(ctx: MiddlewareContext) -> MiddlewareContext:
            nonlocal result
            result = await next_middleware(cast(ConversationContext, ctx))
            return result

        await self._entry.process(context, rest)
        what = f": {result.response_text!r}" if self.log_text else ""
        self.logger.log(
            self.level,
            "%s turn %d reply (%d chars, %.1f ms)%s",
            result.conversation_id,
            result.turn_index,
            len(result.response_text),
            (time.perf_counter() - t0) * 1000,
            what,
        )
        return result

"""``TimingMiddleware``: performance monitoring and statistics.

Parley's :class:`parley.conversation.middleware.TimingMiddleware` times the rest of
the chain (``metadata["timings_ms"][name]``, slow passes logged); this keeps the
last ``window`` times and summarises them
(:func:`parley.metrics.conversation_metrics.latency_stats`).
"""

from __future__ import annotations

from collections import deque
from typing import Any, cast

from parley.conversation.middleware import MiddlewareContext
from parley.conversation.middleware import TimingMiddleware as _ParleyTiming
from parley.metrics.conversation_metrics import latency_stats as summarize
from parley.realtime_conversation.core.interfaces import ConversationContext, NextMiddleware

__all__ = ["TimingMiddleware"]


class TimingMiddleware:
    """Times each turn's rest of the chain; :meth:`get_statistics` summarises them."""

    def __init__(
        self, name: str = "pipeline", *, slow_ms: float | None = None, window: int = 1000
    ) -> None:
        self.name = name
        self._timer = _ParleyTiming(name, slow_ms=slow_ms)
        self._times: deque[float] = deque(maxlen=window)

    @property
    def last_ms(self) -> float | None:
        return self._timer.last_ms

    async def process(
        self, context: ConversationContext, next_middleware: NextMiddleware
    ) -> ConversationContext:
        result = context

        async def rest(ctx: MiddlewareContext) -> MiddlewareContext:
            nonlocal result
            result = await next_middleware(cast(ConversationContext, ctx))
            return result

        try:
            await self._timer.process(context, rest)
        finally:
            if self._timer.last_ms is not None:
                self._times.append(self._timer.last_ms)
        return result

    def get_statistics(self) -> dict[str, Any]:
        """``count``, ``mean_ms``, ``p50_ms``, ``p90_ms``, ``max_ms``, ``last_ms`` of the
        turns timed (the newest ``window``)."""
        s = summarize(list(self._times))
        return {
            "count": s.count,
            "mean_ms": s.mean_ms,
            "p50_ms": s.p50_ms,
            "p90_ms": s.p90_ms,
            "max_ms": max(self._times) if self._times else None,
            "last_ms": self.last_ms,
        }

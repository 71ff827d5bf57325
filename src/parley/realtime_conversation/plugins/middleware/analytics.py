"""``AnalyticsMiddleware``: usage, performance and error analytics of the turns.

One record per turn (when, which conversation, characters in and out, the time of
the rest of the chain, the error code if it failed), kept for ``retention_days``
(and at most ``max_records``); the statistics are computed from the records kept,
latency with :func:`parley.metrics.conversation_metrics.latency_stats`. One instance serves every
conversation of an engine. Parley's own
:class:`parley.conversation.middleware.AnalyticsMiddleware` counts app-wide passes
for ever; this one is dated, per conversation, and forgets.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from parley.errors import ConfigError, ParleyError
from parley.metrics.conversation_metrics import latency_stats as summarize
from parley.realtime_conversation.core.interfaces import ConversationContext, NextMiddleware

__all__ = ["AnalyticsMiddleware"]

_DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class _Turn:
    t: float
    conversation_id: str
    chars_in: int
    chars_out: int
    ms: float
    error: str | None


class AnalyticsMiddleware:
    """Tracks what ``track_usage``, ``track_performance`` and ``track_errors`` ask for;
    a statistics call for something not tracked returns ``{}``."""

    def __init__(
        self,
        track_usage: bool = True,
        track_performance: bool = True,
        track_errors: bool = True,
        retention_days: float = 30,
        *,
        max_records: int = 100_000,
    ) -> None:
        if not retention_days > 0:
            raise ConfigError(f"must be positive, not {retention_days}", field="retention_days")
        self.track_usage = track_usage
        self.track_performance = track_performance
        self.track_errors = track_errors
        self.retention_days = retention_days
        self._turns: deque[_Turn] = deque(maxlen=max_records)

    async def process(
        self, context: ConversationContext, next_middleware: NextMiddleware
    ) -> ConversationContext:
        t0 = time.perf_counter()
        error: str | None = None
        chars_out = 0
        try:
            result = await next_middleware(context)
            chars_out = len(result.response_text)
            return result
        except ParleyError as exc:
            error = exc.code
            raise
        except Exception as exc:  # counted, then handled by the chain's error policy
            error = type(exc).__name__
            raise
        finally:
            self._turns.append(
                _Turn(
                    time.time(),
                    context.conversation_id,
                    len(context.text),
                    chars_out,
                    (time.perf_counter() - t0) * 1000,
                    error,
                )
            )
            self._forget()

    def _forget(self) -> None:
        cutoff = time.time() - self.retention_days * _DAY_S
        while self._turns and self._turns[0].t < cutoff:
            self._turns.popleft()

    def _kept(self) -> list[_Turn]:
        self._forget()
        return list(self._turns)

    def get_usage_statistics(self) -> dict[str, Any]:
        """Turns, conversations, characters in and out, first and last turn (epoch s)."""
        if not self.track_usage:
            return {}
        turns = self._kept()
        conversations = Counter(t.conversation_id for t in turns)
        return {
            "total_turns": len(turns),
            "total_conversations": len(conversations),
            "turns_per_conversation": (len(turns) / len(conversations)) if conversations else 0.0,
            "characters_in": sum(t.chars_in for t in turns),
            "characters_out": sum(t.chars_out for t in turns),
            "first_turn_at": turns[0].t if turns else None,
            "last_turn_at": turns[-1].t if turns else None,
            "retention_days": self.retention_days,
        }

    def get_performance_statistics(self) -> dict[str, Any]:
        """The time of the rest of the chain per turn (ms): count, mean, p50, p90, max."""
        if not self.track_performance:
            return {}
        times = [t.ms for t in self._kept()]
        s = summarize(times)
        return {
            "count": s.count,
            "mean_ms": s.mean_ms,
            "p50_ms": s.p50_ms,
            "p90_ms": s.p90_ms,
            "max_ms": max(times) if times else None,
        }

    def get_error_statistics(self) -> dict[str, Any]:
        """Failed turns: how many, their share, and by error code."""
        if not self.track_errors:
            return {}
        turns = self._kept()
        codes = Counter(t.error for t in turns if t.error is not None)
        failed = sum(codes.values())
        return {
            "total_errors": failed,
            "error_rate": failed / len(turns) if turns else 0.0,
            "by_code": dict(codes),
        }

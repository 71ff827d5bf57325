"""Analytics of finished calls: what they were about, how the caller felt, how they ended.

An app's ``@app.analytics_processor`` (``async (transcript: list[Turn]) ->
AnalyticsResult``) — or :func:`default_processor`, offline — runs on an
:class:`AnalyticsQueue` after each call, off the call's path.
"""

from __future__ import annotations

from parley.analytics.processor import (
    DEFAULT_TOPICS,
    TOPIC_DESCRIPTIONS,
    AnalyticsProcessor,
    DefaultProcessor,
    default_processor,
)
from parley.analytics.queue import AnalyticsJob, AnalyticsOutcome, AnalyticsQueue, OutcomeSink
from parley.analytics.result import AnalyticsResult, ResolutionStatus, sentiment_label

__all__ = [
    "DEFAULT_TOPICS",
    "TOPIC_DESCRIPTIONS",
    "AnalyticsJob",
    "AnalyticsOutcome",
    "AnalyticsProcessor",
    "AnalyticsQueue",
    "AnalyticsResult",
    "DefaultProcessor",
    "OutcomeSink",
    "ResolutionStatus",
    "default_processor",
    "sentiment_label",
]

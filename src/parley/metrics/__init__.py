"""Metrics of calls: latency, talk, silences, cost and engagement per turn and per call,
and their export to Prometheus and OpenTelemetry.

:class:`CallMeter` turns one call's events into :class:`ConversationMetrics`;
:mod:`parley.metrics.prices` holds every price as dated data; :func:`aggregate_costs`
totals finished calls per user, session, tier or day. The exporters
(:class:`MetricsRegistry`, :class:`CallTracer`) import their libraries on use.
"""

from __future__ import annotations

from parley.metrics.conversation_metrics import (
    LATENCY_FIELDS,
    ConversationMetrics,
    LatencyStats,
    TurnFigures,
    latency_stats,
)
from parley.metrics.cost import CostBreakdown, CostMeter, CostPlan, Direction, EnginePlan
from parley.metrics.cpu import cpu_timed
from parley.metrics.engagement import EngagementInputs, EngagementWeights, engagement_score
from parley.metrics.meter import CallInfo, CallMeter, Incident, MetricsSink
from parley.metrics.prices import (
    DEFAULT_PRICE_BOOK,
    ChatPrices,
    PriceBook,
    SttPrices,
    TelephonyPrices,
    TtsPrices,
    chat_cost_usd,
    is_local,
)
from parley.metrics.pricing import PRICES, REALTIME, ModelPrices, cost_usd, prices_for
from parley.metrics.records import CallRecord, CostTotal, GroupBy, aggregate_costs
from parley.metrics.table import Dated, PriceTable

__all__ = [
    "DEFAULT_PRICE_BOOK",
    "LATENCY_FIELDS",
    "PRICES",
    "REALTIME",
    "CallInfo",
    "CallMeter",
    "CallRecord",
    "ChatPrices",
    "ConversationMetrics",
    "CostBreakdown",
    "CostMeter",
    "CostPlan",
    "CostTotal",
    "Dated",
    "Direction",
    "EngagementInputs",
    "EngagementWeights",
    "EnginePlan",
    "GroupBy",
    "Incident",
    "LatencyStats",
    "MetricsSink",
    "ModelPrices",
    "PriceBook",
    "PriceTable",
    "SttPrices",
    "TelephonyPrices",
    "TtsPrices",
    "TurnFigures",
    "aggregate_costs",
    "chat_cost_usd",
    "cost_usd",
    "cpu_timed",
    "engagement_score",
    "is_local",
    "latency_stats",
    "prices_for",
]

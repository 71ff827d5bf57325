"""Metrics of calls: what a conversation costs (and, later, latency and engagement)."""

from __future__ import annotations

from parley.metrics.pricing import PRICES, ModelPrices, cost_usd, prices_for

__all__ = ["PRICES", "ModelPrices", "cost_usd", "prices_for"]

"""REST of the analytics — costs, the dashboard's summary, finished calls — and
``/metrics`` for Prometheus.

``GET /analytics/costs?group_by=user|session|tier|day`` totals the finished calls (and,
with ``live=true``, those in progress so far); ``GET /analytics/summary`` is what the
dashboard draws; ``GET /analytics/calls`` and ``/analytics/calls/{id}`` list the
finished calls with their metrics and analytics results.

Access: the app mounts these routes, ``/metrics`` and the dashboard under the
``analytics`` tag, for which the server's gate (``parley.server.security``) requires
``analytics:read`` (or ``admin``) once authentication is on; a Prometheus scraper
sends its key as ``Authorization: Bearer``.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Response

from parley.analytics.hub import AnalyticsHub, HubOptions
from parley.analytics.views import metrics_json
from parley.config import ConversationConfig, ParleySettings
from parley.metrics.records import GroupBy

__all__ = ["analytics_options", "analytics_router", "metrics_router"]


def analytics_router(hub: AnalyticsHub) -> APIRouter:
    router = APIRouter(prefix="/analytics", tags=["analytics"])

    @router.get("/costs")
    async def costs(
        group_by: GroupBy = GroupBy.USER,
        since: float | None = Query(None, description="epoch seconds: calls started from"),
        until: float | None = Query(None, description="epoch seconds: calls started before"),
        live: bool = Query(False, description="include the calls in progress, so far"),
    ) -> dict[str, Any]:
        """Cost totals (USD) of finished calls per user, session, tier or day (UTC)."""
        totals = await hub.costs(group_by, since=since, until=until, live=live)
        return {
            "group_by": group_by.value,
            "since": since,
            "until": until,
            "totals": [t.as_dict() for t in totals],
            "cost_usd": sum(t.cost_usd for t in totals),
            "calls": sum(t.calls for t in totals),
        }

    @router.get("/summary")
    async def summary(
        hours: float = Query(24.0, gt=0, description="finished calls of the last N hours"),
    ) -> dict[str, Any]:
        """Live calls, latency histograms, cost by user and session, engagement trend,
        context-injection performance, errors and failovers."""
        return await hub.summary(since=time.time() - hours * 3600.0)

    @router.get("/calls")
    async def calls(limit: int = Query(50, ge=1, le=1000)) -> list[dict[str, Any]]:
        """The newest finished calls: ids, times, cost, engagement, analytics."""
        return await hub.recent_calls(limit)

    @router.get("/calls/{session_id}")
    async def call(session_id: str) -> dict[str, Any]:
        """A call's metrics and analytics result (live: so far)."""
        stored = await hub.stored_call(session_id)
        if stored is not None:
            return stored
        view = hub.view(session_id)
        if view is None:
            raise HTTPException(404, detail=f"no call {session_id!r}")
        return {
            "session_id": session_id,
            "metrics": metrics_json(view.metrics),
            "analytics": view.analytics.as_dict() if view.analytics is not None else None,
            "analytics_error": view.analytics_error,
        }

    return router


def metrics_router(hub: AnalyticsHub) -> APIRouter:
    router = APIRouter(tags=["analytics"])  # the gate: analytics:read

    @router.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus exposition (every worker's figures under ``--workers N``)."""
        if hub.registry is None:
            raise HTTPException(404, detail="metrics are off (PARLEY_METRICS=false)")
        body, content_type = hub.exposition()
        return Response(body, media_type=content_type)

    return router


def analytics_options(settings: ParleySettings, config: ConversationConfig) -> HubOptions:
    """The analytics hub's options from the settings and the app's config."""
    return HubOptions(
        metrics=settings.metrics,
        enable_analytics=config.enable_analytics,
        track_costs=config.track_costs,
        track_engagement=config.track_engagement,
        history_path=settings.analytics_db,
        retention_days=settings.analytics_retention_days,
        otlp_endpoint=settings.otlp_endpoint,
    )

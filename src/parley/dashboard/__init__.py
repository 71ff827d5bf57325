"""The analytics dashboard: live calls, latency histograms, cost, engagement, context
injection performance, errors and failovers — on one page that updates itself.

Every Parley server serves it at ``/dashboard``. Standalone, as seed 000 shows it::

    from parley.dashboard import create_dashboard

    app = create_dashboard(backend)       # backend: your Parley app
    app.run(port=8080)                     # the dashboard at http://localhost:8080/

The page reads the backend's :class:`~parley.analytics.hub.AnalyticsHub`: the calls
this process serves live, and — with ``enable_analytics`` — every finished call kept in
the analytics history file, so a dashboard in its own process shows the finished calls
of the server processes that share that file (live calls are those of its own process;
under ``--workers N`` each worker's ``/dashboard`` shows its own live calls, and
``/metrics`` has the total).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import FastAPI
from fastapi.params import Depends

from parley.analytics.hub import AnalyticsHub
from parley.dashboard.routes import STATIC, dashboard_router

__all__ = ["STATIC", "Dashboard", "DashboardSource", "create_dashboard", "dashboard_router"]


class DashboardSource(Protocol):
    """What a dashboard shows: a :class:`~parley.app.Parley` app is one."""

    @property
    def analytics(self) -> AnalyticsHub: ...


class Dashboard:
    """The standalone dashboard: ``asgi`` (the FastAPI app) and ``run()``."""

    def __init__(self, hub: AnalyticsHub, *, dependencies: Sequence[Depends] = ()) -> None:
        self.hub = hub

        @asynccontextmanager
        async def lifespan(_api: FastAPI) -> AsyncIterator[None]:
            await hub.start()
            yield
            await hub.aclose()

        self.asgi = FastAPI(
            title="Parley dashboard", lifespan=lifespan, docs_url=None, redoc_url=None
        )
        self.asgi.include_router(dashboard_router(hub, dependencies=dependencies, at_root=True))

    def run(self, *, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info") -> None:
        """Serve the dashboard with uvicorn until interrupted."""
        import uvicorn

        uvicorn.run(self.asgi, host=host, port=port, log_level=log_level)


def create_dashboard(
    backend: DashboardSource, *, dependencies: Sequence[Depends] = ()
) -> Dashboard:
    """The dashboard of ``backend`` (a Parley app) as an app of its own.
    ``dependencies`` guard its routes (e.g. your own admin check)."""
    return Dashboard(backend.analytics, dependencies=dependencies)

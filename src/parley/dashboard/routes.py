"""The dashboard's routes: the page, its three static files, its JSON and its live feed.

``GET {prefix}`` is the page; ``{prefix}/static/{name}`` its script, style and the
charting library; ``{prefix}/api/summary`` what it draws (the hub's summary),
``{prefix}/api/costs`` cost totals, ``{prefix}/api/stream`` the live feed as
server-sent events (``hello`` with the live calls, then ``call_started``, ``turn``,
``incident``, ``call_ended``, ``analytics``; a comment line every few seconds keeps
proxies from closing it).

Charts: Chart.js 4.6.1 (MIT; ``static/chart.umd.min.js``, its licence beside it),
vendored from its npm package and served from here, never from a CDN, so the page
works offline. Chart.js because it is the most used and best maintained canvas
charting library with no dependencies, and its UMD build is one 200 kB file; no PyPI
package ships a current copy of it (or of uPlot or ECharts).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.params import Depends
from fastapi.responses import FileResponse, HTMLResponse, StreamingResponse

from parley.analytics.hub import AnalyticsHub
from parley.metrics.records import GroupBy

__all__ = ["STATIC", "dashboard_router"]

STATIC = Path(__file__).parent / "static"
_FILES = {
    "chart.umd.min.js": "text/javascript",
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "chart.js.LICENSE.md": "text/plain",
}
#: How often the feed checks whether the server is stopping, and sends a keep-alive.
_TICK_S = 2.0
_PING_EVERY = 5  # ticks


def _sse(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def dashboard_router(
    hub: AnalyticsHub,
    *,
    dependencies: Sequence[Depends] = (),
    closing: Callable[[], bool] = lambda: False,
    at_root: bool = False,
) -> APIRouter:
    """The routes (mount with ``include_router(router, prefix=...)``; ``at_root`` for
    none, as the standalone dashboard is). ``dependencies``
    guard every route (the admin permission); ``closing`` says the server is stopping,
    so that open feeds end instead of holding the shutdown."""
    # tagged so the server's gate asks for analytics:read (parley.server.security)
    router = APIRouter(dependencies=list(dependencies), include_in_schema=False, tags=["analytics"])
    page = (STATIC / "index.html").read_text(encoding="utf-8")

    async def index(request: Request) -> HTMLResponse:
        path = request.url.path
        base = path if path.endswith("/") else path + "/"
        return HTMLResponse(page.replace("{{BASE}}", base))

    # "{prefix}" as well as "{prefix}/"; at the root (no prefix) FastAPI refuses "".
    for path in ("/",) if at_root else ("", "/"):
        router.add_api_route(path, index, methods=["GET"], response_class=HTMLResponse)

    @router.get("/static/{name}")
    async def static(name: str) -> FileResponse:
        media = _FILES.get(name)
        if media is None:
            raise HTTPException(404)
        return FileResponse(STATIC / name, media_type=media)

    @router.get("/api/summary")
    async def summary(hours: float = Query(24.0, gt=0)) -> dict[str, Any]:
        return await hub.summary(since=time.time() - hours * 3600.0)

    @router.get("/api/costs")
    async def costs(group_by: GroupBy = GroupBy.USER, live: bool = True) -> list[dict[str, Any]]:
        return [t.as_dict() for t in await hub.costs(group_by, live=live)]

    @router.get("/api/stream")
    async def stream() -> StreamingResponse:
        queue = hub.feed.subscribe()

        async def events() -> AsyncIterator[str]:
            try:
                yield _sse("hello", {"live": hub.live_calls(), "time": time.time()})
                idle = 0
                while not closing():
                    try:
                        msg = await asyncio.wait_for(queue.get(), _TICK_S)
                    except TimeoutError:
                        idle += 1
                        if idle % _PING_EVERY == 0:
                            yield ": ping\n\n"
                        continue
                    if msg is None:
                        return
                    yield _sse(*msg)
            finally:
                hub.feed.unsubscribe(queue)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router

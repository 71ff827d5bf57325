"""``create_app``: the FastAPI app of a switchboard — REST, the Twilio webhook, health,
``/metrics``, the analytics routes and ``/dashboard``, ``/docs`` offline, the talk
page, and every WebSocket endpoint of the platform registry.

The WebSocket routes are generated from :meth:`Switchboard.endpoints`: each route
checks the endpoint's admission before accepting (an HTTP refusal where the ASGI
server supports denial responses, as uvicorn does; else accept and close with the
refusal's code and reason), then hands the socket to the switchboard.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.staticfiles import StaticFiles

from parley import __version__
from parley.conversation.context import default_token_counter
from parley.dashboard import dashboard_router
from parley.metrics.prometheus import mark_process_dead
from parley.security.principal import Principal
from parley.security.tenancy import shows_call_ids
from parley.server.access import access_router
from parley.server.analytics import analytics_router, metrics_router
from parley.server.bounds import BodyLimit, SafeJSONResponse, install_error_handlers
from parley.server.docs import mount_offline_docs
from parley.server.flows import flows_router
from parley.server.hosts.lean import ENDPOINTS_STATE_KEY
from parley.server.lifecycle import install_drain_on_sigterm
from parley.server.outbound import outbound_router
from parley.server.phone_answers import phone_answers_router
from parley.server.rest import read_guard, rest_router
from parley.server.security import install_refusals
from parley.server.switchboard import Endpoint, Switchboard
from parley.server.twilio import twilio_router
from parley.server.webrtc import webrtc_router
from parley.transports.platform import Refusal
from parley.transports.socket import StarletteSocket
from parley.transports.starlette import refuse_starlette, starlette_connection

__all__ = ["STATIC_DIR", "create_app"]

log = logging.getLogger("parley.server")

#: The talk page (index.html and its scripts), served at ``/``.
STATIC_DIR = Path(__file__).parent / "static"


def _route(endpoint: Endpoint) -> Callable[[WebSocket], Awaitable[None]]:
    async def route(websocket: WebSocket) -> None:
        connection = starlette_connection(websocket)
        verdict = await endpoint.admit(connection)
        if isinstance(verdict, Refusal):
            await refuse_starlette(websocket, verdict)
            return
        await websocket.accept(subprotocol=verdict.subprotocol)
        await endpoint.serve(StarletteSocket(websocket), connection)

    route.__name__ = f"{endpoint.name}_socket"
    return route


def create_app(
    board: Switchboard, *, endpoints: Collection[str] | None = None, rest: bool = True
) -> FastAPI:
    """The app. ``endpoints`` limits the WebSocket endpoints to those names (e.g.
    ``{"realtime"}`` for ``parley realtime-server``); ``rest=False`` leaves out REST,
    the Twilio webhook and the talk page (health stays)."""

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[dict[str, Any]]:
        for level, message in board.startup_messages():
            log.log(level, message)
        await board.warmup()
        await board.start()
        # The BPE tables for context token counts (~130 MB, ~0.1 s): now, off the loop,
        # when every call injects context (the app has providers or triggers); else
        # at the first injection (POST .../context), so a server without any holds none.
        if board.setup.context_providers or board.setup.context_triggers:
            await asyncio.to_thread(default_token_counter)
        install_drain_on_sigterm(board)
        await board.analytics.start()
        # The lean WebSocket host (server/hosts/lean.py) finds the endpoints here:
        # uvicorn hands the lifespan state to the WebSocket protocols it creates.
        yield {ENDPOINTS_STATE_KEY: mounted}
        board.draining = True
        await board.end_all("server shutting down")
        await board.aclose()
        mark_process_dead(os.getpid())  # --workers N: this worker's live gauges go

    api = FastAPI(
        title="Parley",
        version=__version__,
        summary="Real-time voice conversations: REST, browser and Twilio WebSockets",
        lifespan=lifespan,
        docs_url=None,  # served offline below (FastAPI's pages load from a CDN)
        redoc_url=None,
        # Every route authenticates and is rate limited, those added later too
        # (parley.server.security: health, readiness and the signed webhook are open).
        dependencies=[Depends(board.security.gate)],
        # ASCII JSON: any string a client managed to get in renders (never a 500).
        default_response_class=SafeJSONResponse,
    )
    api.add_middleware(BodyLimit, max_bytes=board.settings.max_body_bytes)
    install_error_handlers(api)
    install_refusals(api)
    api.state.switchboard = board
    mount_offline_docs(api)
    # the scraper needs analytics:read like the analytics routes (the gate, by tag)
    api.include_router(metrics_router(board.analytics))
    if rest:
        api.include_router(rest_router(board))
        api.include_router(access_router(board))
        api.include_router(twilio_router(board))
        api.include_router(phone_answers_router(board))
        api.include_router(outbound_router(board))
        api.include_router(webrtc_router(board))
        api.include_router(
            flows_router(
                board.flow_controller,
                exists=lambda cid: board.calls.get(cid) is not None,
                guard=read_guard(board),
            )
        )
        api.include_router(analytics_router(board.analytics))
        api.include_router(
            dashboard_router(board.analytics, closing=lambda: board.draining),
            prefix="/dashboard",
        )

    @api.get("/healthz", tags=["health"])
    async def healthz(request: Request) -> dict[str, Any]:
        """Liveness, with the health report (connections, engines, queues); the calls
        (their ids) only for an ``admin`` (or everyone with authentication off)."""
        report = board.health()
        principal: Principal | None = None
        if request.headers.get("authorization") or request.headers.get("x-api-key"):
            principal = await board.security.optional_principal(request)
        if board.security.enabled and not shows_call_ids(principal):
            report["calls"] = []
        return report

    @api.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """503 while draining or full: a load balancer should send new calls elsewhere."""
        refusal = board.refusal()
        if refusal is not None:
            return JSONResponse({"ready": False, "reason": refusal}, status_code=503)
        return JSONResponse({"ready": True})

    mounted = tuple(e for e in board.endpoints() if endpoints is None or e.name in endpoints)
    for endpoint in mounted:
        for path in endpoint.routes:
            api.add_api_websocket_route(path, _route(endpoint), name=f"{endpoint.name}:{path}")

    if rest and (STATIC_DIR / "index.html").is_file():
        api.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="static")
    return api

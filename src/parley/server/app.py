"""``create_app``: the FastAPI app of a :class:`~parley.app.Parley`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, WebSocket
from fastapi.responses import JSONResponse
from starlette.staticfiles import StaticFiles

from parley import __version__
from parley.conversation.context import default_token_counter
from parley.realtime_server import realtime_route
from parley.server.flows import flows_router
from parley.server.lifecycle import end_all_calls, install_drain_on_sigterm, startup_messages
from parley.server.rest import rest_router
from parley.server.twilio import twilio_router
from parley.transports.serve import serve_call
from parley.transports.socket import StarletteSocket

if TYPE_CHECKING:
    from parley.app import Parley

__all__ = ["STATIC_DIR", "create_app"]

log = logging.getLogger("parley.server")

#: The talk page (index.html and its scripts), served at ``/``.
STATIC_DIR = Path(__file__).parent / "static"


def create_app(parley: Parley) -> FastAPI:
    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        for level, message in startup_messages(parley):
            log.log(level, message)
        await parley.engines.warmup()
        # The BPE tables for context token counts load in ~0.7 s: off the loop, now,
        # rather than inside the first call.
        await asyncio.to_thread(default_token_counter)
        install_drain_on_sigterm(parley)
        yield
        parley.draining = True
        await end_all_calls(parley, "server shutting down")
        await parley.engines.aclose()

    api = FastAPI(
        title="Parley",
        version=__version__,
        summary="Real-time voice conversations: REST, browser and Twilio WebSockets",
        lifespan=lifespan,
    )
    api.state.parley = parley
    api.include_router(rest_router(parley))
    api.include_router(twilio_router(parley))
    api.include_router(
        flows_router(parley.flow_controller, exists=lambda cid: parley.calls.get(cid) is not None)
    )

    @api.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, Any]:
        """Liveness, with the health report (connections, calls, engines, queues)."""
        return parley.get_health_status()

    @api.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """503 while draining or full: a load balancer should send new calls elsewhere."""
        refusal = parley.refusal()
        if refusal is not None:
            return JSONResponse({"ready": False, "reason": refusal}, status_code=503)
        return JSONResponse({"ready": True})

    @api.websocket("/ws/audio/{conversation_id}")
    async def browser_audio(websocket: WebSocket, conversation_id: str) -> None:
        await websocket.accept()
        await serve_call(parley, StarletteSocket(websocket), "browser", conversation_id)

    @api.websocket("/ws/audio")
    async def browser_audio_new(websocket: WebSocket) -> None:
        """A conversation with the server's defaults, created by connecting."""
        await websocket.accept()
        await serve_call(parley, StarletteSocket(websocket), "browser")

    # The OpenAI-Realtime-compatible endpoint, backed by the offline cascade.
    key = parley.settings.realtime_server_api_key
    api.router.routes.append(
        realtime_route("/v1/realtime", api_key=key.get_secret_value() if key else None)
    )

    if (STATIC_DIR / "index.html").is_file():
        api.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="static")
    return api

"""The lean WebSocket host (``server/hosts/lean.py``) under a real uvicorn: the
switchboard's endpoints on picows, their admission answering the upgrade, and any
other WebSocket route through the ASGI app as before."""

from __future__ import annotations

import asyncio

import pytest
import websockets
from fastapi import WebSocket

from parley.app import Parley
from parley.config import EngineKind, ParleySettings
from parley.server.hosts.lean import PicowsSocket
from parley.server.run import LEAN_WS
from servers import TwilioPhone, serve_asgi


def lean_app(**settings: object) -> Parley:
    return Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK, **settings))  # type: ignore[arg-type]


async def test_a_twilio_call_is_served_on_picows_with_the_default_mark_cadence() -> None:
    app = lean_app()
    async with serve_asgi(app.asgi, lifespan="on", ws=LEAN_WS) as port:
        async with websockets.connect(f"ws://127.0.0.1:{port}/twilio/stream") as ws:
            phone = TwilioPhone(ws)
            await phone.start()
            for i in range(6):
                await phone.send_media(bytes([i + 1]) * 160)
                assert await phone.receive() == ("media", bytes([i + 1]) * 160)
                if i == 4:
                    kind, _ = await phone.receive()
                    assert kind == "mark"
            (record,) = app.calls.active()
            assert record.stream is not None
            assert isinstance(record.stream.socket, PicowsSocket)  # type: ignore[attr-defined]
            await phone.stop()
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1000
        await asyncio.wait_for(record.finished.wait(), 5)


async def test_the_endpoint_admission_answers_the_upgrade() -> None:
    app = lean_app(realtime_server_api_key="sk-right")
    async with serve_asgi(app.asgi, lifespan="on", ws=LEAN_WS) as port:
        with pytest.raises(websockets.InvalidStatus) as info:
            async with websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime"):
                pass
        assert info.value.response.status_code == 401
        assert b"error" in info.value.response.body


async def test_other_websocket_routes_fall_back_to_the_asgi_app() -> None:
    app = lean_app()
    api = app.asgi

    async def custom(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello from FastAPI")
        await websocket.close()

    api.add_api_websocket_route("/custom", custom)
    api.router.routes.insert(0, api.router.routes.pop())  # before the talk page's "/" mount

    async with serve_asgi(api, lifespan="on", ws=LEAN_WS) as port:
        async with websockets.connect(f"ws://127.0.0.1:{port}/custom") as ws:
            assert await ws.recv() == "hello from FastAPI"
        with pytest.raises(websockets.InvalidStatus) as info:
            async with websockets.connect(f"ws://127.0.0.1:{port}/nowhere"):
                pass
        assert info.value.response.status_code == 403  # Starlette's answer, as before

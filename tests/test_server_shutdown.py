"""Graceful shutdown of a real server process (SIGTERM) with a live Twilio call."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import websockets

from servers import ServerProcess, TwilioPhone

FRAME = b"\x10" * 160  # 20 ms of a low µ-law tone


async def pump(phone: TwilioPhone, stop: asyncio.Event) -> None:
    """Send 20 ms frames until told to stop or the server closes."""
    while not stop.is_set():
        try:
            await phone.send_media(FRAME)
        except websockets.ConnectionClosed:
            return
        await asyncio.sleep(0.02)  # a phone line's pace


async def until_draining(server: ServerProcess) -> None:
    """The server process takes SIGTERM in its own time: ask its health until it says
    it drains (another process: its answers are all there is to wait on)."""
    async with httpx.AsyncClient(base_url=server.url) as client, asyncio.timeout(5):
        while (await client.get("/healthz")).json()["status"] != "draining":  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def count_media(phone: TwilioPhone, seconds: float) -> int:
    n = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        kind, _ = await phone.receive()
        n += kind == "media"
    return n


async def test_sigterm_drains_live_calls_and_refuses_new_ones() -> None:
    env = {"PARLEY_ENGINE": "loopback", "PARLEY_DRAIN_SECONDS": "2"}
    with ServerProcess(env) as server:
        async with websockets.connect(server.ws_url("/twilio/stream")) as ws:
            phone = TwilioPhone(ws)
            await phone.start()
            stop = asyncio.Event()
            sender = asyncio.create_task(pump(phone, stop))
            assert await count_media(phone, 0.3) > 5
            t0 = time.monotonic()
            server.terminate()
            await until_draining(server)
            # Draining: the live call goes on ...
            assert await count_media(phone, 0.5) > 10
            # ... new calls and conversations are refused ...
            async with httpx.AsyncClient(base_url=server.url) as client:
                assert (await client.post("/conversations", json={})).status_code == 503
                assert (await client.get("/readyz")).status_code == 503
                assert (await client.get("/healthz")).json()["status"] == "draining"
            async with websockets.connect(server.ws_url("/twilio/stream")) as late:
                with pytest.raises(websockets.ConnectionClosed) as refused:
                    await late.recv()
                assert refused.value.rcvd is not None and refused.value.rcvd.code == 1013
            # ... and after the drain time the call is closed with 1001 and a reason.
            with pytest.raises(websockets.ConnectionClosed) as ended:
                while True:
                    await phone.receive()
            took = time.monotonic() - t0
            stop.set()
            await sender
        assert ended.value.rcvd is not None
        assert ended.value.rcvd.code == 1001 and "shutting down" in ended.value.rcvd.reason
        assert 1.8 <= took <= 4.0, took
        code = await asyncio.to_thread(server.wait, 15)
        assert code in (0, -15), server.output  # uvicorn re-raises the SIGTERM it handled
        assert "draining: 1 live call(s)" in server.output


async def test_server_stops_as_soon_as_the_last_call_hangs_up() -> None:
    env = {"PARLEY_ENGINE": "loopback", "PARLEY_DRAIN_SECONDS": "30"}
    with ServerProcess(env) as server:
        async with websockets.connect(server.ws_url("/twilio/stream")) as ws:
            phone = TwilioPhone(ws)
            await phone.start()
            await phone.send_media(FRAME)
            await phone.receive()
            t0 = time.monotonic()
            server.terminate()
            await until_draining(server)
            await phone.stop()  # the caller hangs up during the drain
        code = await asyncio.to_thread(server.wait, 15)
        assert time.monotonic() - t0 < 5, server.output
        assert code in (0, -15), server.output

"""Fuzzing every inbound WebSocket protocol over real sockets: 10,000 hostile
connections per protocol (fixed seeds) against a real ``parley serve`` process, while
a healthy call streams audio through it. Asserted: no crash and no ERROR in the
server's log, every close the server chose has a typed reason (``slug: message``),
the healthy call is served throughout, and each protocol's run stays in its time
budget (the suite's 15 minutes on 2 cores)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets

from parley.protocols.browser import StartMessage, encode_client_message
from parley.testing.fuzz import BROWSER_CASES, REALTIME_CASES, TWILIO_CASES, CaseMaker
from servers import ServerProcess
from socket_fuzz import PROBES, fuzz

CASES = 10_000
BUDGET_S = 180.0  # per protocol; measured here (a loaded machine): 15–90 s


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess({"PARLEY_ENGINE": "loopback", "PARLEY_VAD": "energy"}) as proc:
        yield proc


async def healthy_call(server: ServerProcess, stop: asyncio.Event) -> tuple[int, int, float]:
    """A browser call echoing 20 ms frames until ``stop``; (bytes sent, bytes back,
    worst ping round trip in seconds)."""
    sent = received = 0
    worst = 0.0
    async with websockets.connect(server.ws_url("/ws/audio")) as ws:
        await ws.send(encode_client_message(StartMessage()))
        json.loads(await ws.recv())  # ready
        frame = b"\x01\x00" * 480
        pending_ping: float | None = None
        while not stop.is_set():
            await ws.send(frame)
            sent += len(frame)
            if pending_ping is None:
                pending_ping = time.monotonic()
                await ws.send('{"type":"ping","id":"h"}')
            try:
                while True:
                    reply = await asyncio.wait_for(ws.recv(), 0.02)
                    if isinstance(reply, bytes):
                        received += len(reply)
                    elif '"pong"' in reply and pending_ping is not None:
                        worst = max(worst, time.monotonic() - pending_ping)
                        pending_ping = None
            except TimeoutError:
                pass
        await ws.send('{"type":"stop"}')
    return sent, received, worst


@pytest.mark.parametrize(
    ("name", "path", "maker"),
    [
        ("twilio", "/twilio/stream", TWILIO_CASES),
        ("browser", "/ws/audio", BROWSER_CASES),
        ("realtime", "/v1/realtime", REALTIME_CASES),
    ],
)
async def test_hostile_connections_over_real_sockets(
    server: ServerProcess, name: str, path: str, maker: CaseMaker
) -> None:
    stop = asyncio.Event()
    healthy = asyncio.create_task(healthy_call(server, stop))
    t0 = time.monotonic()
    tally = await fuzz(server.ws_url(path), maker, PROBES[name], CASES, seed=10_000)
    elapsed = time.monotonic() - t0
    stop.set()
    sent, received, worst_ping = await healthy

    assert tally.connections + sum(tally.refused.values()) == CASES
    assert tally.frames > 3 * CASES
    assert not tally.untyped, tally.untyped[:5]
    assert len(tally.reasons) >= 1 and sum(tally.closes.values()) == tally.connections
    assert elapsed < BUDGET_S, elapsed
    # the healthy call was served all along: its echo came back, pings answered
    assert received >= 0.8 * sent and worst_ping < 2.0, (sent, received, worst_ping)
    async with httpx.AsyncClient() as http:
        assert (await http.get(server.url + "/healthz")).status_code == 200
    assert server.proc is not None and server.proc.poll() is None
    log = server.output
    assert "Traceback" not in log and "ERROR" not in log, log[log.find("ERROR") - 500 :][:3000]


def test_found_by_the_socket_fuzzer_a_huge_silence_is_a_typed_error() -> None:
    """``float(10**400)`` raised OverflowError out of a session.update (a 1011 close
    and an ERROR traceback) until the socket fuzzer sent one."""
    from parley.errors import RemoteProtocolError
    from parley.protocols.openai_realtime import TurnDetection
    from parley.realtime_server.settings import turn_config

    with pytest.raises(RemoteProtocolError) as info:
        turn_config(TurnDetection(type="server_vad", silence_duration_ms=10**400))
    assert info.value.code == "invalid_value"

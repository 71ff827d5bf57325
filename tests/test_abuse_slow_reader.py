"""A slow reader: a browser call that keeps sending audio (the loopback engine echoes
it) but never reads what comes back. The server's memory stays bounded (every queue on
the way is bounded; the socket's send side waits for the peer), and a concurrent
healthy call is served as usual."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from parley.protocols.browser import StartMessage, encode_client_message
from servers import ServerProcess

FRAME = b"\x01\x00" * 4800  # 200 ms at 24 kHz


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    with ServerProcess({"PARLEY_ENGINE": "loopback", "PARLEY_VAD": "energy"}) as proc:
        yield proc


async def test_a_slow_reader_holds_bounded_memory(server: ServerProcess) -> None:
    assert server.proc is not None
    async with websockets.connect(server.ws_url("/ws/audio"), max_queue=4) as warm:
        await warm.send(encode_client_message(StartMessage()))
        await warm.recv()
        for _ in range(20):  # warm the echo path once, reading it
            await warm.send(FRAME)
            await warm.recv()
    before = rss_mb(server.proc.pid)
    pushed = 0
    async with (
        websockets.connect(server.ws_url("/ws/audio"), max_queue=4) as slow,
        websockets.connect(server.ws_url("/ws/audio")) as healthy,
    ):
        await slow.send(encode_client_message(StartMessage()))
        await healthy.send(encode_client_message(StartMessage()))
        await healthy.recv()
        deadline = time.monotonic() + 6.0
        worst = 0.0
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                for _ in range(10):
                    await asyncio.wait_for(slow.send(FRAME), 0.05)
                    pushed += len(FRAME)
            t0 = time.monotonic()
            await healthy.send(json.dumps({"type": "ping", "id": "h"}))
            while '"pong"' not in str(await asyncio.wait_for(healthy.recv(), 5)):
                pass
            worst = max(worst, time.monotonic() - t0)
        grown = rss_mb(server.proc.pid) - before
    print(f"slow reader pushed {pushed >> 20} MB; server RSS grew {grown:.1f} MB")
    assert grown < 40, (
        f"server RSS grew {grown:.0f} MB while the slow reader pushed {pushed >> 20} MB"
    )
    assert worst < 1.0, worst

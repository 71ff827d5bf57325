"""``/metrics`` of a real ``parley serve --workers 2``: whichever worker answers the
scrape, the figures are every worker's (prometheus-client's multiprocess mode, set up
by the parent before the workers start), parsed with ``prometheus_client.parser``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import websockets
from prometheus_client.parser import text_string_to_metric_families

from servers import ServerProcess, TwilioPhone

CALLS = 6


def scrape(url: str) -> tuple[dict[str, float], int]:
    """The unlabelled totals of one scrape (a fresh connection: any worker may answer),
    and the pid of a worker answering another fresh request."""
    text = httpx.get(url + "/metrics", timeout=5).text
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            totals[s.name] = totals.get(s.name, 0.0) + s.value
    pid = int(httpx.get(url + "/analytics/summary", timeout=5).json()["pid"])
    return totals, pid


@contextlib.asynccontextmanager
async def open_calls(server: ServerProcess, n: int) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        for i in range(n):
            ws = await stack.enter_async_context(
                websockets.connect(server.ws_url("/twilio/stream"))
            )
            phone = TwilioPhone(ws, call_sid=f"CA{i}")
            await phone.start()
            await phone.send_media(b"\xff" * 160)
            await phone.receive(wait_s=10)  # the loopback echo: the call is live
        yield


async def test_metrics_are_merged_across_two_workers() -> None:
    env = {"PARLEY_ENGINE": "loopback", "PARLEY_WORKERS": "2"}
    with ServerProcess(env, startup_s=90) as server:
        async with open_calls(server, CALLS):
            pids: set[int] = set()
            seen: list[dict[str, float]] = []
            deadline = time.monotonic() + 30
            while len(pids) < 2 and time.monotonic() < deadline:
                totals, pid = await asyncio.to_thread(scrape, server.url)
                pids.add(pid)
                seen.append(totals)
            assert len(pids) == 2, f"only worker {pids} answered"
            for totals in seen:  # every scrape, from either worker, sees all the calls
                assert totals["parley_calls_total"] == CALLS
                assert totals["parley_live_calls"] == CALLS
        # The calls hung up: the live gauge of each worker goes back to 0.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            totals, _ = await asyncio.to_thread(scrape, server.url)
            if totals["parley_live_calls"] == 0:
                break
            await asyncio.sleep(0.2)  # across processes there is no event to wait on
        assert totals["parley_live_calls"] == 0
        assert totals["parley_calls_total"] == CALLS

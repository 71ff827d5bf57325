"""The dashboard and the API docs in headless Debian Chromium, against a real server.

The dashboard test runs ``python -m parley serve`` (analytics on, loopback by default)
while the load bench's Node generator (bench/loadgen) holds 50 Twilio calls and three
conversations run the offline cascade (Silero, Whisper, the echo brain, Piper) on a
sentence Piper spoke, over the browser protocol. The page must show the live call
count the server has, non-empty latency histograms, and — without a reload — the
count falling and the finished calls appearing when the cascade calls hang up.
Screenshots go to artifacts/ (git-ignored).

The docs test loads ``/docs`` and ``/redoc`` with every request off 127.0.0.1 blocked
(and recorded): the pages must list the API's operations from the server's own assets.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
import playwright.sync_api as playwright_sync
import pytest
import soxr
import websockets

from parley.protocols.browser import (
    AudioFrame,
    PlaybackMessage,
    ReadyMessage,
    ResponseDoneMessage,
    StartMessage,
    encode_client_message,
    parse_server_frame,
)
from servers import ROOT, ServerProcess
from speech import speak

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "artifacts"
LOADGEN = ROOT / "bench" / "loadgen"
LOOPBACK_CALLS = 50
CASCADE_CALLS = 3
SENTENCE = "I would like to book a table for two people tonight."

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield b
        finally:
            b.close()


def offline_page(browser: Any, problems: list[str], outside: list[str]) -> Any:
    """A page whose requests off 127.0.0.1 are blocked and recorded."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()

    def route(r: Any) -> None:
        if urlparse(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
    )
    return page


def save(page: Any, name: str, tmp_path: Path) -> None:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / name)


# ---------------------------------------------------------------- the callers


class Loadgen:
    """bench/loadgen's Node generator: N Twilio calls at real-time pace."""

    def __init__(self, url: str, calls: int, duration_s: float) -> None:
        node = shutil.which("node")
        assert node is not None, "the dashboard test needs Node.js (bench/loadgen)"
        if not (LOADGEN / "node_modules" / "ws").is_dir():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=LOADGEN, check=True)
        self.ready = threading.Event()
        self.connected = 0
        self.proc = subprocess.Popen(
            [
                node,
                str(LOADGEN / "loadgen.js"),
                "--url",
                url,
                "--calls",
                str(calls),
                "--duration",
                str(duration_s),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            msg = json.loads(line)
            if msg["type"] == "ready":
                self.connected = int(msg["calls"])
                self.ready.set()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(10)
        self.reader.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


class CascadeCalls:
    """Conversations on the offline cascade over /ws/audio: each says the sentence (PCM16
    24 kHz, twice real time), waits for the whole reply, reports it played, then stays
    on the line until ``hang_up`` is set."""

    def __init__(self, base: str, n: int) -> None:
        pcm, rate = speak(SENTENCE)
        voice = soxr.resample(np.frombuffer(pcm, "<i2"), rate, 24000).astype("<i2").tobytes()
        silence = b"\x00\x00" * 24000
        self.audio = silence[:24000] + voice + silence
        self.base, self.n = base, n
        self.answered = threading.Barrier(n + 1)
        self.hang_up = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=lambda: asyncio.run(self._all()), daemon=True)
        self.thread.start()

    async def _all(self) -> None:
        results = await asyncio.gather(
            *(self._one(i) for i in range(self.n)), return_exceptions=True
        )
        self.errors += [r for r in results if isinstance(r, BaseException)]

    async def _one(self, i: int) -> None:
        try:
            async with httpx.AsyncClient(base_url=self.base) as http:
                created = await http.post(
                    "/conversations", json={"engine": "local", "user_id": f"caller-{i}"}
                )
                created.raise_for_status()
            path = created.json()["websocket_path"]
            ws_url = self.base.replace("http://", "ws://") + path
            async with websockets.connect(ws_url, max_size=None) as ws:
                await ws.send(encode_client_message(StartMessage(user_id=f"caller-{i}")))
                ready = parse_server_frame(await asyncio.wait_for(ws.recv(), 30))
                assert isinstance(ready, ReadyMessage)
                step = 960  # 20 ms
                for k in range(0, len(self.audio), step):
                    await ws.send(self.audio[k : k + step])
                    await asyncio.sleep(0.01)  # a microphone's pace, twice real time
                reply_bytes = 0
                while True:
                    frame = parse_server_frame(await asyncio.wait_for(ws.recv(), 90))
                    if isinstance(frame, AudioFrame):
                        reply_bytes += len(frame.pcm)
                    elif isinstance(frame, ResponseDoneMessage):
                        played = reply_bytes / 2 / 24000 * 1000
                        await ws.send(
                            encode_client_message(PlaybackMessage(frame.response_id, played))
                        )
                        break
                await asyncio.to_thread(self.answered.wait, 180)
                await asyncio.to_thread(self.hang_up.wait, 180)
        except BaseException:
            self.answered.abort()
            raise


# ---------------------------------------------------------------- the dashboard


def test_the_dashboard_shows_live_calls_and_latency_while_calls_run(
    browser: Any, tmp_path: Path
) -> None:
    env = {
        "PARLEY_ENGINE": "loopback",
        "PARLEY_ALLOWED_ENGINES": '["local"]',  # the cascade calls ask for it
        "PARLEY_CONVERSATION__ENABLE_ANALYTICS": "true",
        "PARLEY_CONVERSATION__TRACK_COSTS": "true",
        "PARLEY_CONVERSATION__TRACK_ENGAGEMENT": "true",
        "PARLEY_ANALYTICS_DB": str(tmp_path / "analytics.sqlite3"),
    }
    problems: list[str] = []
    outside: list[str] = []
    with ServerProcess(env, startup_s=90) as server:
        loadgen = Loadgen(server.ws_url("/twilio/stream"), LOOPBACK_CALLS, 240)
        cascade: CascadeCalls | None = None
        try:
            assert loadgen.ready.wait(60), "the load generator did not connect its calls"
            assert loadgen.connected == LOOPBACK_CALLS
            cascade = CascadeCalls(server.url, CASCADE_CALLS)
            cascade.answered.wait(180)  # every cascade call has had its reply
            live = LOOPBACK_CALLS + CASCADE_CALLS
            page = offline_page(browser, problems, outside)
            page.goto(server.url + "/dashboard")
            page.wait_for_function(
                f"""() => {{
                    const s = window.dashboardState;
                    return s.feed === "open" && s.live === {live}
                        && s.histograms.voice_to_voice_ms >= {CASCADE_CALLS}
                        && s.histograms.tts_first_byte_ms >= {CASCADE_CALLS};
                }}""",
                timeout=30_000,
                polling=200,
            )
            assert page.locator("#live-count").inner_text() == str(live)
            summary = httpx.get(server.url + "/analytics/summary", timeout=10).json()
            assert summary["live"]["count"] == live
            rows = page.locator("#live tbody tr")
            assert rows.count() == live
            bars = page.evaluate("window.dashboardCharts.voice_to_voice_ms.data.datasets[0].data")
            assert sum(bars) == summary["histograms"]["voice_to_voice_ms"]["count"] > 0
            assert page.locator("#cost-user").is_visible()
            save(page, "dashboard.png", tmp_path)

            # The cascade callers hang up: the page follows without a reload.
            events_before = page.evaluate("window.dashboardState.events")
            cascade.hang_up.set()
            cascade.thread.join(30)
            assert cascade.errors == []
            page.wait_for_function(
                f"""() => window.dashboardState.live === {LOOPBACK_CALLS}
                    && document.querySelectorAll("#finished tbody tr").length
                       === {CASCADE_CALLS}""",
                timeout=30_000,
                polling=200,
            )
            assert page.evaluate("window.dashboardState.events") > events_before
            # The built-in processor's results reach the page too.
            try:
                page.wait_for_function(
                    """() => [...document.querySelectorAll("#finished tbody tr")]
                        .every((tr) => tr.children[6].textContent !== "–")""",
                    timeout=60_000,
                    polling=500,
                )
            except playwright_sync.TimeoutError:
                # Say whether the server has the results and the page missed them, or not.
                finished = httpx.get(server.url + "/analytics/summary", timeout=10).json()
                shown = page.locator("#finished tbody").inner_text()
                kept = [
                    (c["session_id"], c.get("analytics"), c.get("analytics_error"))
                    for c in finished["finished"]["calls"]
                ]
                raise AssertionError(f"page shows {shown!r}; the server has {kept!r}") from None
            save(page, "dashboard_after.png", tmp_path)
        finally:
            if cascade is not None:
                cascade.hang_up.set()
            loadgen.stop()
    assert problems == []
    assert outside == []


# ---------------------------------------------------------------- /docs and /redoc


def test_the_api_docs_render_offline(browser: Any, tmp_path: Path) -> None:
    problems: list[str] = []
    outside: list[str] = []
    with ServerProcess({"PARLEY_ENGINE": "loopback"}) as server:
        page = offline_page(browser, problems, outside)
        page.goto(server.url + "/docs")
        page.locator(".opblock-summary-path").first.wait_for(timeout=20_000)
        paths = set(page.locator(".opblock-summary-path").all_inner_texts())
        assert {"/conversations", "/analytics/costs", "/metrics"} <= {
            p.replace("\u200b", "") for p in paths
        }
        save(page, "docs.png", tmp_path)
        page.goto(server.url + "/redoc")
        page.get_by_text("Cost totals (USD) of finished calls").first.wait_for(timeout=20_000)
        assert "/analytics/costs" in page.inner_text("body")
        save(page, "redoc.png", tmp_path)
    assert outside == []
    # ReDoc's footer asks for its logo on its CDN: the page's policy refuses it (the
    # logo is hidden on error), which Chromium reports; nothing else may go wrong.
    refused = [p for p in problems if "cdn.redoc.ly/redoc/logo-mini.svg" in p]
    assert len(refused) <= 1 and [p for p in problems if p not in refused] == []


# ---------------------------------------------------------------- with authentication on

OPS_KEY = "ops-dashboard-key-0123456789abcdef"


def test_the_dashboard_with_authentication_takes_its_key_from_the_fragment(
    browser: Any, tmp_path: Path
) -> None:
    """Auth on: the data routes refuse a request without the key (401) and a key
    without ``analytics:read`` (403); opened as ``/dashboard/#key=…`` the page sends it
    as a bearer header, its live feed included (read through fetch), and the fragment
    leaves the address bar."""
    keys = [
        {"user_id": "ops", "key": OPS_KEY, "permissions": ["analytics:read"]},
        {"user_id": "caller", "key": "caller-key-0123456789abcdefgh", "permissions": ["audio"]},
    ]
    env = {
        "PARLEY_ENGINE": "loopback",
        "PARLEY_CONVERSATION__ENABLE_AUTH": "true",
        "PARLEY_AUTH": json.dumps({"api_keys": keys}),
        "PARLEY_ANALYTICS_DB": str(tmp_path / "analytics.sqlite3"),
    }
    problems: list[str] = []
    outside: list[str] = []
    with ServerProcess(env) as server:
        assert httpx.get(server.url + "/dashboard/api/summary").status_code == 401
        wrong = {"Authorization": "Bearer caller-key-0123456789abcdefgh"}
        assert httpx.get(server.url + "/dashboard/api/summary", headers=wrong).status_code == 403
        page = offline_page(browser, problems, outside)
        page.goto(server.url + "/dashboard/")
        page.get_by_text("open as /dashboard/#key=YOUR_KEY").wait_for(timeout=20_000)
        page = offline_page(browser, problems, outside)  # a fresh tab: a new document
        page.goto(server.url + f"/dashboard/#key={OPS_KEY}")
        page.wait_for_function(
            "() => window.dashboardState.feed === 'open' && window.dashboardState.live === 0",
            timeout=20_000,
            polling=200,
        )
        assert OPS_KEY not in page.url
        save(page, "dashboard_auth.png", tmp_path)
    # the first visit's refused requests are reported by Chromium; nothing else
    assert [p for p in problems if "401" not in p] == []
    assert outside == []

"""The talk page (src/parley/server/static/) in headless Debian Chromium.

Everything is real: Chromium and its fake microphone, fed a WAV that Piper spoke;
the page's AudioWorklets, WebSocket and browser protocol; and the server with its
defaults (``python -m parley serve`` via tests/servers.py: uvicorn, the offline
cascade of Silero, Whisper, the echo brain and Piper) on a free port. The page
must show Whisper's transcript of the WAV, play the reply and show the turn's
latency, at 24 kHz and on the 48 kHz fallback paths.

The barge-in test serves the page from a plain HTTP server and scripts the server
side of the WebSocket (Playwright's ``route_web_socket``, speaking the real
protocol) so it can send ``interrupted`` at a known moment and check that the
page stops playing at once, drops what was queued and reports where it stopped.

A screenshot of the first test goes to the test's tmp dir and to
``artifacts/talk_page.png`` (git-ignored) for a human to look at.
"""

from __future__ import annotations

import functools
import json
import math
import shutil
import struct
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import playwright.sync_api as playwright_sync
import pytest
import soxr

from parley.audio import write_wav
from servers import ServerProcess
from speech import normalise, speak

CHROMIUM = "/usr/bin/chromium"
SENTENCE = "I would like to book a table for two people tonight."
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
STATIC = Path(__file__).resolve().parents[1] / "src/parley/server/static"

# Debian's chromium (`make test` installs it); a missing browser fails, never skips.
pytestmark = [pytest.mark.slow]


# ---- fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sentence spoken by Piper as 48 kHz mono PCM16, the format Chromium's fake
    capture reads most reliably. Chromium loops the file, so the speech is followed
    by enough silence for the server to end the turn and answer before it repeats."""
    pcm, rate = speak(SENTENCE)
    voice = soxr.resample(np.frombuffer(pcm, dtype="<i2"), rate, 48000)
    # Piper peaks at full scale; leave headroom for the browser's audio processing.
    voice = (voice.astype(np.float32) * 0.7).astype("<i2")
    silence = np.zeros(48000 * 5, dtype="<i2")
    audio = np.concatenate([silence[: 48000 // 2], voice, silence])
    path = tmp_path_factory.mktemp("talk") / "sentence.wav"
    write_wav(path, audio.tobytes(), 48000)
    return path


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The server with its defaults (offline cascade, echo brain), as a subprocess."""
    with ServerProcess() as proc:
        yield proc.url


@pytest.fixture(scope="module")
def browser(speech_wav: Path) -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={speech_wav}",
            ],
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def problems() -> list[str]:
    """Uncaught exceptions and console errors of the page: there should be none."""
    return []


@pytest.fixture
def page(browser: Any, problems: list[str]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 900, "height": 700})
    page = context.new_page()
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        ),
    )
    try:
        yield page
    finally:
        context.close()


def _stats(page: Any) -> dict[str, Any]:
    stats: dict[str, Any] = page.evaluate("window.parleyStats")
    return stats


# ---- against the real server ----------------------------------------------------------


def _talk(page: Any, url: str) -> dict[str, Any]:
    """Open the page, press Start, and wait for one whole turn: the user's final
    transcript, the reply's text, its latency, and over a second of it played."""
    page.goto(url)
    page.get_by_role("button", name="Start").click()
    page.wait_for_function(
        """() => {
            const s = window.parleyStats;
            return s.transcript.some((t) => t.role === "user" && t.final)
                && s.transcript.some((t) => t.role === "assistant" && t.final)
                && s.latencies.length > 0
                && s.playedMs > 1000;
        }""",
        timeout=40_000,
        polling=200,
    )
    return _stats(page)


def _check_turn(
    page: Any, problems: list[str], stats: dict[str, Any], *, context_rate: int, wire_rate: int
) -> None:
    assert stats["contextRate"] == context_rate
    assert stats["wireRate"] == wire_rate
    assert stats["errors"] == [], stats["errors"]
    assert problems == []

    # Whisper heard, through Chromium's capture and the worklet, what Piper said.
    heard = normalise(" ".join(t["text"] for t in stats["transcript"] if t["role"] == "user"))
    missing = set(normalise(SENTENCE).split()) - set(heard.split())
    assert not missing, f"transcript {heard!r} lacks {missing}"
    shown = normalise(page.locator("#transcript li.user .said").first.inner_text())
    assert heard.startswith(shown), (shown, heard)

    # The reply (the echo brain repeats the sentence) was shown and played.
    reply = next(t for t in stats["transcript"] if t["role"] == "assistant" and t["final"])
    assert "table for two" in normalise(reply["text"])
    assert int(page.locator("#stats").get_attribute("data-played-ms")) > 0
    assert stats["playedMs"] > 1000

    # The turn's voice-to-voice latency, as the server measured it, is on the page.
    v2v = stats["latencies"][0]["voice_to_voice_ms"]
    assert isinstance(v2v, float | int) and 0 < v2v < 10_000
    page.locator("#latency li").first.wait_for()
    assert f"{round(v2v)} ms" in page.locator("#latency").inner_text()


def test_the_page_transcribes_speech_and_plays_the_reply(
    page: Any, problems: list[str], server: str, tmp_path: Path
) -> None:
    stats = _talk(page, server + "/")
    _check_turn(page, problems, stats, context_rate=24000, wire_rate=24000)

    shot = tmp_path / "talk_page.png"
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "talk_page.png")

    page.get_by_role("button", name="Stop").click()
    page.wait_for_function("window.parleyStats.state === 'ended'", timeout=5_000)


@pytest.mark.parametrize(
    ("query", "wire_rate"),
    [
        # The context runs at the device rate and the page announces it: the server
        # resamples (Firefox's case, protocol.md §1.1).
        ("?context_rate=48000", 48000),
        # The page resamples 48 → 24 kHz on capture and 24 → 48 kHz on playback
        # itself (the path for device rates the protocol does not accept).
        ("?context_rate=48000&wire_rate=24000", 24000),
    ],
)
def test_the_48k_fallback_paths_work_too(
    page: Any, problems: list[str], server: str, query: str, wire_rate: int
) -> None:
    stats = _talk(page, server + "/" + query)
    _check_turn(page, problems, stats, context_rate=48000, wire_rate=wire_rate)


# ---- barge-in against a scripted server -------------------------------------------------


def _tone(ms: int, rate: int = 24000) -> bytes:
    n = rate * ms // 1000
    return struct.pack(
        f"<{n}h", *(int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(n))
    )


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def static_server() -> Iterator[str]:
    """The page's files over HTTP, with nothing else behind them."""
    handler = functools.partial(_QuietHandler, directory=str(STATIC))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_interrupted_stops_playback_at_once_and_reports_where(
    page: Any, problems: list[str], static_server: str
) -> None:
    # Chromium does not route AudioWorklet module fetches through Playwright, so the
    # page's files come from a plain HTTP server; the REST call and the WebSocket
    # are scripted.
    origin = static_server
    page.route(
        f"{origin}/conversations",
        lambda route: route.fulfill(json={"id": "c1", "websocket_url": "ws/audio/c1"}),
    )

    received: list[str | bytes] = []
    sockets: list[Any] = []

    def on_socket(ws: Any) -> None:
        sockets.append(ws)
        ws.on_message(lambda message: received.append(message))

    page.route_web_socket("**/ws/audio/*", on_socket)
    page.goto(origin + "/")
    page.get_by_role("button", name="Start").click()

    def wait_until(check: Any, what: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, what
            page.wait_for_timeout(20)  # lets Playwright deliver the socket's messages

    wait_until(lambda: sockets and received, f"no start message {problems} {_stats(page)}")
    start = json.loads(received[0])
    assert start["type"] == "start" and start["version"] == 1
    assert start["format"] == {"encoding": "pcm16", "sample_rate": 24000, "channels": 1}
    ws = sockets[0]
    ws.send(json.dumps({"type": "ready", "session_id": "c1", "format": start["format"]}))

    # Microphone audio: binary frames of 20 ms PCM16 at 24 kHz.
    wait_until(lambda: sum(isinstance(m, bytes) for m in received) >= 5, "no audio frames")
    assert {len(m) for m in received if isinstance(m, bytes)} == {960}

    # A 3 s reply arrives in one burst; interrupt it once ~0.5 s has played.
    ws.send(json.dumps({"type": "response_started", "response_id": "r1"}))
    ws.send(json.dumps({"type": "response_text", "response_id": "r1", "delta": "A long reply"}))
    reply = _tone(3000)
    for i in range(0, len(reply), 1920):
        ws.send(reply[i : i + 1920])
    page.wait_for_function("window.parleyStats.playedMs > 500", timeout=10_000, polling=10)
    ws.send(
        json.dumps(
            {"type": "interrupted", "response_id": "r1", "played_text": "A long", "played_ms": 500}
        )
    )
    ws.send(reply[:1920])  # a straggler after the interruption: must not be played

    def playback_reports() -> list[dict[str, Any]]:
        msgs = (json.loads(m) for m in received if isinstance(m, str))
        return [m for m in msgs if m["type"] == "playback"]

    wait_until(lambda: page.evaluate("window.parleyStats.interruptions") == 1, "not interrupted")
    page.wait_for_timeout(300)
    stopped_at = _stats(page)["playedMs"]
    page.wait_for_timeout(400)
    stats = _stats(page)
    # Stopped at once: not one more sample after the worklet cleared its queue, and
    # that was soon after the message, nowhere near the end of the 3 s reply.
    assert stats["playedMs"] == stopped_at
    assert 500 < stopped_at < 1000
    assert stats["droppedFrames"] == 1

    reports = playback_reports()
    # While playing, reports came at least every 250 ms; the last says where it stopped.
    assert len(reports) >= 2 and all(r["response_id"] == "r1" for r in reports)
    last = reports[-1]
    assert last.get("done") is not True
    assert abs(last["played_ms"] - stopped_at) <= 1
    assert page.locator("#transcript li.cut").inner_text().endswith("A long …")
    assert stats["errors"] == [] and problems == []


def test_a_refused_conversation_is_shown_and_releases_the_microphone(
    page: Any, static_server: str
) -> None:
    page.route(
        f"{static_server}/conversations",
        lambda route: route.fulfill(status=503, json={"detail": "draining"}),
    )
    page.goto(static_server + "/")
    page.get_by_role("button", name="Start").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "HTTP 503" in alert.inner_text()
    assert page.get_by_role("button", name="Start").is_enabled()
    assert page.get_by_role("button", name="Stop").is_disabled()


def test_a_fatal_server_error_is_shown_and_ends_the_call(
    page: Any, problems: list[str], static_server: str
) -> None:
    page.route(
        f"{static_server}/conversations",
        lambda route: route.fulfill(json={"id": "c1", "websocket_url": "ws/audio/c1"}),
    )

    def on_socket(ws: Any) -> None:
        def on_message(message: str | bytes) -> None:
            if isinstance(message, str) and json.loads(message)["type"] == "start":
                error = {"code": "unsupported_version", "message": "no", "fatal": True}
                ws.send(json.dumps({"type": "error", **error}))
                ws.close(code=1008, reason="unsupported_version: no")

        ws.on_message(on_message)

    page.route_web_socket("**/ws/audio/*", on_socket)
    page.goto(static_server + "/")
    page.get_by_role("button", name="Start").click()
    page.wait_for_function("window.parleyStats.state === 'ended'", timeout=10_000)
    text = page.get_by_role("alert").inner_text()
    assert "unsupported_version: no (the call has ended)" in text or "1008" in text
    errors = _stats(page)["errors"]
    assert errors[0] == "unsupported_version: no (the call has ended)"
    assert "1008" in errors[1]
    assert page.get_by_role("button", name="Start").is_enabled()
    assert problems == []

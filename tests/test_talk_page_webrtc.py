"""The talk page over WebRTC in headless Debian Chromium, against the real server.

Chromium's fake microphone plays a WAV Piper spoke; the page (``?transport=webrtc``)
sends it as an Opus track with the browser's echo cancellation on, signals with
``POST /webrtc/offer`` and takes its control messages on the ``parley`` data
channel; the server (``python -m parley serve``: the offline cascade of Silero,
Whisper, the echo brain and Piper) answers on its track. ICE stays on loopback:
the server offers only 127.0.0.1 (``PARLEY_WEBRTC_ICE_ADDRESSES``) and the page
keeps only its 127.0.0.1 candidates (``&ice=loopback``). The page must show
Whisper's transcript, the reply's text and latency, and play the reply (audible
inbound RTP audio); the call's record says ``webrtc``. A screenshot goes to the
test's tmp dir and ``artifacts/talk_page_webrtc.png``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ifaddr
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

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pcm, rate = speak(SENTENCE)
    voice = soxr.resample(np.frombuffer(pcm, dtype="<i2"), rate, 48000)
    voice = (voice.astype(np.float32) * 0.7).astype("<i2")
    silence = np.zeros(48000 * 6, dtype="<i2")
    # Chromium reads the file from getUserMedia on, while ICE, DTLS and the data
    # channel take their time and the server drops audio until the page's `start`: the
    # speech begins 3 s in, so its first word is not lost on a loaded machine.
    audio = np.concatenate([silence[: 48000 * 3], voice, silence])
    path = tmp_path_factory.mktemp("talk_webrtc") / "sentence.wav"
    write_wav(path, audio.tobytes(), 48000)
    return path


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with ServerProcess({"PARLEY_WEBRTC_ICE_ADDRESSES": json.dumps(["127.0.0.1"])}) as proc:
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
                "--allow-loopback-in-peer-connection",  # host candidates on 127.0.0.1
                "--disable-features=WebRtcHideLocalIpsWithMdns",  # raw IPs, not .local names
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        try:
            yield b
        finally:
            b.close()


def test_the_page_talks_over_webrtc(browser: Any, server: str, tmp_path: Path) -> None:
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 900, "height": 700})
    page = context.new_page()
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    try:
        page.goto(server + "/?transport=webrtc&ice=loopback")
        assert page.locator("#webrtc").is_checked()
        page.get_by_role("button", name="Start").click()
        page.wait_for_function(
            """() => {
                const s = window.parleyStats;
                return s.transcript.some((t) => t.role === "user" && t.final)
                    && s.transcript.some((t) => t.role === "assistant" && t.final)
                    && s.latencies.length > 0
                    && s.playedMs > 1000;
            }""",
            timeout=60_000,
            polling=200,
        )
        stats = page.evaluate("window.parleyStats")
        assert stats["transport"] == "webrtc" and stats["errors"] == [], stats
        heard = normalise(" ".join(t["text"] for t in stats["transcript"] if t["role"] == "user"))
        missing = set(normalise(SENTENCE).split()) - set(heard.split())
        assert not missing, f"transcript {heard!r} lacks {missing}"
        reply = next(t for t in stats["transcript"] if t["role"] == "assistant" and t["final"])
        assert "table for two" in normalise(reply["text"])
        assert "table for two" in normalise(
            page.locator("#transcript li.assistant").first.inner_text()
        )
        v2v = stats["latencies"][0]["voice_to_voice_ms"]
        assert 0 < v2v < 10_000
        # Media stayed on this machine: the server's end of the selected pair is
        # 127.0.0.1 (the only address it offers). Chromium pairs every socket it has
        # with it, so its end may be a socket bound to another of this machine's own
        # addresses, sending to 127.0.0.1: those packets never leave the host either.
        local, remote = page.evaluate(
            """async () => {
                const stats = await window.parleyCall.pc.getStats();
                let pair = null;
                stats.forEach((s) => {
                    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
                        pair = s;
                    }
                });
                const local = stats.get(pair.localCandidateId);
                const remote = stats.get(pair.remoteCandidateId);
                return [local.address || local.ip, remote.address || remote.ip];
            }"""
        )
        assert remote == "127.0.0.1"
        own = {ip.ip for a in ifaddr.get_adapters() for ip in a.ips if isinstance(ip.ip, str)}
        assert local in own, (local, own)

        shot = tmp_path / "talk_page_webrtc.png"
        page.screenshot(path=str(shot), full_page=True)
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(shot, ARTIFACTS / "talk_page_webrtc.png")

        records = httpx.get(server + "/healthz").json()["calls"]
        assert [c.get("kind") for c in records] == ["webrtc"], records
        page.get_by_role("button", name="Stop").click()
        page.wait_for_function("window.parleyStats.state === 'ended'", timeout=5_000)
        assert problems == []
    finally:
        context.close()

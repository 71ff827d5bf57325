"""Seed 000's monitoring examples, as written, on the server and the offline cascade
(Silero, Whisper, the echo brain, Piper): a Piper-spoken sentence over a Twilio Media
Stream; ``on_metrics_update`` prints the turn's figures and the call's, the
``analytics_processor`` result is stored with the call."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest
import soxr
import websockets

from parley import AnalyticsResult, ConversationMetrics, Turn
from parley.app import Parley
from parley.audio.g711 import ulaw_encode
from parley.config import ConversationConfig, ParleySettings
from parley.events import Role
from servers import TwilioPhone, serve_app
from test_analytics_server import frames, next_message, silence_ulaw, until_reply_done


@pytest.mark.slow
async def test_seed_monitoring_examples_run_as_written_on_the_local_cascade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from speech import speak

    backend = Parley(
        ConversationConfig(enable_analytics=True, track_costs=True, track_engagement=True),
        settings=ParleySettings(brain="echo", analytics_db=tmp_path / "analytics.sqlite3"),
    )

    # ---- seed 000, "Monitoring and Analytics" ----------------------------------------
    from typing import List  # noqa: UP035 - as the seed writes it

    def analyze_sentiment(transcript: List[Turn]) -> float:  # noqa: UP006
        return 0.8 if any("thank" in t.text.lower() for t in transcript) else 0.0

    def extract_topics(transcript: List[Turn]) -> List[str]:  # noqa: UP006
        return ["booking"] if any("table" in t.text.lower() for t in transcript) else []

    def check_resolution(transcript: List[Turn]) -> bool:  # noqa: UP006
        return any(t.role is Role.ASSISTANT and t.text for t in transcript)

    # Real-time metrics
    @backend.on_metrics_update
    async def handle_metrics(metrics: ConversationMetrics):  # type: ignore[no-untyped-def]
        print(f"Latency: {metrics.voice_to_voice_ms}ms")
        print(f"Cost: ${metrics.estimated_cost}")
        print(f"Engagement: {metrics.engagement_score}")

    # Custom analytics
    @backend.analytics_processor
    async def process_conversation(transcript: List[Turn]) -> AnalyticsResult:  # noqa: UP006
        sentiment = analyze_sentiment(transcript)
        topics = extract_topics(transcript)
        return AnalyticsResult(
            sentiment=sentiment,
            topics=topics,
            resolution_status="resolved" if check_resolution(transcript) else "ongoing",
        )

    # ------------------------------------------------------------------------------------
    pcm, rate = speak("Please book a table for two people at seven tonight.")
    caller = ulaw_encode(
        soxr.resample(np.frombuffer(pcm, "<i2"), rate, 8000).astype("<i2").tobytes()
    )
    feed = backend.analytics.feed.subscribe()
    async with serve_app(backend) as server:
        async with websockets.connect(server.ws_url("/twilio/stream")) as ws:
            phone = TwilioPhone(ws)
            await phone.start()
            for f in frames(silence_ulaw(300) + caller + silence_ulaw(1000)):
                await phone.send_media(f)
                await asyncio.sleep(0.01)  # twice real time
            # Piper speaks clause by clause: on a busy machine the gaps are long.
            assert await until_reply_done(phone, gap_s=3.0) > 8000
            await phone.stop()
        ended = await next_message(feed, "call_ended")
        await next_message(feed, "analytics", wait_s=60)
        async with httpx.AsyncClient(base_url=server.url) as http:
            stored = (await http.get(f"/analytics/calls/{ended['session_id']}")).json()
    lines = capsys.readouterr().out.splitlines()
    latency = [line for line in lines if line.startswith("Latency: ")]
    assert len(latency) == 2  # the turn, and the call's summary
    v2v = float(latency[0].removeprefix("Latency: ").removesuffix("ms"))
    assert 200 < v2v < 5000  # end of speech → the echo's first audio, measured by the server
    cost = [line for line in lines if line.startswith("Cost: $")]
    assert float(cost[-1].removeprefix("Cost: $")) > 0  # the Twilio minutes (models: local)
    engagement = [line for line in lines if line.startswith("Engagement: ")]
    assert 0 < float(engagement[-1].removeprefix("Engagement: ")) <= 1
    assert stored["analytics"] == {
        "sentiment": 0.0,
        "sentiment_label": "neutral",
        "topics": ["booking"],
        "resolution_status": "resolved",
        "custom": {},
    }
    assert stored["metrics"]["turns"] == 1 and stored["cost"]["telephony"] > 0

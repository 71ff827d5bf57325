"""Seed 000's monitoring examples, as written, against the building blocks the
switchboard will wire: ``on_metrics_update`` gets each turn's ConversationMetrics, an
``analytics_processor`` returns an AnalyticsResult off the call's path."""

from __future__ import annotations

import asyncio

import pytest

from call_script import Script
from parley.analytics import AnalyticsJob, AnalyticsOutcome, AnalyticsQueue, AnalyticsResult
from parley.conversation.transcript import Turn
from parley.events import Role, Usage
from parley.metrics import CallMeter, ConversationMetrics, CostPlan, EnginePlan


async def test_on_metrics_update_prints_latency_cost_and_engagement(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # ---- seed 000, "Monitoring and Analytics" (the decorator is the switchboard's) ----
    async def handle_metrics(metrics: ConversationMetrics):  # type: ignore[no-untyped-def]
        print(f"Latency: {metrics.voice_to_voice_ms}ms")
        print(f"Cost: ${metrics.estimated_cost}")
        print(f"Engagement: {metrics.engagement_score}")

    # ------------------------------------------------------------------------------------
    plan = CostPlan((EnginePlan("realtime", realtime_model="gpt-realtime"),), "twilio-us")
    s = Script()
    s.say(1.5).reply(after=0.65, usage=Usage(input_audio_tokens=150, output_audio_tokens=400))
    meter = CallMeter("call-1", s.start, plan=plan)
    for event, at in s.events:
        snapshot = meter.observe(event, at)
        if snapshot is not None:
            await handle_metrics(snapshot)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Latency: 650.0ms"
    # 150 audio tokens in × $32 + 400 out × $64 per 1M, + 4.15 s of line at $0.0085/min
    assert lines[1] == "Cost: $0.030988"
    assert float(lines[2].removeprefix("Engagement: ")) > 0.0


def analyze_sentiment(transcript: list[Turn]) -> float:
    return 0.5 if any("thank" in t.text.lower() for t in transcript) else -0.5


def extract_topics(transcript: list[Turn]) -> list[str]:
    return sorted({w for t in transcript for w in ("refund", "order") if w in t.text.lower()})


def check_resolution(transcript: list[Turn]) -> bool:
    return transcript[-1].role is Role.USER and "thank" in transcript[-1].text.lower()


async def test_an_analytics_processor_as_written_runs_on_the_queue() -> None:
    # ---- seed 000, "Custom analytics" --------------------------------------------------
    async def process_conversation(transcript: list[Turn]) -> AnalyticsResult:
        sentiment = analyze_sentiment(transcript)
        topics = extract_topics(transcript)
        return AnalyticsResult(
            sentiment=sentiment,
            topics=topics,
            resolution_status="resolved" if check_resolution(transcript) else "ongoing",
        )

    # ------------------------------------------------------------------------------------
    results: list[AnalyticsOutcome] = []
    got = asyncio.Event()

    def store(outcome: AnalyticsOutcome) -> None:
        results.append(outcome)
        got.set()

    queue = AnalyticsQueue(process_conversation, store)
    queue.start()
    transcript = [
        Turn(Role.USER, "Where is my refund for the order?", 0.0, 2.0),
        Turn(Role.ASSISTANT, "It was sent today.", 2.5, 4.0),
        Turn(Role.USER, "Thank you!", 4.5, 5.0),
    ]
    assert queue.submit(AnalyticsJob("call-1", transcript))
    await asyncio.wait_for(got.wait(), 30)
    await queue.close()
    (outcome,) = results
    assert outcome.result == AnalyticsResult(0.5, ("order", "refund"), "resolved")

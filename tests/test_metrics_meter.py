"""CallMeter on scripted calls: latency per turn, talk, silences, interruptions, cost,
the per-turn snapshots and the call summary; the audio path's cost per chunk."""

from __future__ import annotations

import tracemalloc

import pytest

from call_script import CHUNK, RATE, Script
from parley.events import (
    AudioDelta,
    ContextInjected,
    EngineSwitched,
    ErrorEvent,
    TurnMetrics,
    Usage,
)
from parley.metrics import (
    CallInfo,
    CallMeter,
    ConversationMetrics,
    CostPlan,
    EnginePlan,
    Incident,
    TurnFigures,
)


def run(script: Script, meter: CallMeter) -> list[ConversationMetrics]:
    snapshots = []
    for event, at in script.events:
        snap = meter.observe(event, at)
        if snap is not None:
            snapshots.append(snap)
    return snapshots


def test_a_snapshot_after_every_turn_and_only_then() -> None:
    s = Script()
    s.reply(after=0.2, seconds=1.0, text="Hi, how can I help?")  # greeting
    s.wait(0.5).say(2.0).reply(after=0.7, seconds=2.0)
    s.wait(0.5).say(1.0).reply(after=0.9, seconds=1.0)
    meter = CallMeter("call-1", s.start)
    snaps = run(s, meter)
    assert [m.turn_index for m in snaps] == [0, 1, 2]
    assert [m.turns for m in snaps] == [1, 2, 3]
    assert all(not m.final for m in snaps)
    # The greeting has no caller speech before it: no voice-to-voice.
    assert snaps[0].voice_to_voice_ms is None
    # End of caller speech → first reply audio, on the script's clock.
    assert snaps[1].voice_to_voice_ms == pytest.approx(700.0)
    assert snaps[2].voice_to_voice_ms == pytest.approx(900.0)
    # No engine figure: time to first token is ResponseStarted → first output (the
    # script's TextDelta comes at 80 % of the wait, ResponseStarted at 50 %).
    assert snaps[1].llm_first_token_ms == pytest.approx(0.3 * 700.0)
    assert snaps[1].stt_ms is None and snaps[1].tts_first_byte_ms is None


def test_engine_reported_turn_metrics_win() -> None:
    s = Script()
    s.say(1.5)
    reported = TurnMetrics(1, 812.0, 301.0, 120.0, 250.0, 61.0)
    s.reply(after=0.7, seconds=1.0, metrics=reported)
    (snap,) = run(s, CallMeter("c", s.start))
    assert (snap.voice_to_voice_ms, snap.end_of_turn_ms, snap.stt_ms) == (812.0, 301.0, 120.0)
    assert (snap.llm_first_token_ms, snap.tts_first_byte_ms) == (250.0, 61.0)


def test_talk_ratio_is_the_callers_share_of_talk_time() -> None:
    s = Script()
    s.say(2.0).reply(after=0.5, seconds=2.0)
    s.wait(0.5).say(3.0).reply(after=0.5, seconds=2.0)
    snaps = run(s, CallMeter("c", s.start))
    last = snaps[-1]
    assert last.caller_talk_ms == pytest.approx(5000.0)
    assert last.agent_talk_ms == pytest.approx(4000.0)
    assert last.talk_ratio == pytest.approx(5 / 9)
    assert snaps[0].talk_ratio == pytest.approx(0.5)


def test_barge_in_counts_an_interruption_and_only_heard_audio() -> None:
    s = Script()
    s.say(1.0)
    s.reply(after=0.5, seconds=3.0, cut_at=1.0)  # the caller cuts in after 1 s of reply
    s.wait(1.2).stop()
    meter = CallMeter("c", s.start)
    snaps = run(s, meter)
    assert snaps[-1].interruptions == 1
    (turn,) = meter.turns
    assert turn.interrupted and turn.status == "cancelled"
    # 3 s of reply audio were sent; 1 s was heard: agent talk time is what was heard.
    assert snaps[-1].agent_talk_ms == pytest.approx(1000.0)


def test_played_voice_to_voice_from_the_first_playback_report() -> None:
    s = Script()
    s.say(1.0)
    rid = s.reply(after=0.6, seconds=2.0)
    meter = CallMeter("c", s.start)
    events = s.events
    first_audio = next(at for ev, at in events if isinstance(ev, AudioDelta))
    snap = None
    for event, at in events:
        if isinstance(event, AudioDelta) and at > first_audio + 0.149:
            # Twilio echoes the mark of the first 100 ms chunk 150 ms after it left:
            # the caller started hearing it 50 ms after it was sent.
            meter.playback(rid, 100.0, first_audio + 0.15)
        snap = meter.observe(event, at) or snap
    assert snap is not None
    assert snap.voice_to_voice_ms == pytest.approx(600.0)
    assert snap.played_voice_to_voice_ms == pytest.approx(650.0)


def test_playback_report_after_the_turn_closed_updates_its_figures() -> None:
    s = Script()
    s.say(1.0)
    rid = s.reply(after=0.5, seconds=0.5)
    meter = CallMeter("c", s.start)
    run(s, meter)
    first_audio = meter.turns[0].first_audio_at
    assert first_audio is not None and meter.turns[0].played_voice_to_voice_ms is None
    meter.playback(rid, 400.0, first_audio + 0.52)  # heard from first_audio + 0.12 s
    assert meter.turns[0].played_voice_to_voice_ms == pytest.approx(620.0)
    summary = meter.finish(s.t + 1)
    assert summary.latency["played_voice_to_voice_ms"].count == 1


def test_silences_are_dead_air_the_caller_sits_through_not_reply_latency() -> None:
    s = Script()
    s.say(1.0).reply(after=4.0, seconds=1.0)  # a slow reply: latency, not a silence
    s.wait(1.0).say(1.0).reply(after=0.5, seconds=1.0)
    s.wait(5.0).say(1.0).reply(after=0.5, seconds=1.0)  # the caller goes quiet for 5 s
    meter = CallMeter("c", s.start, silence_threshold_ms=3000)
    snaps = run(s, meter)
    assert [m.silences for m in snaps] == [0, 0, 1]
    assert snaps[-1].silence_ms == pytest.approx(5000.0)
    summary = meter.finish(s.t + 4.0)  # and then 4 s of nothing before the hang-up
    assert summary.silences == 2


def test_cost_is_live_and_priced_from_usage_and_the_line() -> None:
    usage = Usage(input_text_tokens=100, input_audio_tokens=50, output_audio_tokens=200)
    plan = CostPlan((EnginePlan("realtime", realtime_model="gpt-realtime"),), "twilio-us")
    s = Script()
    s.say(1.0).reply(after=0.5, seconds=1.0, usage=usage)
    s.wait(0.5).say(1.0).reply(after=0.5, seconds=1.0, usage=usage)
    meter = CallMeter("c", s.start, plan=plan)
    snaps = run(s, meter)
    tokens = (100 * 4.00 + 50 * 32.00 + 200 * 64.00) / 1e6
    first, second = snaps
    assert first.cost is not None and second.cost is not None
    assert first.cost.realtime == pytest.approx(tokens)
    assert second.cost.realtime == pytest.approx(2 * tokens)
    assert second.cost.telephony == pytest.approx(0.0085 * second.duration_ms / 60_000)
    assert second.estimated_cost == pytest.approx(second.cost.total, abs=1e-6)
    assert first.estimated_cost is not None and second.estimated_cost > first.estimated_cost


def test_cascade_costs_stt_minutes_and_tts_characters_and_local_parts_are_free() -> None:
    plan = CostPlan((EnginePlan("cascade", llm="local", stt="whisper-1", tts="tts-1"),))
    s = Script()
    s.say(30.0).reply(after=0.5, seconds=1.0, text="x" * 600)
    s.wait(0.5).say(30.0).reply(after=0.5, seconds=1.0, text="y" * 400)
    meter = CallMeter("c", s.start, plan=plan)
    meter.add_cpu("stt", 0.75)
    summary_cost = run(s, meter)[-1].cost
    assert summary_cost is not None
    assert summary_cost.stt == pytest.approx(0.006)  # one minute of caller speech
    assert summary_cost.tts == pytest.approx(1000 * 15.00 / 1e6)
    assert summary_cost.llm == 0.0 and summary_cost.telephony == 0.0
    assert summary_cost.cpu_seconds == {"stt": 0.75}
    assert summary_cost.unpriced == ()


def test_failover_moves_pricing_to_the_fallback_engine() -> None:
    plan = CostPlan(
        (
            EnginePlan("realtime", realtime_model="gpt-realtime"),
            EnginePlan("cascade", llm="gpt-4o-mini", stt="local", tts="local"),
        )
    )
    usage = Usage(input_text_tokens=1000, cached_text_tokens=400, output_text_tokens=100)
    s = Script()
    s.say(1.0).reply(after=0.5, seconds=1.0, usage=usage)
    s.at(EngineSwitched("realtime", "cascade", "upstream closed"))
    s.wait(0.5).say(1.0).reply(after=0.5, seconds=1.0, usage=usage)
    meter = CallMeter("c", s.start, plan=plan)
    last = run(s, meter)[-1]
    assert last.cost is not None
    assert last.cost.realtime == pytest.approx((600 * 4.00 + 400 * 0.40 + 100 * 16.00) / 1e6)
    assert last.cost.llm == pytest.approx((600 * 0.15 + 400 * 0.075 + 100 * 0.60) / 1e6)
    assert last.failovers == 1 and last.engine == "cascade"
    assert [t.engine for t in meter.turns] == ["realtime", "cascade"]


def test_unknown_models_are_listed_not_guessed() -> None:
    plan = CostPlan((EnginePlan("cascade", llm="gpt-9-ultra", stt="whisper-1"),), "acme-line")
    meter = CallMeter("c", 0.0, plan=plan)
    cost = meter.cost(60.0)
    assert cost is not None
    assert cost.unpriced == ("llm:gpt-9-ultra", "telephony:acme-line")
    assert cost.total == 0.0


def test_untracked_costs_and_engagement_are_none() -> None:
    s = Script()
    s.say(1.0).reply()
    (snap,) = run(s, CallMeter("c", s.start, track_costs=False, track_engagement=False))
    assert snap.estimated_cost is None and snap.cost is None and snap.engagement_score is None


def test_finish_closes_what_is_open_and_summarises_once() -> None:
    s = Script()
    s.reply(after=0.2, seconds=1.0)
    s.wait(0.3).say(1.0).reply(after=0.6, seconds=1.0)
    s.wait(0.3).say(1.0).reply(after=0.8, seconds=1.0)
    s.at(ErrorEvent("rate_limit_exceeded", "slow down"))
    s.at(ContextInjected("orders", "semantic", 42.0))
    s.wait(0.3).say(2.0)  # the caller speaks and hangs up before any reply
    meter = CallMeter("c", s.start)
    run(s, meter)
    summary = meter.finish(s.t + 0.5, ended_by="caller", dropped_audio_chunks=3)
    assert summary.final and summary.ended_by == "caller"
    assert summary.turns == 4 and [t.status for t in summary.turn_figures][-1] == "unanswered"
    assert summary.errors == 1 and summary.context_injections == 1
    assert summary.dropped_audio_chunks == 3
    v2v = summary.latency["voice_to_voice_ms"]
    assert v2v.count == 2 and v2v.p50_ms == pytest.approx(700.0)
    assert v2v.mean_ms == pytest.approx(700.0)
    assert summary.duration_ms == pytest.approx((s.t + 0.5 - s.start) * 1000)
    assert meter.finish(s.t + 9) is summary
    assert meter.observe(s.events[0][0], s.t + 10) is None


class RecordingSink:
    """A MetricsSink that keeps what it is told (the meter is under test, not the sink)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, object]] = []

    def call_started(self, call: CallInfo) -> None:
        self.log.append(("start", call.session_id))

    def turn_finished(self, call: CallInfo, turn: TurnFigures) -> None:
        self.log.append(("turn", turn.index))

    def incident(self, call: CallInfo, kind: Incident, detail: str, value: float) -> None:
        self.log.append((kind.value, detail))

    def call_finished(self, call: CallInfo, summary: ConversationMetrics) -> None:
        self.log.append(("end", summary.turns))


def test_sinks_hear_turns_incidents_and_the_call_never_audio() -> None:
    sink = RecordingSink()
    s = Script()
    s.say(1.0).reply(after=0.5, seconds=1.0)
    s.say(1.0)
    s.reply(after=0.5, seconds=2.0, cut_at=0.5)
    s.wait(0.5).stop()
    s.at(EngineSwitched("realtime", "cascade", "boom"))
    meter = CallMeter("c", s.start, sinks=[sink])
    run(s, meter)
    meter.finish(s.t)
    assert sink.log == [
        ("start", "c"),
        ("turn", 0),
        ("interruption", ""),
        ("turn", 1),
        ("failover", "cascade"),
        ("turn", 2),  # the barge-in's words were never answered
        ("end", 3),
    ]


def test_an_audio_chunk_allocates_nothing_that_stays() -> None:
    meter = CallMeter("c", 0.0)
    chunks = [AudioDelta("resp_0", CHUNK, RATE) for _ in range(5000)]
    meter.observe(chunks[0], 0.0)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for i, chunk in enumerate(chunks):
            meter.observe(chunk, i * 0.02)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 5000 chunks: the counters are rebound floats; nothing accumulates per chunk.
    assert after - before < 1024
    assert peak - before < 4096
    assert meter.snapshot(100.0).agent_talk_ms == pytest.approx(5001 * 20.0)


def test_turn_metrics_after_the_reply_ended_fill_in_its_figures() -> None:
    s = Script()
    s.say(1.0).reply(after=0.5, seconds=0.5)
    s.at(TurnMetrics(0, 640.0, 200.0, 110.0, 230.0, 70.0))
    meter = CallMeter("c", s.start)
    (snap,) = run(s, meter)
    assert snap.stt_ms is None  # the snapshot went out before the report
    fig = meter.turns[0]
    assert (fig.voice_to_voice_ms, fig.stt_ms, fig.tts_first_byte_ms) == (640.0, 110.0, 70.0)

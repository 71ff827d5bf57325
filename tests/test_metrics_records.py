"""Cost totals per user, session, tier and day over finished-call records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from call_script import Script
from parley.events import Usage
from parley.metrics import CallMeter, CostBreakdown, CostPlan, EnginePlan
from parley.metrics.records import CallRecord, GroupBy, aggregate_costs


def at(day: int, hour: int = 12) -> float:
    return datetime(2026, 11, day, hour, tzinfo=UTC).timestamp()


def record(sid: str, user: str, tier: str, start: float, usd: float, **kw: object) -> CallRecord:
    cost = CostBreakdown(realtime=usd, telephony=0.01, **kw)  # type: ignore[arg-type]
    return CallRecord(sid, user, tier, start, start + 90.0, cost)


RECORDS = [
    record("s1", "ana", "pro", at(1), 0.20),
    record("s2", "ana", "pro", at(1, 23), 0.30, cpu_seconds={"stt": 1.5}),
    record("s3", "ben", "free", at(2), 0.05, unpriced=("llm:gpt-9",)),
    record("s4", "cleo", "pro", at(3), 1.00),
]


def test_per_user_most_expensive_first() -> None:
    totals = aggregate_costs(RECORDS, "user")
    assert [(t.key, t.calls) for t in totals] == [("cleo", 1), ("ana", 2), ("ben", 1)]
    ana = totals[1]
    assert ana.cost_usd == pytest.approx(0.52)
    assert ana.by_part["realtime"] == pytest.approx(0.50)
    assert ana.by_part["telephony"] == pytest.approx(0.02)
    assert ana.duration_s == pytest.approx(180.0)
    assert ana.cpu_seconds == {"stt": 1.5}
    assert totals[2].unpriced == ("llm:gpt-9",)


def test_per_tier_and_session() -> None:
    tiers = aggregate_costs(RECORDS, GroupBy.TIER)
    assert [(t.key, t.calls, round(t.cost_usd, 6)) for t in tiers] == [
        ("pro", 3, 1.53),
        ("free", 1, 0.06),
    ]
    sessions = aggregate_costs(RECORDS, "session")
    assert [t.key for t in sessions] == ["s4", "s2", "s1", "s3"]


def test_per_day_in_date_order_and_in_a_time_zone() -> None:
    days = aggregate_costs(list(reversed(RECORDS)), "day")
    assert [(t.key, t.calls) for t in days] == [
        ("2026-11-01", 2),
        ("2026-11-02", 1),
        ("2026-11-03", 1),
    ]
    # 23:00 UTC on Nov 1 is Nov 2 in UTC+2.
    east = aggregate_costs(RECORDS, "day", tz=timezone(timedelta(hours=2)))
    assert [(t.key, t.calls) for t in east][:2] == [("2026-11-01", 1), ("2026-11-02", 2)]


def test_a_time_window() -> None:
    totals = aggregate_costs(RECORDS, "user", since=at(1, 13), until=at(3))
    assert [(t.key, t.calls) for t in totals] == [("ana", 1), ("ben", 1)]


def test_an_unknown_grouping_is_refused() -> None:
    with pytest.raises(ValueError):
        aggregate_costs(RECORDS, "planet")


def test_a_record_from_a_finished_call() -> None:
    plan = CostPlan((EnginePlan("realtime", realtime_model="gpt-realtime"),), "twilio-us")
    s = Script()
    s.say(1.0).reply(usage=Usage(output_audio_tokens=1000))
    meter = CallMeter("call-7", s.start, plan=plan)
    for event, t in s.events:
        meter.observe(event, t)
    summary = meter.finish(s.t + 1.0)
    rec = CallRecord.from_summary(summary, user_id="ana", tier="pro", ended_at=at(5))
    assert rec.session_id == "call-7" and rec.turns == 1
    assert rec.ended_at - rec.started_at == pytest.approx(summary.duration_ms / 1000)
    (total,) = aggregate_costs([rec], "user")
    assert summary.estimated_cost is not None
    assert total.cost_usd == pytest.approx(summary.estimated_cost, abs=1e-6)
    assert total.as_dict()["key"] == "ana"

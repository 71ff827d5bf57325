"""The engagement score on scripted calls whose ordering is obvious, and its formula."""

from __future__ import annotations

import math

import pytest

from call_script import Script
from parley.metrics import CallMeter, EngagementInputs, EngagementWeights, engagement_score


def score(script: Script, *, hang_up_after: float = 0.5, ended_by: str = "caller") -> float:
    meter = CallMeter("c", script.start)
    for event, at in script.events:
        meter.observe(event, at)
    summary = meter.finish(script.t + hang_up_after, ended_by=ended_by)
    assert summary.engagement_score is not None
    return summary.engagement_score


def greeting() -> Script:
    s = Script()
    s.reply(after=0.3, seconds=2.0, text="Hi, thanks for calling. How can I help?")
    return s


def conversation(turns: int, *, reply_after: float = 0.7, pause: float = 0.6) -> Script:
    s = greeting()
    for _ in range(turns):
        s.wait(pause).say(2.5).reply(after=reply_after, seconds=2.5)
    return s


def test_a_caller_who_converses_scores_above_one_who_hangs_up_after_the_greeting() -> None:
    hung_up = score(greeting(), hang_up_after=1.0)
    talked = score(conversation(6))
    assert hung_up < 0.25
    assert talked > 0.85
    assert talked > hung_up


def test_more_turns_score_higher() -> None:
    scores = [score(conversation(n)) for n in (1, 2, 4, 8)]
    assert scores == sorted(scores) and len(set(scores)) == 4


def test_interruptions_score_lower() -> None:
    def with_barge_ins(k: int) -> Script:
        s = greeting()
        for i in range(5):
            s.wait(0.6).say(2.5)
            if i < k:
                s.reply(after=0.7, seconds=3.0, cut_at=1.0)
                s.wait(1.0).stop()
            s.reply(after=0.7, seconds=2.0)
        return s

    scores = [score(with_barge_ins(k)) for k in (0, 1, 3, 5)]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 4


def test_long_silences_score_lower() -> None:
    quick, slow = conversation(5, pause=0.6), conversation(5, pause=6.0)
    assert score(quick) > score(slow)


def test_slow_replies_score_lower() -> None:
    assert score(conversation(5, reply_after=0.6)) > score(conversation(5, reply_after=2.5))


def test_the_early_hang_up_factor_applies_to_the_caller_ending_only() -> None:
    s = greeting()
    by_caller = score(s, hang_up_after=1.0, ended_by="caller")
    by_agent = score(s, hang_up_after=1.0, ended_by="agent")
    assert by_caller == pytest.approx(by_agent * 0.5)


def test_the_formula_by_hand() -> None:
    x = EngagementInputs(
        caller_turns=3,
        talk_ratio=0.4,
        interruptions=1,
        mean_voice_to_voice_ms=2000.0,
        silences=0,
        duration_s=90.0,
    )
    parts = [
        (0.30, 1 - math.exp(-1)),
        (0.15, 1 - 0.1 / 0.5),
        (0.15, math.exp(-1 / 3)),
        (0.20, 1 - 1200 / 2400),
        (0.20, 1.0),
    ]
    assert engagement_score(x) == pytest.approx(sum(w * p for w, p in parts))
    # Unknown sub-scores drop out and the rest are renormalised.
    y = EngagementInputs(2, None, 0, None, 0, 30.0)
    known = [(0.30, 1 - math.exp(-2 / 3)), (0.15, 1.0), (0.20, 1.0)]
    assert engagement_score(y) == pytest.approx(
        sum(w * p for w, p in known) / sum(w for w, _ in known)
    )
    # Weights are data.
    only_turns = EngagementWeights(1.0, 0.0, 0.0, 0.0, 0.0)
    assert engagement_score(y, only_turns) == pytest.approx(1 - math.exp(-2 / 3))


@pytest.mark.parametrize("turns", [0, 1, 5, 50])
@pytest.mark.parametrize("interruptions", [0, 3, 100])
@pytest.mark.parametrize("v2v", [None, 0.0, 900.0, 60_000.0])
def test_the_score_stays_in_0_1(turns: int, interruptions: int, v2v: float | None) -> None:
    for ratio in (None, 0.0, 0.5, 1.0):
        for hung_up in (False, True):
            x = EngagementInputs(turns, ratio, interruptions, v2v, interruptions, 5.0, hung_up)
            assert 0.0 <= engagement_score(x) <= 1.0

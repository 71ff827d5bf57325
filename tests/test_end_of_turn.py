"""The end-of-turn model: each signal alone, their combination, the wait curve, the
eagerness mapping and a flow phase's override — sans-I/O, on transcripts as Whisper
writes them (digits as digits, emails with @, a stop after most fragments)."""

from __future__ import annotations

import time

import pytest

from parley.endpointing import (
    EAGERNESS,
    EndOfTurn,
    EndOfTurnConfig,
    EndOfTurnInput,
    EndpointConfig,
    EndpointPolicy,
    Estimate,
    Expectation,
    PhasePolicy,
    combine,
    context_estimate,
    count_digits,
    eagerness_config,
    expectation_from,
    syntax_estimate,
)
from parley.errors import ConfigError

PHONE = "What's the best phone number to reach you?"

# ------------------------------------------------------------------ syntax


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("My number is", "copula"),
        ("The total is.", "copula after a noun"),
        ("Hi, this is", "copula after 'this'"),
        ("I'm calling about", "preposition"),
        ("It was a", "article"),
        ("Send it to my", "possessive"),
        ("I paid but", "conjunction"),
        ("I was going to, um", "filler"),
        ("Um.", "filler"),
        ("So.", "opener alone"),
        ("Let me think.", "hold phrase"),
        ("I need eggs, milk,", "list in progress"),
        ("My account number is 447, 291.", "number being read"),
        ("My email is jane.doe@example", "email without its domain"),
        ("My email is jane dot doe at example.", "spoken email without its domain"),
        ("The date is March", "month with no day"),
        ("Deliver it to 15 Elm Court, suite", "unit with no number"),
        ("I would like", "verb wanting an object"),
        ("The flight is B", "spelled letter"),
        ("I paid but they", "ends on its subject"),
        ("What plan I'm", "ends on a contracted subject"),
        ("I'm not sure what.", "question word in a statement"),
        ("Could you send?", "transitive verb"),
        ("Eggs, milk, bread.", "list with no 'and' yet"),
        ("My email addresses, T-Smith.", "email being given"),
        ("The references.", "bare noun phrase (tiny.en's 'The reference is')"),
    ],
)
def test_syntax_calls_unfinished_what_is_unfinished(text: str, why: str) -> None:
    est = syntax_estimate(text)
    assert est is not None and est.p_finished <= 0.3, (why, est)  # waits past "unsure"


@pytest.mark.parametrize(
    "text",
    [
        "What time do you open tomorrow?",
        "I would like to book a table.",
        "My email is jane.doe@example.com.",
        "My email is jane dot doe at example dot com.",
        "My birthday is July 2nd, 1988.",
        "Can I pay by card?",
        # a copula after a personal pronoun closes an answer or an inversion
        "What a lovely day it is.",
        "Yes, it is.",
        "I think we are.",
    ],
)
def test_syntax_calls_finished_what_is_finished(text: str) -> None:
    est = syntax_estimate(text)
    assert est is not None and est.p_finished >= 0.8, est


def test_syntax_is_unsure_without_punctuation_and_silent_on_nothing() -> None:
    est = syntax_estimate("I live at 123 Maple Street")
    assert est is not None and 0.4 <= est.p_finished <= 0.6
    assert syntax_estimate("   ") is None


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("555-123-4567", 10),
        ("five five five, one two three", 6),
        ("double five seven", 3),
        ("oh two oh 7946", 7),
        ("twenty three", 2),
        ("twenty", 2),
        ("nineteen eighty eight", 4),
        ("no digits here", 0),
    ],
)
def test_count_digits_reads_numbers_as_read_out(text: str, digits: int) -> None:
    assert count_digits(text) == digits


# ------------------------------------------------------------------ context


@pytest.mark.parametrize(
    ("agent", "kind", "digits"),
    [
        (PHONE, "digits", 10),
        ("And what's your zip code?", "digits", 5),
        ("What are the last four digits of the card?", "digits", 4),
        ("Can I have your account number, please?", "digits", None),
        ("What email address should we use?", "email", None),
        ("Would you like a receipt?", "yes_no", None),
        ("Thanks. Is that the number on your account?", "digits", None),
        ("So two pizzas, is that right?", "yes_no", None),
        ("How can I help you today?", "open", None),
        (None, "open", None),
    ],
)
def test_expectation_from_what_the_agent_asked(
    agent: str | None, kind: str, digits: int | None
) -> None:
    expect = expectation_from(agent)
    assert (expect.kind, expect.digits) == (kind, digits)


def test_digits_are_unfinished_until_there_are_enough() -> None:
    expect = expectation_from(PHONE)
    short = context_estimate("555 123.", expect)
    assert short is not None and short.p_finished < 0.1
    done = context_estimate("555-123-4567.", expect)
    assert done is not None and done.p_finished > 0.9
    # The context speaks only about a number at the end: a conjunction is syntax's.
    assert context_estimate("555-123-4567 and", expect) is None


def test_after_a_yes_no_question_yes_is_finished() -> None:
    expect = expectation_from("Would you like a receipt?")
    for text in ("Yes", "Yes.", "No, thanks.", "Sure.", "Yeah, please."):
        est = context_estimate(text, expect)
        assert est is not None and est.p_finished > 0.9, text
    assert context_estimate("Yes, but", expect) is None  # trailing off: not an answer yet
    assert context_estimate("I would like one for my office.", expect) is None


def test_a_short_phrase_answers_a_wh_question() -> None:
    which = expectation_from("Which one would you like?")
    assert which.kind == "answer"
    est = context_estimate("The blue one.", which)
    assert est is not None and est.p_finished > 0.8
    # Not when the phrase is an entity still in progress, or the question asks for a story.
    assert context_estimate("It expires in December.", expectation_from("When?")) is None
    assert expectation_from("What happened?").kind == "open"
    model = EndOfTurn()
    bare = model.decide(EndOfTurnInput("The blue one."))
    answer = model.decide(EndOfTurnInput("The blue one.", last_agent_text="Which one?"))
    assert answer.wait_ms < bare.wait_ms


def test_email_is_finished_on_its_domain() -> None:
    expect = Expectation("email")
    done = context_estimate("jane.doe@example.com.", expect)
    assert done is not None and done.p_finished > 0.9
    pending = context_estimate("jane dot doe at example", expect)
    assert pending is not None and pending.p_finished < 0.2


# ------------------------------------------------------------------ combination


def test_combine_adds_weighted_log_odds() -> None:
    assert combine([]) == 0.5
    assert combine([None, Estimate(0.8, "a")]) == pytest.approx(0.8)
    agree = combine([Estimate(0.8, "a"), Estimate(0.8, "b")])
    assert agree > 0.9  # two signals agreeing are surer than one
    assert combine([Estimate(0.9, "a"), Estimate(0.1, "b")]) == pytest.approx(0.5)
    assert combine([Estimate(0.97, "ctx", 2.0), Estimate(0.2, "syn")]) > 0.9
    with pytest.raises(ValueError):
        Estimate(1.5, "bad")


def test_context_outvotes_syntax_on_numbers() -> None:
    model = EndOfTurn()
    # Without context a digit string at the end waits long; the digits a phone
    # number needs make it finished; too few keep it unfinished.
    alone = model.decide(EndOfTurnInput("555-123-4567."))
    asked = model.decide(EndOfTurnInput("555-123-4567.", last_agent_text=PHONE))
    short = model.decide(EndOfTurnInput("555-123.", last_agent_text=PHONE))
    assert alone.verdict == "incomplete" and alone.wait_ms >= 1200
    assert asked.verdict == "complete" and asked.wait_ms == EndOfTurnConfig().short_ms
    assert short.verdict == "incomplete" and short.wait_ms == EndOfTurnConfig().long_ms
    assert [name for name, _ in asked.signals] == ["syntax", "context"]
    assert "10 digits" in asked.reasons


def test_yes_without_a_stop_after_a_yes_no_question_ends_fast() -> None:
    model = EndOfTurn()
    plain = model.decide(EndOfTurnInput("Yes"))
    asked = model.decide(EndOfTurnInput("Yes", last_agent_text="Shall I book it for you?"))
    assert plain.verdict == "unsure"
    assert asked.verdict == "complete" and asked.wait_ms < plain.wait_ms


def test_the_audio_signal_counts_only_when_switched_on() -> None:
    text = EndOfTurnInput("I live at 123 Maple Street", audio_p_finished=0.99)
    off = EndOfTurn().decide(text)
    on = EndOfTurn(EndOfTurnConfig(audio_weight=1.0)).decide(text)
    assert [n for n, _ in off.signals] == ["syntax"]
    assert [n for n, _ in on.signals] == ["syntax", "audio"]
    assert on.confidence > off.confidence and on.wait_ms < off.wait_ms


def test_wait_follows_the_estimate() -> None:
    cfg = EndOfTurnConfig(short_ms=100, unsure_ms=600, long_ms=1500)
    assert cfg.wait_for(0.99) == cfg.wait_for(cfg.p_high) == 100
    assert cfg.wait_for(0.01) == cfg.wait_for(cfg.p_low) == 1500
    assert cfg.wait_for(0.5) == 600
    waits = [cfg.wait_for(p / 20) for p in range(21)]
    assert waits == sorted(waits, reverse=True)  # surer finished → shorter wait


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"short_ms": 0.0}, "short_ms"),
        ({"short_ms": 1200.0}, "unsure_ms"),
        ({"p_high": 0.4}, "p_high"),
        ({"audio_weight": -1.0}, "audio_weight"),
        ({"pending_ms": float("nan")}, "pending_ms"),
    ],
)
def test_config_validation(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        EndOfTurnConfig(**kwargs)
    assert info.value.field == field


def test_decide_is_fast_enough_for_the_event_loop() -> None:
    model = EndOfTurn()
    inp = EndOfTurnInput(
        "My account number is 447, 291 and then", last_agent_text="And your account number?"
    )
    t0 = time.perf_counter()
    for _ in range(500):
        model.decide(inp)
    per_call_ms = (time.perf_counter() - t0) * 1000 / 500
    assert per_call_ms < 0.5, per_call_ms  # ~30 µs here; far under a millisecond


# ------------------------------------------------------------------ eagerness and phases


def test_eagerness_orders_the_waits() -> None:
    low, medium, high = (eagerness_config(e) for e in ("low", "medium", "high"))
    assert eagerness_config("auto") == medium == EndOfTurnConfig()
    assert eagerness_config(None) == medium and eagerness_config("bogus") == medium
    for p in (0.05, 0.5, 0.95):
        assert low.wait_for(p) > medium.wait_for(p) > high.wait_for(p)
    assert high.pending_ms < medium.pending_ms < low.pending_ms
    assert set(EAGERNESS) == {"low", "medium", "high", "auto"}
    keeps = eagerness_config("high", EndOfTurnConfig(audio_weight=1.0))
    assert keeps.audio_weight == 1.0 and keeps.short_ms == high.short_ms


def test_a_phase_collecting_a_phone_number_waits_for_the_digits() -> None:
    model = EndOfTurn()
    phase = PhasePolicy(expect=Expectation.number(10, "phone number"))
    # The agent's last words say nothing about numbers; the phase does.
    inp = EndOfTurnInput("555 123.", last_agent_text="Great, thanks.", phase=phase)
    assert model.decide(inp).verdict == "incomplete"
    done = EndOfTurnInput("555 123 4567.", last_agent_text="Great, thanks.", phase=phase)
    assert model.decide(done).verdict == "complete"
    low = PhasePolicy.collecting("phone number", 10)
    assert low.eagerness == "low" and low.expect == Expectation("digits", 10, "phone number")
    unsure = EndOfTurnInput("Maple Street", phase=low)
    p = model.decide(unsure).confidence
    assert model.decide(unsure).wait_ms == EAGERNESS["low"].wait_for(p) > model.config.wait_for(p)
    clamped = PhasePolicy(min_wait_ms=900.0, max_wait_ms=1000.0)
    waits = {model.decide(EndOfTurnInput(t, phase=clamped)).wait_ms for t in ("Yes?", "My")}
    assert waits == {900.0, 1000.0}


def test_the_detector_waits_the_pending_wait_until_the_transcript_is_in() -> None:
    from parley.turns import TurnConfig

    model = EndOfTurn(eagerness_config("low"))
    turn = model.turn_config(TurnConfig(threshold=0.6))
    assert turn.end_of_turn_silence_ms == EAGERNESS["low"].pending_ms == model.pending_ms
    assert turn.threshold == 0.6


def test_endpoint_policy_routes_to_the_model() -> None:
    policy = EndpointPolicy(EndpointConfig(mode="model"))
    assert policy.enabled
    verdict, wait = policy.wait_ms("My number is")
    assert verdict == "incomplete" and wait == EndOfTurnConfig().long_ms
    decision = policy.decide(EndOfTurnInput("555-123-4567.", last_agent_text=PHONE))
    assert decision is not None and decision.verdict == "complete"
    rule = EndpointPolicy(EndpointConfig())
    assert rule.decide(EndOfTurnInput("Can I pay by card?")) is not None
    assert rule.decide(EndOfTurnInput("Maple Street")) is None  # keep the acoustic wait
    assert EndpointPolicy(EndpointConfig(mode="acoustic")).decide(EndOfTurnInput("Hi.")) is None

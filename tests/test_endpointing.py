"""Transcript-aware end of turn: the completeness rule and the wait it picks."""

from __future__ import annotations

import pytest

from parley.endpointing import EndpointConfig, EndpointPolicy, judge
from parley.errors import ConfigError


@pytest.mark.parametrize(
    "text",
    [
        "What time do you open tomorrow?",
        "I would like to book a table.",
        "Thank you, that was helpful.",
        "I think so.",
        "Yes, I do!",
        'He said "stop."',
        "My card was charged twice.",
    ],
)
def test_finished_sentences_are_complete(text: str) -> None:
    assert judge(text) == "complete"


@pytest.mark.parametrize(
    "text",
    [
        "My number is...",
        "My number is",
        "My number is 555",
        "My number is 555-123.",  # Whisper puts a stop after digits it heard
        "The code is seven.",
        "I live at 123 Maple Street,",
        "The reference is x.",
        "Send it to",
        "I need eggs and",
        "Well",
        "So.",
        "I was going to, um",
        "Call me back on 0-2-0.",
        "The colors are red, green -",
        "Let me think …",
        "...",  # nothing but a trailing-off mark
    ],
)
def test_trailing_off_is_incomplete(text: str) -> None:
    assert judge(text) == "incomplete"


@pytest.mark.parametrize("text", ["", "   ", "I live at 123 Maple Street", "My name is John"])
def test_no_final_punctuation_on_a_content_word_is_unsure(text: str) -> None:
    assert judge(text) == "unsure"


def test_policy_maps_verdicts_to_waits() -> None:
    policy = EndpointPolicy(EndpointConfig(complete_wait_ms=300, incomplete_wait_ms=900))
    assert policy.enabled
    assert policy.wait_ms("Can I pay by card?") == ("complete", 300)
    assert policy.wait_ms("My number is five") == ("incomplete", 900)
    assert policy.wait_ms("Maple Street") == ("unsure", None)  # keep the acoustic wait
    unsure = EndpointPolicy(EndpointConfig(unsure_wait_ms=700))
    assert unsure.wait_ms("Maple Street") == ("unsure", 700)


def test_acoustic_mode_judges_but_never_changes_the_wait() -> None:
    policy = EndpointPolicy(EndpointConfig(mode="acoustic"))
    assert not policy.enabled
    assert policy.wait_ms("Can I pay by card?") == ("complete", None)
    assert policy.wait_ms("My number is") == ("incomplete", None)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mode": "psychic"}, "mode"),
        ({"complete_wait_ms": 0.0}, "complete_wait_ms"),
        ({"incomplete_wait_ms": float("nan")}, "incomplete_wait_ms"),
        ({"unsure_wait_ms": -1.0}, "unsure_wait_ms"),
        ({"complete_wait_ms": 900.0, "incomplete_wait_ms": 800.0}, "complete_wait_ms"),
    ],
)
def test_config_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        EndpointConfig(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field

"""The one "what did the caller hear" helper, for the cascade's clauses and a realtime
reply's single transcript alike."""

from __future__ import annotations

import pytest

from parley.engines.playback import SpokenSegment, estimated_played_ms, heard_text, still_playing

CLAUSES = [  # as the cascade records them: a clause and its audio span
    SpokenSegment("Hello there.", 0.0, 1000.0),
    SpokenSegment("How can I help you today?", 1000.0, 3000.0),
]


@pytest.mark.parametrize(
    ("played_ms", "heard"),
    [
        (0.0, ""),
        (500.0, "Hello"),  # "Hello " — the cut falls on the space: the word is whole
        (999.0, "Hello"),  # "there." is cut in the middle: not heard
        (1000.0, "Hello there."),
        (1500.0, "Hello there. How"),  # "How ca|n": the cut word is dropped
        (3000.0, "Hello there. How can I help you today?"),
        (1e9, "Hello there. How can I help you today?"),
    ],
)
def test_clauses_heard_in_whole_words(played_ms: float, heard: str) -> None:
    assert heard_text(CLAUSES, played_ms) == heard


def test_one_transcript_over_the_whole_reply_and_plain_tuples() -> None:
    # A realtime reply: the transcript mapped proportionally onto its audio.
    assert heard_text([("hello world", 0.0, 1100.0)], 600.0) == "hello"
    assert heard_text([("hello world", 0.0, 1100.0)], 599.0) == "hello"
    assert heard_text([("hello world", 0.0, 1100.0)], 400.0) == ""
    assert heard_text([("one  two\nthree", 0.0, 100.0)], 100.0) == "one two three"
    assert heard_text([], 500.0) == ""
    # A segment with no audio yet (its clause still being synthesised while the caller
    # has heard all that was sent) was not heard; one playback has passed was.
    assert heard_text([("a", 0.0, 100.0), ("b", 100.0, 100.0)], 100.0) == "a"
    assert heard_text([("a", 0.0, 100.0), ("b", 100.0, 100.0), ("c d", 100.0, 300.0)], 300.0) == (
        "a b c d"
    )
    assert heard_text([("the whole reply", 0.0, 0.0)], 0.0) == ""  # truncated before audio


def test_played_estimate_and_still_playing() -> None:
    assert estimated_played_ms(1000.0, 400.0, 0.0, 99.0) == 400.0  # reported wins
    assert estimated_played_ms(1000.0, None, 10.0, 10.25) == 250.0  # real time since
    assert estimated_played_ms(1000.0, None, None, 5.0) == 0.0
    assert estimated_played_ms(200.0, 5000.0, 0.0, 0.0) == 200.0
    assert still_playing(True, 0.0, None, None, 0.0)
    assert still_playing(False, 1000.0, 500.0, 0.0, 0.0)
    assert not still_playing(False, 1000.0, 1000.0, 0.0, 0.0)

"""Fuzzing the inbound WebSocket protocols at the decoder (sans-I/O): 10,000 hostile
connections (frame sequences) per protocol from fixed seeds; every frame decodes or
raises a typed RemoteProtocolError, nothing else."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parley.testing.fuzz import (
    Frame,
    browser_cases,
    drive_browser,
    drive_realtime,
    drive_twilio,
    realtime_cases,
    twilio_cases,
)

CASES = 10_000
PER_EXAMPLE = 5
FUZZ = settings(
    max_examples=CASES // PER_EXAMPLE,
    derandomize=True,  # fixed seeds: the same 10,000 connections every run
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _fuzz(
    cases: st.SearchStrategy[list[list[Frame]]],
    driver: Callable[[Sequence[Frame]], list[str]],
) -> Counter[str]:
    codes: Counter[str] = Counter()
    seen = [0, 0]  # connections, frames

    @FUZZ
    @given(cases)
    def run(batch: list[list[Frame]]) -> None:
        for frames in batch:
            seen[0] += 1
            seen[1] += len(frames)
            codes.update(driver(frames))

    run()
    assert seen[0] >= CASES
    return codes


def test_twilio_stream_decoder() -> None:
    codes = _fuzz(twilio_cases(PER_EXAMPLE), drive_twilio)
    # the cases reach past the first state, not only its first error
    assert {"bad_json", "media_before_start", "frame_too_large"} <= set(codes), codes


def test_browser_session_decoder() -> None:
    codes = _fuzz(browser_cases(PER_EXAMPLE), drive_browser)
    assert {"bad_json", "frame_too_large", "odd_audio_length"} <= set(codes), codes


def test_realtime_client_event_decoder() -> None:
    codes = _fuzz(realtime_cases(PER_EXAMPLE), drive_realtime)
    assert {"invalid_json", "invalid_event", "invalid_audio"} <= set(codes), codes

"""The shared playback tracker and playout model (protocols/playback.py).

``PlaybackTracker(flushed_marks_echo=True)`` must be a drop-in for Twilio's
``MarkTracker``: the property test replays random histories through both.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.protocols.playback import PlaybackTracker, Playout
from parley.protocols.twilio import MarkTracker
from parley.protocols.twilio_caller import Playout as TwilioPlayout

# An operation: ("add", bytes, response) | ("echo", index) | ("clear",) | ("forget", response)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 4000), st.sampled_from(["", "r1", "r2"])),
        st.tuples(st.just("echo"), st.integers(0, 30)),
        st.tuples(st.just("clear")),
        st.tuples(st.just("forget"), st.sampled_from(["", "r1", "r2"])),
        st.tuples(st.just("foreign")),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(ops, st.sampled_from([8, 16, 32, 48]))
def test_tracker_behaves_exactly_like_twilios_mark_tracker(
    history: list[tuple[object, ...]], bytes_per_ms: int
) -> None:
    old, new = MarkTracker(bytes_per_ms=bytes_per_ms), PlaybackTracker(bytes_per_ms=bytes_per_ms)
    names: list[str] = []
    for op in history:
        if op[0] == "add":
            n, rid = op[1], op[2]
            assert isinstance(n, int) and isinstance(rid, str)
            name = old.add(n, rid)
            assert new.add(n, rid) == name
            names.append(name)
        elif op[0] == "echo" and names:
            assert isinstance(op[1], int)
            name = names[op[1] % len(names)]
            a, b = old.echo(name), new.echo(name)
            assert (a is None) == (b is None)
            if a is not None and b is not None:
                assert (a.name, a.response_id, a.played, a.ms, a.played_ms) == (
                    b.name,
                    b.response_id,
                    b.played,
                    b.ms,
                    b.played_ms,
                )
        elif op[0] == "clear":
            assert old.clear() == new.clear()
        elif op[0] == "forget":
            assert isinstance(op[1], str)
            old.forget(op[1])
            new.forget(op[1])
        elif op[0] == "foreign":
            assert old.echo("Repeat message 0") is None
            assert new.echo("Repeat message 0") is None
        assert old.pending_ms == new.pending_ms
        assert old.pending_marks == new.pending_marks
        for rid in ("", "r1", "r2"):
            assert old.played_ms(rid) == new.played_ms(rid)


def test_flushed_echoes_count_as_played_when_the_platform_only_reports_played_audio() -> None:
    twilio_like = PlaybackTracker()
    plivo_like = PlaybackTracker(flushed_marks_echo=False)
    for tracker in (twilio_like, plivo_like):
        a = tracker.add(80, "r")
        tracker.add(80, "r")
        tracker.clear()
        echo = tracker.echo(a)
        assert echo is not None
    assert twilio_like.played_ms("r") == 0.0
    assert plivo_like.played_ms("r") == 10.0


def test_cleared_forgets_only_flushed_checkpoints() -> None:
    tracker = PlaybackTracker(bytes_per_ms=32)
    tracker.add(320, "r1")
    tracker.add(320, "r1")
    tracker.clear()
    late = tracker.add(640, "r2")  # the next reply started before the acknowledgement
    assert tracker.cleared() == 2
    assert tracker.pending_marks == 1 and tracker.pending_ms == 20.0
    echo = tracker.echo(late)
    assert echo is not None and echo.played and echo.played_ms == 20.0
    assert tracker.cleared() == 0


def test_tracker_arguments() -> None:
    with pytest.raises(ValueError):
        PlaybackTracker(bytes_per_ms=0)
    with pytest.raises(ValueError):
        PlaybackTracker().add(-1)
    assert PlaybackTracker(prefix="x-").add(1).startswith("x-")
    assert PlaybackTracker(bytes_per_ms=32).bytes_per_ms == 32


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["audio", "mark", "due", "clear"]),
            st.integers(0, 3000),
            st.floats(0, 0.5),
        ),
        max_size=30,
    )
)
def test_playout_at_8_bytes_per_ms_is_twilios_playout(events: list[tuple[str, int, float]]) -> None:
    old, new = TwilioPlayout(), Playout(bytes_per_ms=8)
    now = 0.0
    for i, (kind, n, dt) in enumerate(events):
        now += dt
        if kind == "audio":
            old.push_audio(n, now)
            new.push_audio(n, now)
        elif kind == "mark":
            old.push_mark(f"m{i}", now)
            new.push_mark(f"m{i}", now)
        elif kind == "due":
            assert old.due(now) == new.due(now)
        else:
            assert old.clear(now) == new.clear(now)
        assert old.busy_until() == new.busy_until()
        assert old.idle(now) == new.idle(now)
        assert (old.received_bytes, old.dropped_bytes) == (new.received_bytes, new.dropped_bytes)


def test_playout_at_16_khz_pcm() -> None:
    playout = Playout(bytes_per_ms=32)
    playout.push_audio(3200, 0.0)  # 100 ms
    playout.push_mark("a", 0.0)
    playout.push_audio(3200, 0.0)
    playout.push_mark("b", 0.0)
    assert playout.due(0.099) == []
    assert playout.due(0.1) == ["a"]
    assert playout.clear(0.15) == ["b"]
    assert playout.dropped_bytes == 1600
    assert playout.idle(0.15)
    with pytest.raises(ValueError):
        Playout(bytes_per_ms=0)

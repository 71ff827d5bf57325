"""Vonage Voice API WebSocket: a JSON first message, then binary L16 both ways.

Shapes from reference/protocols.md §3.2 and Vonage's WebSocket guide; the phone's
half (``VonageCaller``) and the server's (``VonageStream``) are checked against
each other, including barge-in with ``clear`` → ``websocket:cleared``.
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.audio.format import AudioFormat
from parley.errors import LocalProtocolError, RemoteProtocolError
from parley.events import DTMFReceived
from parley.protocols.limits import MAX_AUDIO_FRAME_BYTES
from parley.protocols.playback import PlaybackTracker, Playout
from parley.protocols.vonage import (
    DTMF,
    MAX_QUEUED_FRAMES,
    Cleared,
    Connected,
    Media,
    Notify,
    StreamState,
    Unknown,
    VonageStream,
    parse_content_type,
)
from parley.protocols.vonage_caller import Clear, OutboundAudio, OutboundNotify, VonageCaller

# The first message as Vonage's guide shows it: the NCCO endpoint headers flattened in.
CONNECTED = (
    '{"event":"websocket:connected","content-type":"audio/l16;rate=16000",'
    '"app":"demo","token":"t0k"}'
)
FRAME = np.arange(-160, 160, dtype="<i2").tobytes()  # 320 samples = 20 ms at 16 kHz


@pytest.fixture
def started() -> VonageStream:
    stream = VonageStream()
    stream.receive(CONNECTED)
    return stream


# ----------------------------------------------------------------------- inbound


def test_connected_gives_format_and_headers() -> None:
    stream = VonageStream()
    event = stream.receive(CONNECTED)
    assert event == Connected("audio/l16;rate=16000", 16000, {"app": "demo", "token": "t0k"})
    assert stream.state is StreamState.STARTED
    assert stream.line_format == AudioFormat("pcm16", 16000)
    assert stream.frame_bytes == 640


@pytest.mark.parametrize(
    ("value", "rate"),
    [
        ("audio/l16;rate=16000", 16000),
        ("audio/l16;rate=8000", 8000),
        ("audio/L16; rate=24000", 24000),
        ("audio/l16;x=1;rate=16000", 16000),
    ],
)
def test_content_types(value: str, rate: int) -> None:
    assert parse_content_type(value) == rate


@pytest.mark.parametrize(
    "value", ["audio/l16", "audio/l16;rate=44100", "audio/pcmu;rate=8000", "", "audio/l16;rate="]
)
def test_unsupported_content_types(value: str) -> None:
    frame = json.dumps({"event": "websocket:connected", "content-type": value})
    with pytest.raises(RemoteProtocolError) as info:
        VonageStream().receive(frame)
    assert info.value.code == "unsupported_media_format"


def test_binary_frames_are_audio(started: VonageStream) -> None:
    assert started.receive(FRAME) == Media(FRAME)
    assert started.receive(bytearray(FRAME)) == Media(FRAME)
    assert started.receive(b"") == Media(b"")


@pytest.mark.parametrize(
    "frame",
    [
        '{"event":"websocket:dtmf","digit":"5","duration":260}',
        '{"event":"websocket:dtmf","dtmf":{"digit":"5","duration":260}}',
        '{"event":"websocket:dtmf","dtmf":{"digit":"5","duration_ms":260}}',
        '{"event":"websocket:dtmf","dtmf":"5","duration":260}',
    ],
)
def test_dtmf_in_every_shape_seen(started: VonageStream, frame: str) -> None:
    event = started.receive(frame)
    assert event == DTMF("5", 260.0)
    assert isinstance(event, DTMF) and event.as_event() == DTMFReceived("5")


def test_notify_cleared_and_unknown(started: VonageStream) -> None:
    event = started.receive('{"event":"websocket:notify","payload":{"name":"parley-3"}}')
    assert event == Notify({"name": "parley-3"})
    assert isinstance(event, Notify) and event.name == "parley-3"
    assert Notify({"name": 3}).name == ""
    assert started.receive('{"event":"websocket:cleared"}') == Cleared()
    assert started.receive('{"event":"websocket:error","reason":"x"}') == Unknown(
        "websocket:error", {"event": "websocket:error", "reason": "x"}
    )


BAD_TEXT = [
    pytest.param("hello", "bad_json", id="not-json"),
    pytest.param("[]", "not_an_object", id="array"),
    pytest.param('{"action":"clear"}', "missing_event", id="no-event"),
    pytest.param('{"event":"websocket:dtmf"}', "invalid_message", id="dtmf-no-digit"),
    pytest.param('{"event":"websocket:dtmf","digit":"55"}', "invalid_message", id="dtmf-two"),
    pytest.param('{"event":"websocket:dtmf","digit":5}', "invalid_message", id="dtmf-int"),
    pytest.param('{"event":"websocket:notify","payload":[1]}', "invalid_message", id="notify-list"),
    pytest.param('{"event":"websocket:connected"}', "invalid_message", id="no-content-type"),
    pytest.param(CONNECTED, "duplicate_start", id="second-connected"),
    pytest.param("x" * (64 * 1024 + 1), "frame_too_large", id="oversized-text"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_TEXT)
def test_bad_text_frames(started: VonageStream, frame: str, code: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        started.receive(frame)
    assert info.value.code == code
    assert started.receive(FRAME) == Media(FRAME)


@pytest.mark.parametrize(
    ("frame", "code"),
    [(FRAME[:-1], "odd_audio_length"), (bytes(MAX_AUDIO_FRAME_BYTES + 2), "frame_too_large")],
)
def test_bad_binary_frames(started: VonageStream, frame: bytes, code: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        started.receive(frame)
    assert info.value.code == code


def test_nothing_before_connected() -> None:
    stream = VonageStream()
    with pytest.raises(RemoteProtocolError) as info:
        stream.receive(FRAME)
    assert info.value.code == "media_before_start"
    with pytest.raises(RemoteProtocolError) as info:
        stream.receive('{"event":"websocket:cleared"}')
    assert info.value.code == "event_before_start"
    with pytest.raises(LocalProtocolError) as local:
        stream.media(FRAME)
    assert local.value.code == "not_started"
    for build in (
        stream.clear,
        stream.flush_audio,
        lambda: stream.mark("m"),
        lambda: stream.line_format,
    ):
        with pytest.raises(LocalProtocolError):
            build()


# ---------------------------------------------------------------------- outbound


def test_outbound_audio_is_exact_20_ms_frames(started: VonageStream) -> None:
    pcm = bytes(range(256)) * 10  # 2560 bytes = 4 frames
    assert started.media(pcm[:1000]) == [pcm[:640]]
    assert started.pending_audio == 360
    frames = started.media(pcm[1000:])
    assert frames == [pcm[640:1280], pcm[1280:1920], pcm[1920:2560]]
    assert started.pending_audio == 0
    assert started.media(pcm[:100]) == []
    tail = started.flush_audio()
    assert tail == pcm[:100] + bytes(540)
    assert started.flush_audio() == b""
    assert started.silence() == bytes(640)
    with pytest.raises(LocalProtocolError) as info:
        started.media(b"\x00")
    assert info.value.code == "bad_pcm_length"


def test_commands_are_text(started: VonageStream) -> None:
    mark = started.mark("parley-1")
    assert isinstance(mark, str)
    assert json.loads(mark) == {"action": "notify", "payload": {"name": "parley-1"}}
    assert started.clear() == '{"action":"clear"}'
    with pytest.raises(LocalProtocolError):
        started.mark("")


def test_clear_drops_the_held_back_tail(started: VonageStream) -> None:
    started.media(bytes(1000))
    assert started.pending_audio == 360
    started.clear()
    assert started.pending_audio == 0
    assert started.flush_audio() == b""


@pytest.mark.parametrize("rate", [8000, 24000])
def test_other_rates(rate: int) -> None:
    caller = VonageCaller(sample_rate=rate)
    stream = VonageStream()
    stream.receive(caller.connected())
    assert stream.frame_bytes == rate // 25
    frames = stream.media(bytes(stream.frame_bytes * 3))
    assert [caller.receive(f) for f in frames] == [OutboundAudio(bytes(rate // 25))] * 3


# ----------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_arbitrary_input_only_raises_remote_protocol_error(frame: str | bytes) -> None:
    started = VonageStream()
    started.receive(CONNECTED)
    for stream in (VonageStream(), started):
        with contextlib.suppress(RemoteProtocolError):
            stream.receive(frame)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    event=st.sampled_from(
        ["websocket:connected", "websocket:dtmf", "websocket:notify", "websocket:cleared", "other"]
    ),
    body=st.dictionaries(
        st.sampled_from(["content-type", "digit", "duration", "dtmf", "payload"]),
        json_values | st.sampled_from(["audio/l16;rate=16000", "7", "#"]),
        max_size=4,
    ),
)
def test_arbitrary_vonage_shaped_json_only_raises_remote_protocol_error(
    event: str, body: dict[str, object]
) -> None:
    frame = json.dumps({**body, "event": event})
    started = VonageStream()
    started.receive(CONNECTED)
    for stream in (VonageStream(), started):
        with contextlib.suppress(RemoteProtocolError):
            stream.receive(frame)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=3000).map(lambda n: 2 * n), max_size=10))
def test_framing_loses_nothing(sizes: list[int]) -> None:
    stream = VonageStream()
    stream.receive(CONNECTED)
    pcm = (
        np.random.default_rng(len(sizes))
        .integers(-3000, 3000, sum(sizes) // 2, dtype="<i2")
        .tobytes()
    )
    out, pos = bytearray(), 0
    for size in sizes:
        for frame in stream.media(pcm[pos : pos + size]):
            assert len(frame) == 640
            out += frame
        pos += size
    tail = stream.flush_audio()
    assert bytes(out) + tail[: len(pcm) - len(out)] == pcm
    assert len(tail) in (0, 640)


# ------------------------------------------------------------- the phone's half


def test_caller_frames_are_what_the_server_half_accepts() -> None:
    caller = VonageCaller(headers={"token": "abc", "user": 7})
    server = VonageStream()
    connected = server.receive(caller.connected())
    assert connected == Connected("audio/l16;rate=16000", 16000, {"token": "abc", "user": 7})
    assert server.receive(caller.audio(FRAME)) == Media(FRAME)
    assert [server.receive(f) for f in caller.frames(FRAME + FRAME[:10])] == [
        Media(FRAME),
        Media(FRAME[:10] + bytes(630)),
    ]
    assert server.receive(caller.dtmf("#", 120)) == DTMF("#", 120.0)
    assert server.receive(caller.notify({"name": "n1"})) == Notify({"name": "n1"})
    assert server.receive(caller.cleared()) == Cleared()
    with pytest.raises(LocalProtocolError):
        caller.connected()
    with pytest.raises(LocalProtocolError):
        VonageCaller().audio(FRAME)
    with pytest.raises(LocalProtocolError):
        caller.dtmf("E")
    with pytest.raises(ValueError):
        VonageCaller(sample_rate=44100)


def test_server_frames_are_what_the_caller_accepts(started: VonageStream) -> None:
    caller = VonageCaller()
    assert caller.receive(started.media(FRAME)[0]) == OutboundAudio(FRAME)
    assert caller.receive(started.mark("m")) == OutboundNotify({"name": "m"})
    assert caller.receive(started.clear()) == Clear()
    for bad, code in [
        (FRAME[:320], "bad_audio_length"),
        ('{"action":"talk"}', "invalid_message"),
        ('{"event":"clear"}', "invalid_message"),
        ("{", "bad_json"),
    ]:
        with pytest.raises(RemoteProtocolError) as info:
            caller.receive(bad)
        assert info.value.code == code


def test_barge_in_through_both_halves() -> None:
    caller, started = VonageCaller(), VonageStream()
    started.receive(caller.connected())
    tracker = PlaybackTracker(bytes_per_ms=32, flushed_marks_echo=True)
    playout = Playout(bytes_per_ms=32)
    for _ in range(10):  # ten 100 ms chunks, a notify after each
        frames = started.media(bytes(3200))
        for frame in frames:
            audio = caller.receive(frame)
            assert isinstance(audio, OutboundAudio)
            playout.push_audio(len(audio.payload), 0.0)
        notify = caller.receive(started.mark(tracker.add(sum(map(len, frames)), "r")))
        assert isinstance(notify, OutboundNotify)
        playout.push_mark(notify.payload["name"], 0.0)
    assert tracker.pending_ms == 1000.0
    assert MAX_QUEUED_FRAMES > 10 * 5  # all queued at once is within Vonage's buffer
    for name in playout.due(0.35):  # 350 ms later: three chunks played
        event = started.receive(caller.notify({"name": name}))
        assert isinstance(event, Notify)
        echo = tracker.echo(event.name)
        assert echo is not None and echo.played
    assert tracker.played_ms("r") == 300.0
    assert caller.receive(started.clear()) == Clear()
    assert tracker.clear() == 700.0
    assert len(playout.clear(0.35)) == 7  # pending notifies: dropped, never echoed
    assert started.receive(caller.cleared()) == Cleared()
    assert tracker.cleared() == 7
    assert tracker.pending_marks == 0
    assert tracker.played_ms("r") == 300.0


def test_all_names_exist() -> None:
    import parley.protocols.vonage as server_module
    import parley.protocols.vonage_caller as caller_module

    for module in (server_module, caller_module):
        assert all(hasattr(module, name) for name in module.__all__)

"""Twilio Media Streams: real wire shapes in, typed events out, and the reverse."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.errors import LocalProtocolError, RemoteProtocolError
from parley.protocols.limits import MAX_TEXT_FRAME_BYTES
from parley.protocols.twilio import (
    DTMF,
    Connected,
    Mark,
    MarkTracker,
    Media,
    MediaFormat,
    Start,
    Stop,
    StreamState,
    TwilioStream,
    Unknown,
)

# The real capture: twilio/media-streams node/connect-basic/output.txt (2020-06-11),
# re-serialised as the JSON Twilio sent (old UUID stream sid, numbers as strings).
SID = "9e7ee906-377b-408f-a852-eebfb834422a"
CONNECTED = '{"event":"connected","protocol":"Call","version":"1.0.0"}'
START = (
    '{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC18fbd524d33614fba208030751dffdca",'
    f'"streamSid":"{SID}","callSid":"CA3c95a2a6bba5fde93a5dea01e388e8fb","tracks":["inbound"],'
    '"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},'
    '"customParameters":{"aCutomParameter":"aCustomValue that was set in TwiML"}},'
    f'"streamSid":"{SID}"}}'
)
PAYLOAD_B64 = (
    "6/jk2NbZ3uXj5Oz+bmhiYnD07+XWy8bIzdjg6mpNPzk3Nzc2Njg/UXXl2s7Cu7u+xcnLzdr7aGp98/94++PTztXc3NfV"
    "3PRnYGNhXVtfe9vMxcXJzM/X81JAOjY0MjEwMzlDVX3dzsK6tre8wsfK0OxdVFtx/nZw89fMzNLb3NPS3v5kYXZvXl5q"
    "3snBvb3BxsrYakY3Ly0sKysrLjZCZA=="
)
MEDIA = (
    '{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1",'
    f'"timestamp":"52","payload":"{PAYLOAD_B64}"}},"streamSid":"{SID}"}}'
)
MARK_ECHO = json.dumps(
    {
        "event": "mark",
        "sequenceNumber": "103",
        "streamSid": SID,
        "mark": {"name": "Repeat message 0"},
    },
    separators=(",", ":"),
)
# Shapes from Twilio's docs (protocols.md §2.2); the capture has no dtmf/stop.
DTMF_FRAME = (
    f'{{"event":"dtmf","streamSid":"{SID}","sequenceNumber":"5",'
    '"dtmf":{"track":"inbound_track","digit":"1"}}'
)
STOP = (
    '{"event":"stop","sequenceNumber":"5","stop":{"accountSid":"AC18fbd524d33614fba208030751dffdca",'
    f'"callSid":"CA3c95a2a6bba5fde93a5dea01e388e8fb"}},"streamSid":"{SID}"}}'
)


def media_frame(seq: int, chunk: int, ts: int, payload: bytes, sid: str = SID) -> str:
    b64 = base64.b64encode(payload).decode()
    return (
        f'{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound",'
        f'"chunk":"{chunk}","timestamp":"{ts}","payload":"{b64}"}},"streamSid":"{sid}"}}'
    )


@pytest.fixture
def started() -> TwilioStream:
    stream = TwilioStream()
    stream.receive(CONNECTED)
    stream.receive(START)
    return stream


# ----------------------------------------------------------------------- inbound


def test_connected() -> None:
    stream = TwilioStream()
    assert stream.receive(CONNECTED) == Connected(protocol="Call", version="1.0.0")
    assert stream.state is StreamState.AWAITING_START


def test_start_from_real_capture() -> None:
    stream = TwilioStream()
    stream.receive(CONNECTED)
    event = stream.receive(START)
    assert event == Start(
        stream_sid=SID,
        call_sid="CA3c95a2a6bba5fde93a5dea01e388e8fb",
        account_sid="AC18fbd524d33614fba208030751dffdca",
        tracks=("inbound",),
        custom_parameters={"aCutomParameter": "aCustomValue that was set in TwiML"},
        media_format=MediaFormat("audio/x-mulaw", 8000, 1),
    )
    assert stream.state is StreamState.STARTED
    assert stream.stream_sid == SID
    assert stream.start is event
    assert stream.last_sequence_number == 1


def test_start_without_connected_and_optional_fields() -> None:
    stream = TwilioStream()
    event = stream.receive(
        '{"event":"start","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1"},'
        '"streamSid":"MZ1"}'
    )
    assert isinstance(event, Start)
    assert event.custom_parameters == {}
    assert event.tracks == ("inbound",)


def test_media_from_real_capture(started: TwilioStream) -> None:
    event = started.receive(MEDIA)
    assert isinstance(event, Media)
    assert event.track == "inbound"
    assert event.chunk == 1
    assert event.timestamp == 52
    assert event.payload == base64.b64decode(PAYLOAD_B64)
    assert len(event.payload) == 160  # 20 ms of µ-law 8 kHz
    assert started.last_sequence_number == 2
    assert started.latest_timestamp == 52


def test_media_accepts_bytes_frames_and_json_numbers(started: TwilioStream) -> None:
    frame = (
        '{"event":"media","sequenceNumber":7,"media":{"track":"inbound","chunk":6,'
        f'"timestamp":152,"payload":"//8="}},"streamSid":"{SID}"}}'
    )
    event = started.receive(frame.encode())
    assert event == Media(track="inbound", chunk=6, timestamp=152, payload=b"\xff\xff")
    assert started.last_sequence_number == 7


def test_a_second_of_media(started: TwilioStream) -> None:
    audio = bytes(range(256)) * 25  # 6400 bytes = 800 ms
    got = bytearray()
    for i in range(40):
        chunk = audio[i * 160 : (i + 1) * 160]
        event = started.receive(media_frame(seq=2 + i, chunk=1 + i, ts=52 + 20 * i, payload=chunk))
        assert isinstance(event, Media)
        got += event.payload
    assert bytes(got) == audio
    assert started.latest_timestamp == 52 + 20 * 39


def test_dtmf(started: TwilioStream) -> None:
    assert started.receive(DTMF_FRAME) == DTMF(digit="1", track="inbound_track")
    assert started.last_sequence_number == 5


@pytest.mark.parametrize("digit", list("0123456789*#ABCD"))
def test_every_dtmf_digit(started: TwilioStream, digit: str) -> None:
    event = started.receive(DTMF_FRAME.replace('"digit":"1"', f'"digit":"{digit}"'))
    assert event == DTMF(digit=digit, track="inbound_track")


def test_mark_echo_from_real_capture(started: TwilioStream) -> None:
    assert started.receive(MARK_ECHO) == Mark(name="Repeat message 0")
    assert started.last_sequence_number == 103


def test_stop(started: TwilioStream) -> None:
    event = started.receive(STOP)
    assert event == Stop(
        account_sid="AC18fbd524d33614fba208030751dffdca",
        call_sid="CA3c95a2a6bba5fde93a5dea01e388e8fb",
    )
    assert started.state is StreamState.STOPPED


def test_unknown_event_is_surfaced_not_rejected(started: TwilioStream) -> None:
    frame = f'{{"event":"transcription","streamSid":"{SID}","sequenceNumber":"9","x":{{"y":1}}}}'
    event = started.receive(frame)
    assert isinstance(event, Unknown)
    assert event.event == "transcription"
    assert event.data == json.loads(frame)
    # the stream carries on
    assert isinstance(started.receive(MEDIA), Media)


def test_unknown_event_before_start_is_tolerated() -> None:
    event = TwilioStream().receive('{"event":"future"}')
    assert event == Unknown(event="future", data={"event": "future"})


# ---------------------------------------------------------------------- outbound


def test_outbound_media_bytes(started: TwilioStream) -> None:
    ulaw = base64.b64decode(PAYLOAD_B64)
    frame = started.media(ulaw)
    expected = (
        f'{{"event":"media","streamSid":"{SID}","media":{{"payload":"{PAYLOAD_B64}"}}}}'
    ).encode()
    assert frame == expected
    assert json.loads(frame) == {
        "event": "media",
        "streamSid": SID,
        "media": {"payload": PAYLOAD_B64},
    }


def test_outbound_media_of_any_size(started: TwilioStream) -> None:
    for size in (0, 1, 2, 3, 400, 8000):
        data = bytes(i % 256 for i in range(size))
        decoded = json.loads(started.media(data))
        assert base64.b64decode(decoded["media"]["payload"]) == data


def test_outbound_mark_and_clear_bytes(started: TwilioStream) -> None:
    assert (
        started.mark("resp-42-chunk-7")
        == (f'{{"event":"mark","streamSid":"{SID}","mark":{{"name":"resp-42-chunk-7"}}}}').encode()
    )
    assert started.clear() == f'{{"event":"clear","streamSid":"{SID}"}}'.encode()


def test_outbound_escapes_odd_sids_and_names() -> None:
    stream = TwilioStream()
    sid = 'MZ"\\x'
    stream.receive(
        json.dumps(
            {
                "event": "start",
                "start": {"accountSid": "AC", "streamSid": sid, "callSid": "CA"},
                "streamSid": sid,
            }
        )
    )
    assert json.loads(stream.media(b"\x00"))["streamSid"] == sid
    assert json.loads(stream.mark('a "quoted" name'))["mark"]["name"] == 'a "quoted" name'
    assert json.loads(stream.clear()) == {"event": "clear", "streamSid": sid}


@pytest.mark.parametrize("build", ["media", "mark", "clear"])
def test_outbound_before_start_is_a_local_error(build: str) -> None:
    stream = TwilioStream()
    stream.receive(CONNECTED)
    with pytest.raises(LocalProtocolError) as info:
        _call_builder(stream, build)
    assert info.value.code == "not_started"


@pytest.mark.parametrize("build", ["media", "mark", "clear"])
def test_outbound_after_stop_is_a_local_error(started: TwilioStream, build: str) -> None:
    started.receive(STOP)
    with pytest.raises(LocalProtocolError) as info:
        _call_builder(started, build)
    assert info.value.code == "stream_stopped"


def test_mark_needs_a_name(started: TwilioStream) -> None:
    with pytest.raises(LocalProtocolError) as info:
        started.mark("")
    assert info.value.code == "invalid_mark"


def _call_builder(stream: TwilioStream, build: str) -> bytes:
    if build == "media":
        return stream.media(b"\xff" * 160)
    if build == "mark":
        return stream.mark("m1")
    return stream.clear()


# ------------------------------------------------------------------- bad input


def _media_with(**fields: str) -> str:
    media = {"track": '"inbound"', "chunk": '"1"', "timestamp": '"52"', "payload": '"//8="'}
    media.update(fields)
    inner = ",".join(f'"{k}":{v}' for k, v in media.items())
    return f'{{"event":"media","sequenceNumber":"2","media":{{{inner}}},"streamSid":"{SID}"}}'


BAD_FRAMES = [
    pytest.param("hello", "bad_json", id="not-json"),
    pytest.param("", "bad_json", id="empty"),
    pytest.param('{"event":"media",', "bad_json", id="truncated-json"),
    pytest.param(b'{"event":"\xff"}', "bad_json", id="invalid-utf8"),
    pytest.param('{"event":"x\ud800"}', "bad_json", id="lone-surrogate"),
    pytest.param('{"a":' * 5000 + "1" + "}" * 5000, "bad_json", id="deeply-nested"),
    pytest.param("[1,2]", "not_an_object", id="array"),
    pytest.param('"media"', "not_an_object", id="string"),
    pytest.param("null", "not_an_object", id="null"),
    pytest.param("{}", "missing_event", id="no-event"),
    pytest.param('{"event":5}', "missing_event", id="event-not-str"),
    pytest.param(_media_with(payload='"//8"'), "bad_base64", id="truncated-base64"),
    pytest.param(_media_with(payload='"@@@@"'), "bad_base64", id="invalid-base64"),
    pytest.param(_media_with(payload="123"), "invalid_message", id="payload-not-str"),
    pytest.param(_media_with(chunk='"one"'), "invalid_message", id="chunk-not-numeric"),
    pytest.param(_media_with(timestamp='"-20"'), "invalid_message", id="negative-timestamp"),
    pytest.param(_media_with(track="7"), "invalid_message", id="track-not-str"),
    pytest.param(
        f'{{"event":"media","streamSid":"{SID}","media":{{"track":"inbound"}}}}',
        "invalid_message",
        id="media-missing-fields",
    ),
    pytest.param(f'{{"event":"media","streamSid":"{SID}"}}', "invalid_message", id="no-media"),
    pytest.param('{"event":"media","media":{}}', "invalid_message", id="no-stream-sid"),
    pytest.param(
        f'{{"event":"mark","streamSid":"{SID}","mark":{{}}}}', "invalid_message", id="mark-no-name"
    ),
    pytest.param(
        DTMF_FRAME.replace('"digit":"1"', '"digit":"12"'), "invalid_message", id="dtmf-bad-digit"
    ),
    pytest.param(
        f'{{"event":"media","sequenceNumber":"x","media":{{}},"streamSid":"{SID}"}}',
        "invalid_message",
        id="sequence-not-numeric",
    ),
    pytest.param(
        _media_with(payload='"' + "A" * MAX_TEXT_FRAME_BYTES + '"'),
        "frame_too_large",
        id="oversized",
    ),
    pytest.param("x" * (MAX_TEXT_FRAME_BYTES + 1), "frame_too_large", id="oversized-not-json"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES)
def test_bad_frames_are_remote_errors(started: TwilioStream, frame: str | bytes, code: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        started.receive(frame)
    assert info.value.code == code
    assert info.value.message


def test_truncated_base64_says_where(started: TwilioStream) -> None:
    with pytest.raises(RemoteProtocolError, match=r"media\.payload"):
        started.receive(MEDIA.replace('CZA=="', 'CZA="'))


def test_frame_limit_is_configurable() -> None:
    stream = TwilioStream(max_frame_bytes=100)
    with pytest.raises(RemoteProtocolError) as info:
        stream.receive(START)
    assert info.value.code == "frame_too_large"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (MEDIA, "media_before_start"),
        (DTMF_FRAME, "event_before_start"),
        (MARK_ECHO, "event_before_start"),
    ],
)
def test_events_before_start_are_rejected(frame: str, code: str) -> None:
    stream = TwilioStream()
    stream.receive(CONNECTED)
    with pytest.raises(RemoteProtocolError) as info:
        stream.receive(frame)
    assert info.value.code == code


@pytest.mark.parametrize(
    "frame", [MEDIA, DTMF_FRAME, MARK_ECHO, STOP, START, CONNECTED, '{"event":"new"}']
)
def test_nothing_after_stop(started: TwilioStream, frame: str) -> None:
    started.receive(STOP)
    with pytest.raises(RemoteProtocolError) as info:
        started.receive(frame)
    assert info.value.code == "event_after_stop"


def test_duplicate_start(started: TwilioStream) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        started.receive(START)
    assert info.value.code == "duplicate_start"


def test_connected_after_start(started: TwilioStream) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        started.receive(CONNECTED)
    assert info.value.code == "unexpected_event"


def test_media_of_another_stream(started: TwilioStream) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        started.receive(media_frame(2, 1, 52, b"\xff", sid="MZother"))
    assert info.value.code == "stream_sid_mismatch"


def test_start_with_two_sids() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        TwilioStream().receive(START.replace(f'"streamSid":"{SID}"}}', '"streamSid":"MZx"}'))
    assert info.value.code == "stream_sid_mismatch"


def test_start_with_empty_sid() -> None:
    frame = '{"event":"start","start":{"accountSid":"AC","streamSid":"","callSid":"CA"}}'
    with pytest.raises(RemoteProtocolError) as info:
        TwilioStream().receive(frame)
    assert info.value.code == "invalid_message"


def test_start_with_other_media_format() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        TwilioStream().receive(START.replace('"sampleRate":8000', '"sampleRate":16000'))
    assert info.value.code == "unsupported_media_format"


def test_a_bad_frame_does_not_break_the_stream(started: TwilioStream) -> None:
    with pytest.raises(RemoteProtocolError):
        started.receive("garbage")
    assert isinstance(started.receive(MEDIA), Media)


# ----------------------------------------------------------------- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_arbitrary_text_only_raises_remote_protocol_error(frame: str | bytes) -> None:
    started = TwilioStream()
    started.receive(START)
    for stream in (TwilioStream(), started):
        with contextlib.suppress(RemoteProtocolError):
            stream.receive(frame)


@settings(max_examples=300, deadline=None)
@given(
    event=st.sampled_from(["connected", "start", "media", "dtmf", "mark", "stop", "other"]),
    body=st.dictionaries(
        st.sampled_from(["media", "start", "dtmf", "mark", "stop", "streamSid", "sequenceNumber"]),
        json_values,
        max_size=4,
    ),
    inner=st.dictionaries(
        st.sampled_from(
            ["track", "chunk", "timestamp", "payload", "digit", "name", "streamSid", "callSid"]
        ),
        json_values,
        max_size=5,
    ),
)
def test_arbitrary_twilio_shaped_json_only_raises_remote_protocol_error(
    event: str, body: dict[str, object], inner: dict[str, object]
) -> None:
    body = {**body, "event": event}
    if event in body:
        body[event] = inner
    frame = json.dumps(body)
    stream = TwilioStream()
    stream.receive(START)
    with contextlib.suppress(RemoteProtocolError):
        stream.receive(frame)


# ------------------------------------------------------------------------ marks


def test_mark_tracker_counts_played_ms() -> None:
    tracker = MarkTracker()
    first = tracker.add(400, "r1")  # 50 ms of µ-law
    second = tracker.add(800, "r1")  # 100 ms
    assert first != second
    assert tracker.pending_ms == 150.0
    echo = tracker.echo(first)
    assert echo is not None
    assert (echo.played, echo.ms, echo.played_ms, echo.response_id) == (True, 50.0, 50.0, "r1")
    echo = tracker.echo(second)
    assert echo is not None
    assert echo.played_ms == 150.0
    assert tracker.played_ms("r1") == 150.0
    assert tracker.pending_marks == 0


def test_mark_tracker_settles_skipped_marks() -> None:
    tracker = MarkTracker()
    names = [tracker.add(160, "r") for _ in range(3)]
    echo = tracker.echo(names[2])
    assert echo is not None
    assert echo.played_ms == 60.0
    assert tracker.echo(names[0]) is None  # already settled


def test_mark_tracker_clear_means_flushed_not_played() -> None:
    tracker = MarkTracker()
    a = tracker.add(800, "r1")
    b = tracker.add(800, "r1")
    c = tracker.add(800, "r1")
    assert tracker.echo(a) is not None
    assert tracker.clear() == 200.0  # b and c never reached the ear
    assert tracker.pending_ms == 0.0
    for name in (b, c):
        echo = tracker.echo(name)
        assert echo is not None
        assert echo.played is False
        assert echo.played_ms == 100.0
    assert tracker.played_ms("r1") == 100.0
    # a new response after the clear counts normally
    d = tracker.add(80, "r2")
    echo = tracker.echo(d)
    assert echo is not None
    assert (echo.played, echo.played_ms) == (True, 10.0)


def test_mark_tracker_ignores_foreign_marks_and_forgets() -> None:
    tracker = MarkTracker(bytes_per_ms=48, prefix="x")  # PCM16 24 kHz
    name = tracker.add(4800, "r")
    assert name.startswith("x")
    assert tracker.echo("Repeat message 0") is None
    echo = tracker.echo(name)
    assert echo is not None
    assert echo.ms == 100.0
    tracker.forget("r")
    assert tracker.played_ms("r") == 0.0
    with pytest.raises(ValueError):
        MarkTracker(bytes_per_ms=0)
    with pytest.raises(ValueError):
        tracker.add(-1)


def test_mark_tracker_with_a_stream_round_trip(started: TwilioStream) -> None:
    tracker = MarkTracker()
    sent: list[bytes] = []
    for _ in range(3):
        chunk = b"\xff" * 400
        sent.append(started.media(chunk))
        sent.append(started.mark(tracker.add(len(chunk), "resp-1")))
    names = [json.loads(f)["mark"]["name"] for f in sent if b'"mark"' in f]
    # Twilio echoes the first two as played; the caller barges in; clear flushes the third.
    for seq, name in enumerate(names[:2], start=10):
        echo_frame = json.dumps(
            {"event": "mark", "sequenceNumber": str(seq), "streamSid": SID, "mark": {"name": name}}
        )
        event = started.receive(echo_frame)
        assert isinstance(event, Mark)
        assert tracker.echo(event.name) is not None
    assert tracker.played_ms("resp-1") == 100.0  # the truncate point: audio_end_ms
    started.clear()
    assert tracker.clear() == 50.0
    echo = tracker.echo(names[2])
    assert echo is not None
    assert not echo.played


def test_all_names_exist() -> None:
    import parley.protocols.twilio as module

    assert all(hasattr(module, name) for name in module.__all__)

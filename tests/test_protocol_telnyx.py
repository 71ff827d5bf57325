"""Telnyx media streaming: the documented wire shapes in, typed events out, and the reverse.

The ``start`` frame is the example of Telnyx's AsyncAPI ("Stream call media over
WebSocket"); the other shapes follow reference/protocols.md §3.1. ``TelnyxCaller``
(the phone's half) and ``TelnyxStream`` (the server's) are checked against each
other, and a barge-in is played through both with the shared playback tracker.
"""

from __future__ import annotations

import base64
import contextlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.audio.format import AudioFormat
from parley.audio.g711 import alaw_decode, ulaw_decode
from parley.errors import ConfigError, LocalProtocolError, RemoteProtocolError
from parley.events import DTMFReceived
from parley.protocols.limits import MAX_TEXT_FRAME_BYTES
from parley.protocols.playback import PlaybackTracker, Playout
from parley.protocols.telnyx import (
    DTMF,
    Connected,
    Error,
    Mark,
    Media,
    MediaFormat,
    SkippedMedia,
    Start,
    Stop,
    StreamState,
    TelnyxStream,
    Unknown,
)
from parley.protocols.telnyx_caller import Clear, OutboundMark, OutboundMedia, TelnyxCaller

SID = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC"
CONNECTED = '{"event":"connected","version":"1.0.0"}'
# Verbatim from Telnyx's AsyncAPI example (developers.telnyx.com, media-streaming.yml).
START = json.dumps(
    {
        "event": "start",
        "sequence_number": "1",
        "stream_id": SID,
        "start": {
            "user_id": "3E6F995F-85F7-4705-9741-53B116D28237",
            "call_control_id": "v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ",
            "call_session_id": "ff55a038-6f5d-11ef-9692-02420aeffb1f",
            "from": "+13122010094",
            "to": "+13122123456",
            "tags": ["TAG1", "TAG2"],
            "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d",
            "custom_parameters": {"customer_id": "customer_123"},
            "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
        },
    }
)
ULAW = bytes(range(96, 256))  # 160 bytes = 20 ms


def media_frame(chunk: int, payload: bytes = ULAW, track: str = "inbound", sid: str = SID) -> str:
    return json.dumps(
        {
            "event": "media",
            "sequence_number": str(chunk + 1),
            "media": {
                "track": track,
                "chunk": str(chunk),
                "timestamp": str(20 * (chunk - 1)),
                "payload": base64.b64encode(payload).decode(),
            },
            "stream_id": sid,
        }
    )


MEDIA = media_frame(1)
DTMF_FRAME = json.dumps(
    {
        "event": "dtmf",
        "stream_id": SID,
        "occurred_at": "2024-01-01T00:00:00.000000Z",
        "sequence_number": "5",
        "dtmf": {"digit": "1"},
    }
)
MARK_ECHO = json.dumps(
    {"event": "mark", "sequence_number": "6", "stream_id": SID, "mark": {"name": "m1"}}
)
ERROR = json.dumps(
    {
        "event": "error",
        "sequence_number": "7",
        "stream_id": SID,
        "payload": {"code": 100003, "title": "malformed_frame", "detail": "bad json"},
    }
)
STOP = json.dumps(
    {
        "event": "stop",
        "sequence_number": "8",
        "stop": {"user_id": "u", "call_control_id": "v2:T0"},
        "stream_id": SID,
    }
)


def with_format(encoding: str, rate: int, channels: int = 1) -> str:
    frame = json.loads(START)
    frame["start"]["media_format"] = {
        "encoding": encoding,
        "sample_rate": rate,
        "channels": channels,
    }
    return json.dumps(frame)


@pytest.fixture
def started() -> TelnyxStream:
    stream = TelnyxStream()
    stream.receive(CONNECTED)
    stream.receive(START)
    return stream


# ----------------------------------------------------------------------- inbound


def test_connected_and_start_from_the_docs() -> None:
    stream = TelnyxStream()
    assert stream.receive(CONNECTED) == Connected(version="1.0.0")
    start = stream.receive(START)
    assert start == Start(
        call_control_id="v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ",
        user_id="3E6F995F-85F7-4705-9741-53B116D28237",
        call_session_id="ff55a038-6f5d-11ef-9692-02420aeffb1f",
        from_="+13122010094",
        to="+13122123456",
        tags=("TAG1", "TAG2"),
        client_state="aGF2ZSBhIG5pY2UgZGF5ID1d",
        custom_parameters={"customer_id": "customer_123"},
        media_format=MediaFormat("PCMU", 8000, 1),
        stream_id=SID,
    )
    assert stream.state is StreamState.STARTED
    assert stream.stream_id == SID
    assert stream.last_sequence_number == 1
    assert stream.input_format == stream.output_format == AudioFormat("ulaw", 8000)


def test_optional_start_fields_may_be_null() -> None:
    frame = json.loads(START)
    for key in (
        "user_id",
        "call_session_id",
        "from",
        "to",
        "tags",
        "client_state",
        "custom_parameters",
    ):
        frame["start"][key] = None
    start = TelnyxStream().receive(json.dumps(frame))
    assert isinstance(start, Start)
    assert (start.client_state, start.tags, start.parameters) == (None, None, {})


def test_connected_carries_the_streaming_auth_token() -> None:
    frame = '{"event":"connected","version":"1.0.0","x-telnyx-streaming-auth-token":"s3cret"}'
    assert TelnyxStream().receive(frame) == Connected(version="1.0.0", auth_token="s3cret")


def test_media_dtmf_mark_error_stop(started: TelnyxStream) -> None:
    media = started.receive(MEDIA)
    assert media == Media(track="inbound", chunk=1, timestamp=0, payload=ULAW)
    assert isinstance(media, Media) and started.audio(media) == ULAW
    dtmf = started.receive(DTMF_FRAME)
    assert dtmf == DTMF("1")
    assert isinstance(dtmf, DTMF) and dtmf.as_event() == DTMFReceived("1")
    assert started.receive(MARK_ECHO) == Mark("m1")
    assert started.receive(ERROR) == Error(100003, "malformed_frame", "bad json")
    assert started.last_sequence_number == 7
    assert started.receive(STOP) == Stop(user_id="u", call_control_id="v2:T0")
    assert started.state is StreamState.STOPPED


@pytest.mark.parametrize("digit", list("0123456789*#ABCD"))
def test_every_dtmf_digit(started: TelnyxStream, digit: str) -> None:
    assert started.receive(DTMF_FRAME.replace('"digit": "1"', f'"digit": "{digit}"')) == DTMF(digit)


def test_a_second_of_audio_in_order(started: TelnyxStream) -> None:
    audio = bytes(range(256)) * 25
    got = bytearray()
    for i in range(40):
        event = started.receive(media_frame(1 + i, audio[i * 160 : (i + 1) * 160]))
        assert isinstance(event, Media)
        got += started.audio(event)
    assert bytes(got) == audio


def test_late_and_duplicate_chunks_are_skipped_not_played(started: TelnyxStream) -> None:
    assert isinstance(started.receive(media_frame(1)), Media)
    assert isinstance(started.receive(media_frame(3)), Media)  # 2 lost or late: a gap
    late = started.receive(media_frame(2))
    assert isinstance(late, SkippedMedia) and late.reason == "late" and late.media.chunk == 2
    dup = started.receive(media_frame(3))
    assert isinstance(dup, SkippedMedia) and dup.reason == "late"
    assert isinstance(started.receive(media_frame(4)), Media)
    assert started.skipped_media == 2


def test_outbound_track_audio_is_skipped(started: TelnyxStream) -> None:
    event = started.receive(media_frame(1, track="outbound"))
    assert isinstance(event, SkippedMedia) and event.reason == "other_track"
    assert isinstance(started.receive(media_frame(1)), Media)  # the inbound counter is its own


def test_unknown_events_are_surfaced(started: TelnyxStream) -> None:
    frame = f'{{"event":"transcription","stream_id":"{SID}","text":"hi"}}'
    event = started.receive(frame)
    assert event == Unknown(event="transcription", data=json.loads(frame))
    assert isinstance(started.receive(MEDIA), Media)


def test_error_before_start_is_an_event_not_a_failure() -> None:
    stream = TelnyxStream()
    stream.receive(CONNECTED)
    assert isinstance(stream.receive(ERROR), Error)


# ------------------------------------------------------------------------ codecs


def test_pcma_line() -> None:
    stream = TelnyxStream()
    stream.receive(with_format("PCMA", 8000))
    assert stream.input_format == stream.output_format == AudioFormat("alaw", 8000)
    alaw = bytes(range(160))
    media = stream.receive(media_frame(1, alaw))
    assert isinstance(media, Media)
    assert alaw_decode(stream.audio(media)) == alaw_decode(alaw)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_l16_is_big_endian_on_the_wire(rate: int) -> None:
    stream = TelnyxStream()
    stream.receive(with_format("L16", rate))
    assert stream.input_format == AudioFormat("pcm16", rate)
    samples = np.array([0, 1, -1, 256, -32768, 32767, 1000], dtype="<i2")
    wire = samples.astype(">i2").tobytes()
    assert wire[:6] == b"\x00\x00\x00\x01\xff\xff"  # network byte order
    media = stream.receive(media_frame(1, wire))
    assert isinstance(media, Media)
    assert stream.audio(media) == samples.tobytes()
    # and back: PCM16 little-endian in, big-endian on the wire
    pcm = np.tile(samples, rate // 50 // len(samples) + 1)[: rate // 50].tobytes()
    sent = base64.b64decode(json.loads(stream.media(pcm))["media"]["payload"])
    assert sent == np.frombuffer(pcm, "<i2").astype(">i2").tobytes()


def test_odd_l16_payload_is_the_peers_fault() -> None:
    stream = TelnyxStream()
    stream.receive(with_format("L16", 16000))
    media = stream.receive(media_frame(1, b"\x00\x01\x02"))
    assert isinstance(media, Media)
    with pytest.raises(RemoteProtocolError) as info:
        stream.audio(media)
    assert info.value.code == "odd_audio_length"


@pytest.mark.parametrize(
    ("encoding", "rate", "channels"),
    [
        ("G722", 16000, 1),
        ("OPUS", 48000, 1),
        ("AMR-WB", 16000, 1),
        ("PCMU", 16000, 1),
        ("L16", 44100, 1),
        ("PCMU", 8000, 2),
        ("pcmu", 8000, 1),
    ],
)
def test_unsupported_codecs_are_refused(encoding: str, rate: int, channels: int) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        TelnyxStream().receive(with_format(encoding, rate, channels))
    assert info.value.code == "unsupported_media_format"


def test_bidirectional_codec_can_differ_from_the_inbound_one() -> None:
    stream = TelnyxStream(bidirectional_codec="PCMA")
    stream.receive(START)  # inbound PCMU
    assert stream.input_format == AudioFormat("ulaw", 8000)
    assert stream.output_format == AudioFormat("alaw", 8000)
    stream = TelnyxStream(bidirectional_codec="L16", bidirectional_rate=16000)
    stream.receive(START)
    assert stream.output_format == AudioFormat("pcm16", 16000)


def test_bad_bidirectional_configuration() -> None:
    with pytest.raises(ConfigError):
        TelnyxStream(bidirectional_codec="PCMU", bidirectional_rate=16000)
    with pytest.raises(ConfigError):
        TelnyxStream(bidirectional_rate=8000)


# ---------------------------------------------------------------------- outbound


def test_outbound_frames_are_telnyx_shapes(started: TelnyxStream) -> None:
    frame = started.media(ULAW)
    assert json.loads(frame) == {
        "event": "media",
        "media": {"payload": base64.b64encode(ULAW).decode()},
    }
    assert started.mark("resp-1-7") == b'{"event":"mark","mark":{"name":"resp-1-7"}}'
    assert started.clear() == b'{"event":"clear"}'
    assert json.loads(started.mark('a "quoted" name'))["mark"]["name"] == 'a "quoted" name'


@pytest.mark.parametrize(
    ("size", "ok"), [(159, False), (160, True), (240_000, True), (240_001, False), (0, False)]
)
def test_outbound_media_is_20_ms_to_30_s(started: TelnyxStream, size: int, ok: bool) -> None:
    if ok:
        assert started.media(b"\xff" * size)
    else:
        with pytest.raises(LocalProtocolError) as info:
            started.media(b"\xff" * size)
        assert info.value.code == "bad_audio_length"


def test_chunks_pad_the_tail_with_the_codecs_silence(started: TelnyxStream) -> None:
    audio = b"\x01" * (800 + 800 + 30)  # 100 + 100 + 3.75 ms
    pieces = started.chunks(audio, chunk_ms=100)
    assert [len(p) for p in pieces] == [800, 800, 160]
    assert pieces[-1] == b"\x01" * 30 + b"\xff" * 130  # µ-law silence
    for piece in pieces:
        assert started.media(piece)
    assert started.chunks(b"") == []
    with pytest.raises(ValueError):
        started.chunks(audio, chunk_ms=10)
    alaw = TelnyxStream()
    alaw.receive(with_format("PCMA", 8000))
    assert alaw.chunks(b"\x01")[0][-1:] == b"\xd5"  # A-law silence


@pytest.mark.parametrize("build", ["media", "mark", "clear"])
def test_builders_need_a_started_stream(build: str) -> None:
    stream = TelnyxStream()
    stream.receive(CONNECTED)
    with pytest.raises(LocalProtocolError) as info:
        _build(stream, build)
    assert info.value.code == "not_started"
    stream.receive(START)
    stream.receive(STOP)
    with pytest.raises(LocalProtocolError) as info:
        _build(stream, build)
    assert info.value.code == "stream_stopped"


def _build(stream: TelnyxStream, build: str) -> bytes:
    if build == "media":
        return stream.media(ULAW)
    if build == "mark":
        return stream.mark("m")
    return stream.clear()


def test_a_mark_needs_a_name(started: TelnyxStream) -> None:
    with pytest.raises(LocalProtocolError) as info:
        started.mark("")
    assert info.value.code == "invalid_mark"


# ------------------------------------------------------------------- bad input


def _media_with(**fields: object) -> str:
    media: dict[str, object] = {
        "track": "inbound",
        "chunk": "1",
        "timestamp": "0",
        "payload": "//8=",
    }
    media.update(fields)
    return json.dumps({"event": "media", "stream_id": SID, "media": media})


BAD_FRAMES = [
    pytest.param("hello", "bad_json", id="not-json"),
    pytest.param("", "bad_json", id="empty"),
    pytest.param(b'{"event":"\xff"}', "bad_json", id="invalid-utf8"),
    pytest.param('{"a":' * 5000 + "1" + "}" * 5000, "bad_json", id="deeply-nested"),
    pytest.param("[1]", "not_an_object", id="array"),
    pytest.param("{}", "missing_event", id="no-event"),
    pytest.param('{"event":null}', "missing_event", id="event-null"),
    pytest.param(_media_with(payload="//8"), "bad_base64", id="truncated-base64"),
    pytest.param(_media_with(payload=7), "invalid_message", id="payload-not-str"),
    pytest.param(_media_with(chunk="-1"), "invalid_message", id="negative-chunk"),
    pytest.param(_media_with(timestamp="soon"), "invalid_message", id="timestamp-not-numeric"),
    pytest.param('{"event":"media","stream_id":"x"}', "invalid_message", id="no-media"),
    pytest.param('{"event":"mark","mark":{}}', "invalid_message", id="mark-no-name"),
    pytest.param('{"event":"dtmf","dtmf":{"digit":"11"}}', "invalid_message", id="dtmf-bad"),
    pytest.param('{"event":"dtmf","dtmf":{"digit":"x"}}', "invalid_message", id="dtmf-letter"),
    pytest.param(media_frame(1, sid="other"), "stream_id_mismatch", id="other-stream"),
    pytest.param(
        _media_with(payload="A" * MAX_TEXT_FRAME_BYTES), "frame_too_large", id="oversized"
    ),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES)
def test_bad_frames_are_remote_errors(started: TelnyxStream, frame: str | bytes, code: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        started.receive(frame)
    assert info.value.code == code
    assert isinstance(started.receive(media_frame(9)), Media)  # the stream is still usable


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (MEDIA, "media_before_start"),
        (DTMF_FRAME, "event_before_start"),
        (MARK_ECHO, "event_before_start"),
    ],
)
def test_events_before_start(frame: str, code: str) -> None:
    stream = TelnyxStream()
    stream.receive(CONNECTED)
    with pytest.raises(RemoteProtocolError) as info:
        stream.receive(frame)
    assert info.value.code == code


@pytest.mark.parametrize(
    "frame", [MEDIA, DTMF_FRAME, MARK_ECHO, ERROR, STOP, START, CONNECTED, '{"event":"new"}']
)
def test_nothing_after_stop(started: TelnyxStream, frame: str) -> None:
    started.receive(STOP)
    with pytest.raises(RemoteProtocolError) as info:
        started.receive(frame)
    assert info.value.code == "event_after_stop"


def test_start_errors(started: TelnyxStream) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        started.receive(START)
    assert info.value.code == "duplicate_start"
    with pytest.raises(RemoteProtocolError) as info:
        started.receive(CONNECTED)
    assert info.value.code == "unexpected_event"
    for broken in (START.replace(SID, ""), START.replace('"v2:T02', '"" , "x":"')):
        with pytest.raises(RemoteProtocolError) as info:
            TelnyxStream().receive(broken)
        assert info.value.code == "invalid_message"
    no_id = json.loads(START)
    del no_id["stream_id"]
    with pytest.raises(RemoteProtocolError) as info:
        TelnyxStream().receive(json.dumps(no_id))
    assert info.value.code == "invalid_message"


def test_frame_limit_is_configurable() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        TelnyxStream(max_frame_bytes=100).receive(START)
    assert info.value.code == "frame_too_large"


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
def test_arbitrary_input_only_raises_remote_protocol_error(frame: str | bytes) -> None:
    started = TelnyxStream()
    started.receive(START)
    for stream in (TelnyxStream(), started):
        with contextlib.suppress(RemoteProtocolError):
            stream.receive(frame)


@settings(max_examples=400, deadline=None)
@given(
    event=st.sampled_from(["connected", "start", "media", "dtmf", "mark", "error", "stop", "x"]),
    body=st.dictionaries(
        st.sampled_from(
            ["media", "start", "dtmf", "mark", "stop", "payload", "stream_id", "sequence_number"]
        ),
        json_values,
        max_size=4,
    ),
    inner=st.dictionaries(
        st.sampled_from(
            [
                "track",
                "chunk",
                "timestamp",
                "payload",
                "digit",
                "name",
                "code",
                "call_control_id",
                "media_format",
                "encoding",
                "sample_rate",
            ]
        ),
        json_values,
        max_size=5,
    ),
)
def test_arbitrary_telnyx_shaped_json_only_raises_remote_protocol_error(
    event: str, body: dict[str, object], inner: dict[str, object]
) -> None:
    body = {**body, "event": event}
    if event in body:
        body[event] = inner
    fresh, started = TelnyxStream(), TelnyxStream(bidirectional_codec="L16")
    started.receive(with_format("L16", 16000))
    for stream in (fresh, started):
        with contextlib.suppress(RemoteProtocolError):
            out = stream.receive(json.dumps(body))
            if isinstance(out, Media):
                stream.audio(out)


# ------------------------------------------------------------- the phone's half


def test_caller_frames_are_what_the_server_half_accepts() -> None:
    caller = TelnyxCaller(custom_parameters={"token": "t0k"})
    server = TelnyxStream()
    assert server.receive(caller.connected("s3cret")) == Connected("1.0.0", "s3cret")
    raw = json.loads(caller.start())
    assert raw["sequence_number"] == "1" and raw["stream_id"] == caller.stream_id
    start = server.receive(json.dumps(raw))
    assert isinstance(start, Start)
    assert start.parameters == {"token": "t0k"}
    assert start.call_control_id == caller.call_control_id
    for i in range(3):
        frame = caller.media(bytes([i]) * 160)
        assert json.loads(frame)["media"]["timestamp"] == str(20 * i)
        media = server.receive(frame)
        assert isinstance(media, Media) and media.chunk == i + 1
    assert isinstance(server.receive(caller.media(ULAW, chunk=2)), SkippedMedia)
    assert server.receive(caller.dtmf("#")) == DTMF("#")
    assert server.receive(caller.mark("m9")) == Mark("m9")
    assert server.receive(caller.error(100002, "unknown")) == Error(100002, "unknown", "")
    assert isinstance(server.receive(caller.stop()), Stop)
    assert server.last_sequence_number == caller.sequence_number
    with pytest.raises(LocalProtocolError):
        caller.media(ULAW)
    with pytest.raises(LocalProtocolError):
        TelnyxCaller().dtmf("1")
    other = TelnyxCaller()
    other.connected()
    other.start()
    with pytest.raises(LocalProtocolError):
        other.dtmf("E")


def test_server_frames_are_what_the_caller_accepts() -> None:
    caller = TelnyxCaller()
    server = TelnyxStream()
    server.receive(caller.connected())
    server.receive(caller.start())
    assert caller.receive(server.media(ULAW)) == OutboundMedia(ULAW)
    assert caller.receive(server.mark("x")) == OutboundMark("x")
    assert caller.receive(server.clear()) == Clear()
    for bad, code in [
        (b'{"event":"media","media":{"payload":"//8="}}', "bad_audio_length"),
        (b'{"event":"mark","mark":{"name":""}}', "invalid_message"),
        (b'{"event":"playAudio"}', "invalid_message"),
        (b"nope", "bad_json"),
    ]:
        with pytest.raises(RemoteProtocolError) as info:
            caller.receive(bad)
        assert info.value.code == code


def test_l16_caller_and_server_agree() -> None:
    caller = TelnyxCaller(encoding="L16", sample_rate=16000, bidirectional_codec="L16")
    server = TelnyxStream(bidirectional_codec="L16", bidirectional_rate=16000)
    server.receive(caller.connected())
    server.receive(caller.start())
    pcm = np.arange(-320, 320, dtype="<i2").tobytes()  # 20 ms at 16 kHz
    reply = caller.receive(server.media(pcm))
    assert isinstance(reply, OutboundMedia) and caller.audio(reply) == pcm


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(min_value=160, max_value=2400), min_size=1, max_size=12),
    st.integers(min_value=0, max_value=11),
)
def test_barge_in_through_both_halves(sizes: list[int], barge_after: int) -> None:
    """The server sends chunks + marks; the phone plays them, the caller barges in; the
    tracker's played_ms is exactly the audio the phone played before the clear."""
    caller, server = TelnyxCaller(), TelnyxStream()
    server.receive(caller.connected())
    server.receive(caller.start())
    tracker, playout = PlaybackTracker(bytes_per_ms=8), Playout(bytes_per_ms=8)
    now = 0.0
    for size in sizes:
        for frame in (server.media(b"\xff" * size), server.mark(tracker.add(size, "r1"))):
            event = caller.receive(frame)
            if isinstance(event, OutboundMedia):
                playout.push_audio(len(event.payload), now)
            elif isinstance(event, OutboundMark):
                playout.push_mark(event.name, now)
    # time passes: the marks whose audio played echo
    now = sum(sizes[: barge_after + 1]) / 8000
    for name in playout.due(now):
        echo = tracker.echo(name)
        assert echo is not None and echo.played
    heard = tracker.played_ms("r1")
    # barge-in: clear; Telnyx echoes every queued mark at once
    assert caller.receive(server.clear()) == Clear()
    flushed_ms = tracker.clear()
    for name in playout.clear(now):
        mark = server.receive(caller.mark(name))
        assert isinstance(mark, Mark)
        echo = tracker.echo(mark.name)
        assert echo is not None and not echo.played
    assert tracker.played_ms("r1") == heard
    assert heard + flushed_ms == sum(sizes) / 8
    assert tracker.pending_marks == 0


def test_ulaw_audio_sent_is_audio_heard(started: TelnyxStream) -> None:
    caller = TelnyxCaller()
    media = caller.receive(started.media(ULAW))
    assert isinstance(media, OutboundMedia)
    assert ulaw_decode(caller.audio(media)) == ulaw_decode(ULAW)


def test_all_names_exist() -> None:
    import parley.protocols.telnyx as server_module
    import parley.protocols.telnyx_caller as caller_module

    for module in (server_module, caller_module):
        assert all(hasattr(module, name) for name in module.__all__)

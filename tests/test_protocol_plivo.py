"""Plivo audio streaming: the documented events in, typed events out, and the reverse.

The ``start``, ``checkpoint``/``playedStream`` and ``clearAudio``/``clearedAudio``
frames are the examples of Plivo's docs and support articles; ``PlivoCaller`` (the
phone's half) and ``PlivoStream`` (the server's) are checked against each other,
including a barge-in where flushed checkpoints are never reported.
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
from parley.errors import ConfigError, LocalProtocolError, RemoteProtocolError
from parley.events import DTMFReceived
from parley.protocols.limits import MAX_TEXT_FRAME_BYTES
from parley.protocols.playback import PlaybackTracker, Playout
from parley.protocols.plivo import (
    DTMF,
    ClearedAudio,
    Media,
    MediaFormat,
    PlayedStream,
    PlivoStream,
    SkippedMedia,
    Start,
    Stop,
    StreamState,
    Unknown,
    parse_extra_headers,
)
from parley.protocols.plivo_caller import (
    ClearAudio,
    OutboundCheckpoint,
    OutboundMedia,
    PlivoCaller,
)

SID = "87654321-4321-4321-4321-cba987654321"
# Verbatim from Plivo's Stream Event Protocol page.
START = json.dumps(
    {
        "event": "start",
        "sequenceNumber": 1,
        "start": {
            "callId": "12345678-1234-1234-1234-123456789abc",
            "streamId": SID,
            "accountId": "MAXXXXXXXXXXXXXXXXXX",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
        },
        "extra_headers": "userId=12345;sessionId=abc-xyz",
    }
)
ULAW = bytes(range(96, 256))


def media_frame(seq: int, payload: bytes = ULAW, sid: str = SID, track: str = "inbound") -> str:
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": seq,
            "streamId": sid,
            "media": {
                "track": track,
                "timestamp": str(1_700_000_000_000 + 20 * seq),
                "chunk": seq - 1,
                "payload": base64.b64encode(payload).decode(),
            },
        }
    )


MEDIA = media_frame(2)
DTMF_FRAME = json.dumps(
    {
        "event": "dtmf",
        "sequenceNumber": 3,
        "streamId": SID,
        "dtmf": {"digit": "7", "track": "inbound"},
    }
)
# Plivo docs, checkpoint-event page (its stream id is another call's, so it is replaced).
PLAYED = f'{{"event":"playedStream","streamId":"{SID}","name":"customer greeting audio"}}'
# support.plivo.com "Can I interrupt and clear buffered audio?" (sequenceNumber 0 as shown)
CLEARED = f'{{"sequenceNumber":0,"event":"clearedAudio","streamId":"{SID}"}}'
STOP = json.dumps({"event": "stop", "sequenceNumber": 9, "streamId": SID, "reason": "hangup"})


def with_format(encoding: str, rate: int) -> str:
    frame = json.loads(START)
    frame["start"]["mediaFormat"] = {"encoding": encoding, "sampleRate": rate}
    return json.dumps(frame)


@pytest.fixture
def started() -> PlivoStream:
    stream = PlivoStream()
    stream.receive(START)
    return stream


# ----------------------------------------------------------------------- inbound


def test_start_from_the_docs() -> None:
    stream = PlivoStream()
    start = stream.receive(START)
    assert start == Start(
        call_id="12345678-1234-1234-1234-123456789abc",
        stream_id=SID,
        account_id="MAXXXXXXXXXXXXXXXXXX",
        tracks=("inbound",),
        media_format=MediaFormat("audio/x-mulaw", 8000),
        extra_headers="userId=12345;sessionId=abc-xyz",
    )
    assert isinstance(start, Start)
    assert start.headers == {"userId": "12345", "sessionId": "abc-xyz"}
    assert stream.state is StreamState.STARTED
    assert stream.input_format == stream.output_format == AudioFormat("ulaw", 8000)
    assert stream.last_sequence_number == 1


def test_media_dtmf_played_cleared_stop(started: PlivoStream) -> None:
    media = started.receive(MEDIA)
    assert media == Media(track="inbound", timestamp=1_700_000_000_040, chunk=1, payload=ULAW)
    assert isinstance(media, Media) and started.audio(media) == ULAW
    dtmf = started.receive(DTMF_FRAME)
    assert dtmf == DTMF("7", "inbound")
    assert isinstance(dtmf, DTMF) and dtmf.as_event() == DTMFReceived("7")
    assert started.receive(PLAYED) == PlayedStream("customer greeting audio")
    assert started.receive(PLAYED.replace("playedStream", "played")) == PlayedStream(
        "customer greeting audio"
    )
    assert started.receive(CLEARED) == ClearedAudio()
    assert started.receive(STOP) == Stop("hangup")
    assert started.state is StreamState.STOPPED
    assert started.last_sequence_number == 9


def test_optional_fields_may_be_null() -> None:
    frame = json.loads(START)
    frame["extra_headers"] = None
    frame["start"]["accountId"] = None
    start = PlivoStream().receive(json.dumps(frame))
    assert isinstance(start, Start) and start.headers == {} and start.account_id is None


def test_other_track_is_skipped(started: PlivoStream) -> None:
    event = started.receive(media_frame(2, track="outbound"))
    assert isinstance(event, SkippedMedia) and event.reason == "other_track"
    assert started.skipped_media == 1


def test_unknown_events_are_surfaced(started: PlivoStream) -> None:
    frame = f'{{"event":"transcript","streamId":"{SID}"}}'
    assert started.receive(frame) == Unknown("transcript", json.loads(frame))


@pytest.mark.parametrize("rate", [8000, 16000])
def test_l16_little_endian_by_default(rate: int) -> None:
    stream = PlivoStream()
    stream.receive(with_format("audio/x-l16", rate))
    assert stream.input_format == stream.output_format == AudioFormat("pcm16", rate)
    pcm = np.arange(-80, 80, dtype="<i2").tobytes()
    media = stream.receive(media_frame(2, pcm))
    assert isinstance(media, Media) and stream.audio(media) == pcm
    sent = json.loads(stream.media(pcm))["media"]
    assert sent["contentType"] == "audio/x-l16" and sent["sampleRate"] == rate
    assert base64.b64decode(sent["payload"]) == pcm


def test_l16_big_endian_when_configured() -> None:
    stream = PlivoStream(l16_big_endian=True)
    stream.receive(with_format("audio/x-l16", 16000))
    pcm = np.array([1, -2, 300], dtype="<i2").tobytes()
    wire = np.array([1, -2, 300], dtype=">i2").tobytes()
    media = stream.receive(media_frame(2, wire))
    assert isinstance(media, Media) and stream.audio(media) == pcm
    assert base64.b64decode(json.loads(stream.media(pcm))["media"]["payload"]) == wire


def test_odd_l16_is_the_peers_fault() -> None:
    stream = PlivoStream()
    stream.receive(with_format("audio/x-l16", 8000))
    media = stream.receive(media_frame(2, b"\x00\x01\x02"))
    assert isinstance(media, Media)
    with pytest.raises(RemoteProtocolError) as info:
        stream.audio(media)
    assert info.value.code == "odd_audio_length"
    with pytest.raises(LocalProtocolError):
        stream.media(b"\x00")


@pytest.mark.parametrize(
    ("encoding", "rate"),
    [("audio/x-mulaw", 16000), ("audio/x-l16", 24000), ("audio/x-alaw", 8000), ("PCMU", 8000)],
)
def test_unsupported_formats(encoding: str, rate: int) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        PlivoStream().receive(with_format(encoding, rate))
    assert info.value.code == "unsupported_media_format"


def test_play_format_can_be_fixed() -> None:
    stream = PlivoStream(play_content_type="audio/x-l16", play_rate=8000)
    stream.receive(START)
    assert stream.output_format == AudioFormat("pcm16", 8000)
    with pytest.raises(ConfigError):
        PlivoStream(play_content_type="audio/x-mulaw", play_rate=16000)
    with pytest.raises(ConfigError):
        PlivoStream(play_rate=8000)


def test_parse_extra_headers() -> None:
    assert parse_extra_headers("a=1,b=2") == {"a": "1", "b": "2"}
    assert parse_extra_headers(" a = 1 ; noise ; =x; b=") == {"a": "1", "b": ""}
    assert parse_extra_headers("") == {}


# ---------------------------------------------------------------------- outbound


def test_outbound_frames_are_plivo_shapes(started: PlivoStream) -> None:
    assert json.loads(started.media(ULAW)) == {
        "event": "playAudio",
        "streamId": SID,
        "media": {
            "contentType": "audio/x-mulaw",
            "sampleRate": 8000,
            "payload": base64.b64encode(ULAW).decode(),
        },
    }
    # The docs' checkpoint and clearAudio requests, field for field.
    assert json.loads(started.mark("customer greeting audio")) == {
        "event": "checkpoint",
        "streamId": SID,
        "name": "customer greeting audio",
    }
    assert json.loads(started.clear()) == {"event": "clearAudio", "streamId": SID}


def test_outbound_escapes_odd_ids() -> None:
    stream = PlivoStream()
    frame = json.loads(START)
    frame["start"]["streamId"] = 'a"\\b'
    stream.receive(json.dumps(frame))
    assert json.loads(stream.media(b"\xff"))["streamId"] == 'a"\\b'
    assert json.loads(stream.clear())["streamId"] == 'a"\\b'


@pytest.mark.parametrize("build", ["media", "mark", "clear"])
def test_builders_need_a_started_stream(build: str) -> None:
    stream = PlivoStream()
    with pytest.raises(LocalProtocolError) as info:
        _build(stream, build)
    assert info.value.code == "not_started"
    stream.receive(START)
    stream.receive(STOP)
    with pytest.raises(LocalProtocolError) as info:
        _build(stream, build)
    assert info.value.code == "stream_stopped"


def _build(stream: PlivoStream, build: str) -> bytes:
    if build == "media":
        return stream.media(ULAW)
    if build == "mark":
        return stream.mark("m")
    return stream.clear()


def test_a_checkpoint_needs_a_name(started: PlivoStream) -> None:
    with pytest.raises(LocalProtocolError) as info:
        started.mark("")
    assert info.value.code == "invalid_mark"


# ------------------------------------------------------------------- bad input

BAD_FRAMES = [
    pytest.param("hello", "bad_json", id="not-json"),
    pytest.param("7", "not_an_object", id="number"),
    pytest.param('{"streamId":"x"}', "missing_event", id="no-event"),
    pytest.param(
        media_frame(2).replace('"chunk": 1', '"chunk": -1'), "invalid_message", id="negative-chunk"
    ),
    pytest.param(
        media_frame(2).replace(base64.b64encode(ULAW).decode(), "@@@@"),
        "bad_base64",
        id="bad-base64",
    ),
    pytest.param('{"event":"media","streamId":"x"}', "invalid_message", id="no-media"),
    pytest.param('{"event":"playedStream"}', "invalid_message", id="played-no-name"),
    pytest.param('{"event":"dtmf","dtmf":{"digit":"**"}}', "invalid_message", id="dtmf-bad"),
    pytest.param(media_frame(2, sid="other"), "stream_id_mismatch", id="other-stream"),
    pytest.param(START, "duplicate_start", id="second-start"),
    pytest.param("x" * (MAX_TEXT_FRAME_BYTES + 1), "frame_too_large", id="oversized"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES)
def test_bad_frames_are_remote_errors(started: PlivoStream, frame: str, code: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        started.receive(frame)
    assert info.value.code == code
    assert isinstance(started.receive(MEDIA), Media)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (MEDIA, "media_before_start"),
        (DTMF_FRAME, "event_before_start"),
        (PLAYED, "event_before_start"),
        (CLEARED, "event_before_start"),
    ],
)
def test_events_before_start(frame: str, code: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        PlivoStream().receive(frame)
    assert info.value.code == code


@pytest.mark.parametrize(
    "frame", [MEDIA, DTMF_FRAME, PLAYED, CLEARED, STOP, START, '{"event":"x"}']
)
def test_nothing_after_stop(started: PlivoStream, frame: str) -> None:
    started.receive(STOP)
    with pytest.raises(RemoteProtocolError) as info:
        started.receive(frame)
    assert info.value.code == "event_after_stop"


def test_start_needs_ids() -> None:
    frame = json.loads(START)
    frame["start"]["callId"] = ""
    with pytest.raises(RemoteProtocolError) as info:
        PlivoStream().receive(json.dumps(frame))
    assert info.value.code == "invalid_message"


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
    started = PlivoStream()
    started.receive(START)
    for stream in (PlivoStream(), started):
        with contextlib.suppress(RemoteProtocolError):
            stream.receive(frame)


@settings(max_examples=400, deadline=None)
@given(
    event=st.sampled_from(
        ["start", "media", "dtmf", "playedStream", "played", "clearedAudio", "stop", "x"]
    ),
    body=st.dictionaries(
        st.sampled_from(
            [
                "media",
                "start",
                "dtmf",
                "name",
                "streamId",
                "sequenceNumber",
                "extra_headers",
                "reason",
            ]
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
                "callId",
                "streamId",
                "mediaFormat",
                "encoding",
                "sampleRate",
            ]
        ),
        json_values,
        max_size=5,
    ),
)
def test_arbitrary_plivo_shaped_json_only_raises_remote_protocol_error(
    event: str, body: dict[str, object], inner: dict[str, object]
) -> None:
    body = {**body, "event": event}
    if event in body:
        body[event] = inner
    fresh, started = PlivoStream(), PlivoStream()
    started.receive(with_format("audio/x-l16", 16000))
    for stream in (fresh, started):
        with contextlib.suppress(RemoteProtocolError):
            out = stream.receive(json.dumps(body))
            if isinstance(out, Media):
                stream.audio(out)


# ------------------------------------------------------------- the phone's half


def test_caller_frames_are_what_the_server_half_accepts() -> None:
    caller = PlivoCaller(extra_headers="token=t0k")
    server = PlivoStream()
    start = server.receive(caller.start())
    assert isinstance(start, Start)
    assert (start.stream_id, start.call_id, start.headers) == (
        caller.stream_id,
        caller.call_id,
        {"token": "t0k"},
    )
    for i in range(3):
        raw = json.loads(caller.media(bytes([i]) * 160))
        assert raw["sequenceNumber"] == 2 + i and raw["media"]["chunk"] == 1 + i
        media = server.receive(json.dumps(raw))
        assert isinstance(media, Media) and media.timestamp == 1_700_000_000_000 + 20 * i
    assert server.receive(caller.dtmf("*")) == DTMF("*", "inbound")
    assert server.receive(caller.played_stream("n")) == PlayedStream("n")
    assert server.receive(caller.cleared_audio()) == ClearedAudio()
    assert server.receive(caller.stop()) == Stop("hangup")
    assert server.last_sequence_number == caller.sequence_number
    with pytest.raises(LocalProtocolError):
        caller.media(ULAW)
    with pytest.raises(ValueError):
        PlivoCaller(content_type="audio/x-mulaw", sample_rate=16000)


def test_server_frames_are_what_the_caller_accepts() -> None:
    caller = PlivoCaller()
    server = PlivoStream()
    server.receive(caller.start())
    assert caller.receive(server.media(ULAW)) == OutboundMedia("audio/x-mulaw", 8000, ULAW)
    assert caller.receive(server.mark("c1")) == OutboundCheckpoint("c1")
    assert caller.receive(server.clear()) == ClearAudio()
    other = PlivoStream(play_content_type="audio/x-l16", play_rate=8000)
    other.receive(PlivoCaller(stream_id=caller.stream_id).start())  # plays back in L16
    for bad, code in [
        (other.media(bytes(320)), "unsupported_media_format"),
        (b'{"event":"checkpoint","streamId":"zz","name":"x"}', "stream_id_mismatch"),
        (
            b'{"event":"checkpoint","streamId":"%s","name":""}' % caller.stream_id.encode(),
            "invalid_message",
        ),
        (server.media(b""), "bad_audio_length"),
        (b'{"event":"media"}', "invalid_message"),
        (b"", "bad_json"),
    ]:
        with pytest.raises(RemoteProtocolError) as info:
            caller.receive(bad)
        assert info.value.code == code


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=2400), min_size=1, max_size=12),
    st.floats(min_value=0.0, max_value=4.0),
)
def test_barge_in_through_both_halves(sizes: list[int], barge_at: float) -> None:
    """Flushed checkpoints are never reported: the tracker forgets them on clearedAudio,
    and played_ms is exactly what the phone played before the clear (to the checkpoint)."""
    caller, server = PlivoCaller(), PlivoStream()
    server.receive(caller.start())
    tracker = PlaybackTracker(bytes_per_ms=8, flushed_marks_echo=False)
    playout = Playout(bytes_per_ms=8)
    for size in sizes:
        for frame in (server.media(b"\xff" * size), server.mark(tracker.add(size, "r"))):
            event = caller.receive(frame)
            if isinstance(event, OutboundMedia):
                playout.push_audio(len(event.payload), 0.0)
            elif isinstance(event, OutboundCheckpoint):
                playout.push_mark(event.name, 0.0)
    played = playout.due(barge_at)
    for name in played:
        event = server.receive(caller.played_stream(name))
        assert isinstance(event, PlayedStream)
        echo = tracker.echo(event.name)
        assert echo is not None and echo.played
    assert caller.receive(server.clear()) == ClearAudio()
    tracker.clear()
    flushed = playout.clear(barge_at)
    assert server.receive(caller.cleared_audio()) == ClearedAudio()
    assert tracker.cleared() == len(flushed)
    assert tracker.pending_marks == 0
    assert tracker.played_ms("r") == sum(sizes[: len(played)]) / 8


def test_a_checkpoint_that_raced_the_clear_still_counts_as_played() -> None:
    tracker = PlaybackTracker(bytes_per_ms=8, flushed_marks_echo=False)
    first, second = tracker.add(800, "r"), tracker.add(800, "r")
    tracker.clear()  # sent clearAudio while playedStream(first) was on its way
    echo = tracker.echo(first)
    assert echo is not None and echo.played and echo.played_ms == 100.0
    assert tracker.cleared() == 1  # second is forgotten
    assert tracker.echo(second) is None
    assert tracker.played_ms("r") == 100.0


def test_all_names_exist() -> None:
    import parley.protocols.plivo as server_module
    import parley.protocols.plivo_caller as caller_module

    for module in (server_module, caller_module):
        assert all(hasattr(module, name) for name in module.__all__)

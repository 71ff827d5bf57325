"""Parley's browser protocol: client frames in, typed messages out; server frames built."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.errors import LocalProtocolError, RemoteProtocolError
from parley.events import Role
from parley.protocols.browser import (
    SUPPORTED_SAMPLE_RATES,
    AudioFrame,
    BrowserSession,
    ClearMessage,
    ErrorMessage,
    InterruptedMessage,
    MetricsMessage,
    PCMFormat,
    PingMessage,
    PlaybackMessage,
    PongMessage,
    ReadyMessage,
    ResponseDoneMessage,
    ResponseStartedMessage,
    ResponseTextMessage,
    SessionState,
    StartMessage,
    StateMessage,
    StopMessage,
    TranscriptMessage,
    UserTextMessage,
    encode_client_message,
    parse_server_frame,
)
from parley.protocols.limits import MAX_AUDIO_FRAME_BYTES, MAX_TEXT_FRAME_BYTES

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
START = '{"type":"start","session_id":null,"format":{"encoding":"pcm16","sample_rate":24000}}'
PCM_20MS = b"\x01\x00\xff\xff" * 240  # 20 ms at 24 kHz = 960 bytes


@pytest.fixture
def session() -> BrowserSession:
    s = BrowserSession()
    s.receive(START)
    return s


@pytest.fixture
def ready(session: BrowserSession) -> BrowserSession:
    session.ready("sess-1")
    return session


# ------------------------------------------------------------------ client → server


def test_start_defaults() -> None:
    assert BrowserSession().state is SessionState.AWAITING_START
    s = BrowserSession()
    msg = s.receive('{"type":"start"}')
    assert msg == StartMessage()
    assert s.format == PCMFormat("pcm16", 24000, 1)
    assert s.state is SessionState.STARTED


def test_start_with_everything() -> None:
    s = BrowserSession()
    msg = s.receive(
        '{"type":"start","session_id":"abc","user_id":"u7","version":1,'
        '"format":{"encoding":"pcm16","sample_rate":48000,"channels":1},'
        '"metadata":{"page":"/demo"}}'
    )
    assert msg == StartMessage(
        session_id="abc",
        user_id="u7",
        format=PCMFormat("pcm16", 48000, 1),
        metadata={"page": "/demo"},
    )
    assert s.format.sample_rate == 48000
    assert s.start is msg


@pytest.mark.parametrize("rate", SUPPORTED_SAMPLE_RATES)
def test_every_supported_rate(rate: int) -> None:
    s = BrowserSession()
    s.receive(json.dumps({"type": "start", "format": {"sample_rate": rate}}))
    assert s.format.sample_rate == rate


def test_audio_frames(session: BrowserSession) -> None:
    event = session.receive(PCM_20MS)
    assert event == AudioFrame(PCM_20MS)
    assert isinstance(event, AudioFrame)
    assert event.pcm is PCM_20MS  # no copy on the hot path


def test_control_messages(session: BrowserSession) -> None:
    assert session.receive('{"type":"playback","response_id":"r1","played_ms":1200}') == (
        PlaybackMessage(response_id="r1", played_ms=1200.0)
    )
    assert session.receive(
        '{"type":"playback","response_id":"r1","played_ms":2410.5,"done":true}'
    ) == PlaybackMessage(response_id="r1", played_ms=2410.5, done=True)
    assert session.receive('{"type":"text","text":"where is my order?"}') == UserTextMessage(
        "where is my order?"
    )
    assert session.receive('{"type":"ping","id":42}') == PingMessage(id=42)
    assert session.receive('{"type":"ping","id":"a"}') == PingMessage(id="a")
    assert session.receive('{"type":"ping","id":1234.5}') == PingMessage(id=1234.5)
    assert session.receive('{"type":"ping"}') == PingMessage()
    assert session.receive('{"type":"stop"}') == StopMessage()
    assert session.state is SessionState.STOPPED


def test_ping_before_start_and_stop_before_start() -> None:
    s = BrowserSession()
    assert s.receive('{"type":"ping","id":1}') == PingMessage(id=1)
    assert s.receive('{"type":"stop"}') == StopMessage()
    assert s.state is SessionState.STOPPED


def test_unknown_fields_are_ignored(session: BrowserSession) -> None:
    msg = session.receive('{"type":"text","text":"hi","client_ts":123}')
    assert msg == UserTextMessage("hi")


# ------------------------------------------------------------------ server → client


def test_server_frames_byte_exact(session: BrowserSession) -> None:
    assert session.ready("sess-1") == (
        '{"type":"ready","session_id":"sess-1",'
        '"format":{"encoding":"pcm16","sample_rate":24000,"channels":1},"version":1}'
    )
    assert session.session_id == "sess-1"
    assert session.transcript("user", "hello there", final=True) == (
        '{"type":"transcript","role":"user","text":"hello there","final":true,"item_id":""}'
    )
    assert session.transcript(Role.ASSISTANT, "Hi", final=False, item_id="i1") == (
        '{"type":"transcript","role":"assistant","text":"Hi","final":false,"item_id":"i1"}'
    )
    assert session.response_started("r1") == '{"type":"response_started","response_id":"r1"}'
    assert session.response_text("r1", "Hel") == (
        '{"type":"response_text","response_id":"r1","delta":"Hel"}'
    )
    assert session.response_done("r1", text="Hello!") == (
        '{"type":"response_done","response_id":"r1","status":"completed","text":"Hello!"}'
    )
    assert session.interrupted("r1", played_text="Sure, your", played_ms=820.0) == (
        '{"type":"interrupted","response_id":"r1","played_text":"Sure, your","played_ms":820.0}'
    )
    assert session.clear() == '{"type":"clear"}'
    assert session.metrics(3, voice_to_voice_ms=812.5, stt_ms=380.0) == (
        '{"type":"metrics","turn_index":3,"voice_to_voice_ms":812.5,"end_of_turn_ms":null,'
        '"stt_ms":380.0,"llm_first_token_ms":null,"tts_first_byte_ms":null,"extra":{}}'
    )
    assert session.conversation_state("thinking", "user_speaking") == (
        '{"type":"state","state":"thinking","previous":"user_speaking"}'
    )
    assert session.error("bad_json", "not valid JSON", fatal=True) == (
        '{"type":"error","code":"bad_json","message":"not valid JSON","fatal":true}'
    )
    assert session.pong(42) == '{"type":"pong","id":42}'
    assert session.audio(PCM_20MS) is PCM_20MS


def test_server_frames_parse_back(ready: BrowserSession) -> None:
    frames: list[str | bytes] = [
        ready.transcript("user", "hi", final=True),
        ready.response_started("r1"),
        ready.response_text("r1", "Hel"),
        ready.audio(PCM_20MS),
        ready.response_done("r1", status="cancelled", text="Hel"),
        ready.interrupted("r1", played_text="Hel", played_ms=120.0),
        ready.clear(),
        ready.metrics(1, voice_to_voice_ms=900.0, extra={"vad_ms": 1.5}),
        ready.conversation_state("listening"),
        ready.error("x", "y"),
        ready.pong("p"),
    ]
    parsed = [parse_server_frame(f) for f in frames]
    assert parsed == [
        TranscriptMessage(role="user", text="hi", final=True),
        ResponseStartedMessage("r1"),
        ResponseTextMessage("r1", "Hel"),
        AudioFrame(PCM_20MS),
        ResponseDoneMessage("r1", status="cancelled", text="Hel"),
        InterruptedMessage("r1", played_text="Hel", played_ms=120.0),
        ClearMessage(),
        MetricsMessage(turn_index=1, voice_to_voice_ms=900.0, extra={"vad_ms": 1.5}),
        StateMessage(state="listening"),
        ErrorMessage(code="x", message="y"),
        PongMessage(id="p"),
    ]


def test_ready_parses_back(session: BrowserSession) -> None:
    assert parse_server_frame(session.ready("s")) == ReadyMessage(
        session_id="s", format=PCMFormat()
    )


def test_client_messages_encode_and_parse_back(session: BrowserSession) -> None:
    for msg in (
        PlaybackMessage(response_id="r9", played_ms=40.0, done=True),
        UserTextMessage("typed"),
        PingMessage(id=7),
        StopMessage(),
    ):
        assert session.receive(encode_client_message(msg)) == msg
    fresh = BrowserSession()
    start = StartMessage(session_id="s", format=PCMFormat(sample_rate=16000))
    assert fresh.receive(encode_client_message(start)) == start


@pytest.mark.parametrize(
    "build",
    [
        lambda s: s.transcript("user", "x", final=True),
        lambda s: s.response_started("r"),
        lambda s: s.response_text("r", "x"),
        lambda s: s.response_done("r"),
        lambda s: s.interrupted("r", played_text="", played_ms=0.0),
        lambda s: s.clear(),
        lambda s: s.metrics(1),
        lambda s: s.conversation_state("listening"),
        lambda s: s.audio(b"\x00\x00"),
    ],
)
def test_server_frames_need_ready(session: BrowserSession, build: object) -> None:
    assert callable(build)
    with pytest.raises(LocalProtocolError) as info:
        build(session)
    assert info.value.code == "not_ready"


def test_error_and_pong_need_nothing() -> None:
    s = BrowserSession()
    assert json.loads(s.error("bad_json", "x"))["type"] == "error"
    assert json.loads(s.pong())["id"] is None


def test_ready_rules(session: BrowserSession) -> None:
    with pytest.raises(LocalProtocolError) as info:
        BrowserSession().ready("s")
    assert info.value.code == "not_started"
    with pytest.raises(LocalProtocolError) as info:
        session.ready("")
    assert info.value.code == "invalid_message"
    session.ready("s")
    with pytest.raises(LocalProtocolError) as info:
        session.ready("s")
    assert info.value.code == "duplicate_ready"


def test_server_audio_rules(ready: BrowserSession) -> None:
    with pytest.raises(LocalProtocolError) as info:
        ready.audio(b"\x00\x00\x00")
    assert info.value.code == "odd_audio_length"
    with pytest.raises(LocalProtocolError) as info:
        ready.audio(b"\x00" * (MAX_AUDIO_FRAME_BYTES + 2))
    assert info.value.code == "frame_too_large"


# ----------------------------------------------------------------------- bad input

BAD_TEXT = [
    pytest.param("hello", "bad_json", id="not-json"),
    pytest.param("", "bad_json", id="empty"),
    pytest.param('{"type":"text",', "bad_json", id="truncated"),
    pytest.param('{"type":"text","text":"x\ud800"}', "bad_json", id="lone-surrogate"),
    pytest.param("[" * 5000 + "]" * 5000, "bad_json", id="deeply-nested-array"),
    pytest.param('{"a":' * 5000 + "1" + "}" * 5000, "bad_json", id="deeply-nested"),
    pytest.param("[]", "not_an_object", id="array"),
    pytest.param("42", "not_an_object", id="number"),
    pytest.param('{"text":"hi"}', "missing_type", id="no-type"),
    pytest.param('{"type":null}', "missing_type", id="type-null"),
    pytest.param('{"type":"input_audio_buffer.append"}', "unknown_type", id="unknown-type"),
    pytest.param('{"type":"ready","session_id":"x"}', "unknown_type", id="server-type"),
    pytest.param('{"type":"text"}', "invalid_message", id="text-missing"),
    pytest.param('{"type":"text","text":5}', "invalid_message", id="text-not-str"),
    pytest.param(
        '{"type":"playback","response_id":"r","played_ms":-1}', "invalid_message", id="negative-ms"
    ),
    pytest.param(
        '{"type":"playback","response_id":"r","played_ms":"12"}',
        "invalid_message",
        id="ms-as-string",
    ),
    pytest.param('{"type":"ping","id":[1]}', "invalid_message", id="ping-id-list"),
    pytest.param(
        '{"type":"text","text":"' + "a" * MAX_TEXT_FRAME_BYTES + '"}',
        "frame_too_large",
        id="oversized-text",
    ),
]


@pytest.mark.parametrize(("frame", "code"), BAD_TEXT)
def test_bad_text_frames(session: BrowserSession, frame: str, code: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        session.receive(frame)
    assert info.value.code == code
    assert info.value.message
    assert session.state is SessionState.STARTED  # a bad frame changes nothing


def test_odd_length_audio(session: BrowserSession) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        session.receive(b"\x00\x01\x02")
    assert info.value.code == "odd_audio_length"


def test_oversized_audio_is_rejected_before_anything_else() -> None:
    s = BrowserSession()  # not even started: the size check comes first
    with pytest.raises(RemoteProtocolError) as info:
        s.receive(b"\x00" * (MAX_AUDIO_FRAME_BYTES + 1))
    assert info.value.code == "frame_too_large"


def test_limits_are_configurable() -> None:
    s = BrowserSession(max_audio_frame_bytes=1920, max_text_frame_bytes=20)
    with pytest.raises(RemoteProtocolError) as info:
        s.receive(START)
    assert info.value.code == "frame_too_large"
    s.receive('{"type":"start"}')
    s.receive(b"\x00" * 1920)
    with pytest.raises(RemoteProtocolError):
        s.receive(b"\x00" * 1922)


def test_audio_before_start() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        BrowserSession().receive(PCM_20MS)
    assert info.value.code == "audio_before_start"


@pytest.mark.parametrize(
    "frame", ['{"type":"text","text":"hi"}', '{"type":"playback","response_id":"r","played_ms":0}']
)
def test_control_before_start(frame: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        BrowserSession().receive(frame)
    assert info.value.code == "before_start"


@pytest.mark.parametrize(
    "frame",
    [
        PCM_20MS,
        START,
        '{"type":"text","text":"hi"}',
        '{"type":"playback","response_id":"r","played_ms":0}',
        '{"type":"ping"}',
        '{"type":"stop"}',
    ],
)
def test_nothing_after_stop(session: BrowserSession, frame: str | bytes) -> None:
    session.receive('{"type":"stop"}')
    with pytest.raises(RemoteProtocolError) as info:
        session.receive(frame)
    assert info.value.code == "after_stop"


def test_duplicate_start(session: BrowserSession) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        session.receive(START)
    assert info.value.code == "duplicate_start"


@pytest.mark.parametrize(
    "fmt",
    [
        {"sample_rate": 22050},
        {"sample_rate": 24000, "channels": 2},
        {"encoding": "f32", "sample_rate": 24000},
        {"encoding": "opus"},
    ],
)
def test_unsupported_formats(fmt: dict[str, object]) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        BrowserSession().receive(json.dumps({"type": "start", "format": fmt}))
    assert info.value.code == "unsupported_format"


def test_restricted_rates() -> None:
    s = BrowserSession(sample_rates=(24000,))
    with pytest.raises(RemoteProtocolError, match="24000"):
        s.receive('{"type":"start","format":{"sample_rate":48000}}')


def test_unsupported_version() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        BrowserSession().receive('{"type":"start","version":2}')
    assert info.value.code == "unsupported_version"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("nope", "bad_json"),
        ('{"type":"start"}', "unknown_type"),
        ('{"type":"transcript","role":"user"}', "invalid_message"),
        (b"\x00", "odd_audio_length"),
        (b"\x00" * (MAX_AUDIO_FRAME_BYTES + 2), "frame_too_large"),
    ],
)
def test_bad_server_frames_on_the_client(frame: str | bytes, code: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_server_frame(frame)
    assert info.value.code == code


# ------------------------------------------------------------------ the document


def _doc_examples() -> list[dict[str, object]]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("<!-- browser-examples -->", 1)[1]
    blocks = re.findall(r"```json\n(.*?)```", section, flags=re.DOTALL)
    return [json.loads(line) for block in blocks for line in block.splitlines() if line.strip()]


def test_every_documented_example_parses() -> None:
    examples = _doc_examples()
    client_types = {"start", "playback", "text", "stop", "ping"}
    seen = {str(e["type"]) for e in examples}
    assert client_types <= seen
    assert {
        "ready",
        "transcript",
        "response_started",
        "response_text",
        "response_done",
        "interrupted",
        "clear",
        "metrics",
        "state",
        "error",
        "pong",
    } <= seen
    for example in examples:
        frame = json.dumps(example)
        if example["type"] in client_types:
            session = BrowserSession()
            if example["type"] not in ("start", "ping", "stop"):
                session.receive(START)
            session.receive(frame)
        else:
            parse_server_frame(frame)


# -------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_arbitrary_frames_only_raise_remote_protocol_error(frame: str | bytes) -> None:
    started = BrowserSession()
    started.receive(START)
    for s in (BrowserSession(), started):
        with contextlib.suppress(RemoteProtocolError):
            s.receive(frame)
    with contextlib.suppress(RemoteProtocolError):
        parse_server_frame(frame)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["start", "playback", "text", "stop", "ping", "ready", "metrics", "x"]),
    body=st.dictionaries(
        st.sampled_from(
            ["session_id", "format", "response_id", "played_ms", "done", "text", "id", "version"]
        ),
        json_values,
        max_size=4,
    ),
)
def test_arbitrary_typed_json_only_raises_remote_protocol_error(
    kind: str, body: dict[str, object]
) -> None:
    frame = json.dumps({**body, "type": kind})
    started = BrowserSession()
    started.receive(START)
    for s in (BrowserSession(), started):
        with contextlib.suppress(RemoteProtocolError):
            s.receive(frame)
    with contextlib.suppress(RemoteProtocolError):
        parse_server_frame(frame)


def test_all_names_exist() -> None:
    import parley.protocols.browser as module

    assert all(hasattr(module, name) for name in module.__all__)

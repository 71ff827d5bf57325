"""parley.protocols.openai_realtime: every official example, both directions, beta input,
usage, and bad frames (always a RemoteProtocolError, never a crash)."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from typing import Any, get_args

import msgspec
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types import realtime as realtime_types

from parley.errors import LocalProtocolError, RemoteProtocolError
from parley.events import Usage
from parley.protocols import openai_realtime as rt

# A copy of ../shared/reference/openai_realtime_ga_examples.json (59 official examples).
_EXAMPLE_PATHS = [
    Path(__file__).parent / "data" / "openai_realtime_ga_examples.json",
]


# --- the official examples ----------------------------------------------------------


def clean_json(text: str) -> str:
    """Make the spec's non-strict JSON strict: drop ``//`` comments and trailing commas,
    outside strings only (the examples hold base64 such as ``"8//2//v/9//…"``)."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\":
                out.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        elif ch == ",":
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j < n and text[j] in "}]":
                i += 1
                continue
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def test_clean_json_strips_comments_and_trailing_commas_outside_strings() -> None:
    dirty = '{"a": [1, 2,], // note\n "b": "8//2//v/9//x", "c": {"d": 1,},}'
    assert json.loads(clean_json(dirty)) == {"a": [1, 2], "b": "8//2//v/9//x", "c": {"d": 1}}


def _load_examples() -> dict[str, Any]:
    for path in _EXAMPLE_PATHS:
        if path.exists():
            loaded: dict[str, Any] = json.loads(clean_json(path.read_text(encoding="utf-8")))
            return loaded
    return {}


EXAMPLES = _load_examples()
CASES = [
    pytest.param(name, entry["schema"].startswith("RealtimeClientEvent"), ex, id=f"{name}-{i}")
    for name, entry in EXAMPLES.items()
    for i, ex in enumerate(entry["examples"])
]


def _parse(is_client: bool, data: str | bytes) -> Any:
    return rt.parse_client_event(data) if is_client else rt.parse_server_event(data)


def test_the_example_file_has_every_event_type() -> None:
    assert EXAMPLES, f"openai_realtime_ga_examples.json not found in {_EXAMPLE_PATHS}"
    assert len(EXAMPLES) == 59
    assert sum(len(e["examples"]) for e in EXAMPLES.values()) == 60


@pytest.mark.parametrize(("name", "is_client", "example"), CASES)
def test_every_official_example_parses_to_its_typed_event(
    name: str, is_client: bool, example: Any
) -> None:
    event = _parse(is_client, json.dumps(example))
    assert not isinstance(event, rt.UnknownServerEvent | rt.UnknownClientEvent)
    assert type(event).__struct_config__.tag == name
    # and back: encode -> decode gives the same event
    assert _parse(is_client, rt.encode_event(event)) == event


def test_examples_cover_every_event_class() -> None:
    assert EXAMPLES, "the official examples file is missing"
    seen = {
        type(_parse(entry["schema"].startswith("RealtimeClientEvent"), json.dumps(ex)))
        for entry in EXAMPLES.values()
        for ex in entry["examples"]
    }
    assert set(get_args(rt.ServerEvent)) <= seen
    assert set(get_args(rt.ClientEvent)) <= seen
    assert len(get_args(rt.ServerEvent)) == 47  # the 46 GA types + beta transcription_session


def test_leading_space_in_type_is_tolerated() -> None:
    assert EXAMPLES, "the official examples file is missing"
    example = EXAMPLES["input_audio_buffer.dtmf_event_received"]["examples"][0]
    assert example["type"].startswith(" ")  # the spec's typo is really there
    event = rt.parse_server_event(json.dumps(example))
    assert event == rt.InputAudioBufferDtmfEventReceived(event="9", received_at=1763605109)
    assert b'"type":"input_audio_buffer.dtmf_event_received"' in rt.encode_event(event)


def test_session_created_example_fields() -> None:
    assert EXAMPLES, "the official examples file is missing"
    event = rt.parse_server_event(json.dumps(EXAMPLES["session.created"]["examples"][0]))
    assert isinstance(event, rt.SessionCreated)
    session = event.session
    assert session.id == "sess_C9G5QPteg4UIbotdKLoYQ"
    assert isinstance(session.audio, rt.AudioConfig)
    assert isinstance(session.audio.input, rt.AudioInput)
    assert session.audio.input.format == rt.PCM16_24K
    assert session.audio.input.transcription is None  # null, not absent
    td = session.audio.input.turn_detection
    assert isinstance(td, rt.TurnDetection)
    assert (td.type, td.threshold, td.prefix_padding_ms, td.silence_duration_ms) == (
        "server_vad",
        0.5,
        300,
        200,
    )
    assert td.idle_timeout_ms is None
    assert isinstance(session.audio.output, rt.AudioOutput)
    assert session.audio.output.voice == "marin"
    assert session.max_output_tokens == "inf"


# --- the official SDK as the reference for what we encode ----------------------------


def _sdk_adapter(is_client: bool) -> Any:
    union = realtime_types.RealtimeClientEvent if is_client else realtime_types.RealtimeServerEvent
    return pydantic.TypeAdapter(union)


def _sdk_accepts(name: str, is_client: bool, example: Any) -> bool:
    try:
        _sdk_adapter(is_client).validate_json(json.dumps({**example, "type": name}))
    except pydantic.ValidationError:
        return False
    return True


# The SDK's GA unions hold neither the beta-only transcription-session events nor
# three official examples (an item_reference input; beta text/audio content parts).
# What we encode can only be held to what the SDK itself accepts, so those cases are
# left out of the comparison below, and the next test pins exactly which they are.
_SDK_CASES = [
    c
    for c in CASES
    if not c.values[0].startswith("transcription_session.") and _sdk_accepts(*c.values)
]
_SDK_REJECTED_EXAMPLES = {
    "response.create",
    "response.output_item.done",
    "conversation.item.retrieved",
}


def test_sdk_rejects_only_the_known_official_examples() -> None:
    rejected = {
        name
        for name, is_client, example in (c.values for c in CASES)
        if not name.startswith("transcription_session.")
        and not _sdk_accepts(name, is_client, example)
    }
    assert rejected == _SDK_REJECTED_EXAMPLES
    assert len(_SDK_CASES) >= 50


@pytest.mark.parametrize(("name", "is_client", "example"), _SDK_CASES)
def test_what_we_encode_validates_against_the_official_sdk_types(
    name: str, is_client: bool, example: Any
) -> None:
    ours = rt.encode_event(_parse(is_client, json.dumps(example)))
    parsed = _sdk_adapter(is_client).validate_json(ours)
    assert parsed.type == name


# --- round trips of built events -----------------------------------------------------


def test_client_events_built_by_hand_round_trip() -> None:
    session = rt.Session(
        model="gpt-realtime",
        instructions="Be brief.",
        output_modalities=["audio"],
        audio=rt.AudioConfig(
            input=rt.AudioInput(
                format=rt.PCMU,
                turn_detection=rt.TurnDetection(type="semantic_vad", eagerness="high"),
                transcription=rt.InputTranscription(model="whisper-1", language="en"),
            ),
            output=rt.AudioOutput(format=rt.PCMU, voice="cedar", speed=1.1),
        ),
        tools=[rt.Tool(name="lookup", description="Find", parameters={"type": "object"})],
        tool_choice="auto",
    )
    events: list[rt.ClientEvent] = [
        rt.SessionUpdate(session=session, event_id="evt_1"),
        rt.InputAudioBufferAppend.from_audio(b"\xff\x7f" * 80),
        rt.InputAudioBufferCommit(),
        rt.InputAudioBufferClear(),
        rt.ConversationItemCreate(item=rt.ConversationItem.user_text("hi")),
        rt.ConversationItemCreate(
            item=rt.ConversationItem.function_call_output("call_1", '{"ok":true}'),
            previous_item_id="root",
        ),
        rt.ConversationItemRetrieve(item_id="item_1"),
        rt.ConversationItemTruncate(item_id="item_2", audio_end_ms=1234),
        rt.ConversationItemDelete(item_id="item_3"),
        rt.ResponseCreate(),
        rt.ResponseCreate(
            response=rt.ResponseParams(
                conversation="none",
                instructions="Summarise",
                input=[rt.ConversationItem.reference("item_1")],
                output_modalities=["text"],
            )
        ),
        rt.ResponseCancel(response_id="resp_1"),
        rt.OutputAudioBufferClear(),
        rt.TranscriptionSessionUpdate(session={"input_audio_format": "pcm16"}),
    ]
    assert {type(e) for e in events} == set(get_args(rt.ClientEvent))
    for event in events:
        assert rt.parse_client_event(rt.encode_event(event)) == event
        assert rt.parse_client_event(rt.encode_event_text(event)) == event


def test_unset_fields_are_absent_on_the_wire() -> None:
    wire = json.loads(rt.encode_event(rt.ConversationItemTruncate(item_id="i", audio_end_ms=5)))
    assert wire == {
        "type": "conversation.item.truncate",
        "item_id": "i",
        "content_index": 0,
        "audio_end_ms": 5,
    }
    item = json.loads(
        rt.encode_event(
            rt.ConversationItemCreate(item=rt.ConversationItem.function_call_output("c", "out"))
        )
    )
    assert item == {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "c", "output": "out"},
    }
    # null is kept where it means something: turn_detection: null switches VAD off
    off = rt.SessionUpdate(
        session=rt.Session(audio=rt.AudioConfig(input=rt.AudioInput(turn_detection=None)))
    )
    assert json.loads(rt.encode_event(off))["session"]["audio"]["input"] == {"turn_detection": None}


def test_server_events_built_by_hand_round_trip() -> None:
    item = rt.ConversationItem(
        type="message", id="item_1", status="in_progress", role="assistant", content=[]
    )
    response = rt.RealtimeResponse(
        id="resp_1",
        object="realtime.response",
        status="completed",
        output=[rt.ConversationItem.assistant_text("Hello")],
        usage=rt.ResponseUsage.from_usage(Usage(input_text_tokens=5, output_audio_tokens=7)),
    )
    scoped: dict[str, Any] = {
        "response_id": "resp_1",
        "item_id": "item_1",
        "output_index": 0,
        "content_index": 0,
    }
    events: list[rt.ServerEvent] = [
        rt.ResponseOutputAudioDelta.from_audio(b"\x01\x02", response_id="resp_1", item_id="i"),
        rt.ResponseOutputAudioDone(**scoped),
        rt.ResponseOutputTextDelta(delta="He", **scoped),
        rt.ResponseOutputTextDone(text="Hello", **scoped),
        rt.ResponseOutputAudioTranscriptDelta(delta="He", **scoped),
        rt.ResponseOutputAudioTranscriptDone(transcript="Hello", **scoped),
        rt.ResponseContentPartAdded(part=rt.Part(type="audio", transcript=""), **scoped),
        rt.ResponseCreated(response=rt.RealtimeResponse(id="resp_1", status="in_progress")),
        rt.ResponseDone(response=response, event_id="event_9"),
        rt.ResponseOutputItemAdded(response_id="resp_1", output_index=0, item=item),
        rt.ConversationItemAdded(item=item, previous_item_id=None),
        rt.InputAudioBufferSpeechStarted(audio_start_ms=1012, item_id="item_u"),
        rt.InputAudioBufferSpeechStopped(audio_end_ms=2080, item_id="item_u"),
        rt.InputAudioBufferCommitted(item_id="item_u"),
        rt.ResponseFunctionCallArgumentsDone(
            response_id="r",
            item_id="fc",
            output_index=0,
            call_id="call",
            arguments="{}",
            name="lookup",
        ),
        rt.RealtimeErrorEvent(
            error=rt.ErrorDetail(
                type="invalid_request_error", code="session_expired", message="60 min"
            )
        ),
        rt.SessionCreated(session=rt.Session(id="sess_1", object="realtime.session")),
    ]
    for event in events:
        assert rt.parse_server_event(rt.encode_event(event)) == event


# --- hot path: audio stays base64 text ------------------------------------------------


def test_audio_delta_passes_base64_through_untouched() -> None:
    ulaw = bytes(range(256)) * 2
    b64 = base64.b64encode(ulaw).decode()
    frame = json.dumps(
        {
            "type": "response.output_audio.delta",
            "event_id": "e",
            "response_id": "r",
            "item_id": "i",
            "output_index": 0,
            "content_index": 0,
            "delta": b64,
        }
    )
    event = rt.parse_server_event(frame)
    assert isinstance(event, rt.ResponseOutputAudioDelta)
    assert event.delta == b64  # the string itself, for µ-law pass-through
    assert event.audio_bytes() == ulaw
    append = rt.InputAudioBufferAppend(audio=event.delta)
    assert json.loads(rt.encode_event(append)) == {
        "type": "input_audio_buffer.append",
        "audio": b64,
    }


def test_bad_base64_is_a_remote_protocol_error() -> None:
    event = rt.parse_client_event('{"type":"input_audio_buffer.append","audio":"!!notbase64"}')
    assert isinstance(event, rt.InputAudioBufferAppend)
    with pytest.raises(RemoteProtocolError) as err:
        event.audio_bytes()
    assert err.value.code == "invalid_audio"
    truncated = rt.ResponseOutputAudioDelta(
        response_id="r", item_id="i", output_index=0, content_index=0, delta="AAE"
    )
    with pytest.raises(RemoteProtocolError):
        truncated.audio_bytes()


def test_append_over_the_api_limit_is_refused_locally() -> None:
    raw = b"\0" * (rt.MAX_AUDIO_APPEND_BYTES * 3 // 4 + 3)  # base64 grows by 4/3
    with pytest.raises(LocalProtocolError) as err:
        rt.InputAudioBufferAppend.from_audio(raw)
    assert err.value.code == "frame_too_large"


# --- beta names and shapes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("beta", "ga", "extra"),
    [
        ("response.audio.delta", rt.ResponseOutputAudioDelta, {"delta": "AAA="}),
        ("response.audio.done", rt.ResponseOutputAudioDone, {}),
        ("response.text.delta", rt.ResponseOutputTextDelta, {"delta": "Hi"}),
        ("response.text.done", rt.ResponseOutputTextDone, {"text": "Hi"}),
        ("response.audio_transcript.delta", rt.ResponseOutputAudioTranscriptDelta, {"delta": "H"}),
        (
            "response.audio_transcript.done",
            rt.ResponseOutputAudioTranscriptDone,
            {"transcript": "Hi"},
        ),
    ],
)
def test_beta_event_names_map_onto_ga(beta: str, ga: type, extra: dict[str, Any]) -> None:
    frame = {
        "type": beta,
        "event_id": "event_1",
        "response_id": "resp_1",
        "item_id": "item_1",
        "output_index": 0,
        "content_index": 0,
        **extra,
    }
    event = rt.parse_server_event(json.dumps(frame))
    assert type(event) is ga
    assert rt.BETA_EVENT_NAMES[beta] == ga.__struct_config__.tag
    assert json.loads(rt.encode_event(event))["type"] == ga.__struct_config__.tag


def test_beta_item_created_and_content_types_are_accepted() -> None:
    frame = {
        "type": "conversation.item.created",
        "event_id": "e",
        "previous_item_id": None,
        "item": {
            "id": "item_1",
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "text", "text": "Hi "}, {"type": "audio", "transcript": "there"}],
        },
    }
    event = rt.parse_server_event(json.dumps(frame))
    assert isinstance(event, rt.ConversationItemCreated)
    assert isinstance(event, rt.ConversationItemEvent)  # treated like added/done
    assert isinstance(event.item.content, list)
    text, audio = event.item.content
    assert text.is_text and not text.is_audio
    assert audio.is_audio and not audio.is_text
    assert event.item.text == "Hi there"
    ga = rt.ContentPart(type="output_audio", transcript="x")
    assert ga.is_audio


# The beta flat session of protocols.md §1.6.2, every §1.5 field present.
BETA_SESSION = {
    "modalities": ["text", "audio"],
    "instructions": "Be kind.",
    "voice": "alloy",
    "input_audio_format": "g711_ulaw",
    "output_audio_format": "g711_alaw",
    "input_audio_transcription": {"model": "whisper-1", "language": "en", "prompt": ""},
    "input_audio_noise_reduction": {"type": "near_field"},
    "turn_detection": {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "create_response": True,
        "interrupt_response": True,
    },
    "tools": [],
    "tool_choice": "auto",
    "temperature": 0.8,
    "max_response_output_tokens": "inf",
    "speed": 1.0,
    "tracing": None,
}


def test_beta_flat_session_update_becomes_ga_nested() -> None:
    event = rt.parse_client_event(json.dumps({"type": "session.update", "session": BETA_SESSION}))
    assert isinstance(event, rt.SessionUpdate)
    s = event.session
    assert s.type == "realtime"
    assert s.output_modalities == ["audio"]
    assert s.instructions == "Be kind."
    assert s.max_output_tokens == "inf"
    assert s.tool_choice == "auto" and s.tools == []
    assert s.tracing is None
    assert isinstance(s.audio, rt.AudioConfig)
    assert isinstance(s.audio.input, rt.AudioInput) and isinstance(s.audio.output, rt.AudioOutput)
    assert s.audio.input.format == rt.PCMU
    assert s.audio.output.format == rt.PCMA
    assert s.audio.output.voice == "alloy"
    assert s.audio.output.speed == 1.0
    assert s.audio.input.noise_reduction == rt.NoiseReduction(type="near_field")
    assert s.audio.input.transcription == rt.InputTranscription(
        model="whisper-1", language="en", prompt=""
    )
    td = s.audio.input.turn_detection
    assert isinstance(td, rt.TurnDetection) and td.silence_duration_ms == 500
    wire = json.loads(rt.encode_event(event))["session"]
    assert not {"modalities", "voice", "temperature", "input_audio_format"} & wire.keys()


def test_beta_session_text_only_and_null_turn_detection() -> None:
    beta = {"modalities": ["text"], "turn_detection": None, "input_audio_format": "pcm16"}
    event = rt.parse_server_event(
        json.dumps({"type": "session.updated", "event_id": "e", "session": beta})
    )
    assert isinstance(event, rt.SessionUpdated)
    assert event.session.output_modalities == ["text"]
    assert isinstance(event.session.audio, rt.AudioConfig)
    assert isinstance(event.session.audio.input, rt.AudioInput)
    assert event.session.audio.input.turn_detection is None
    assert event.session.audio.input.format == rt.PCM16_24K


def test_beta_null_format_is_left_unset() -> None:
    frame = {"type": "session.update", "session": {"input_audio_format": None, "voice": "ash"}}
    event = rt.parse_client_event(json.dumps(frame))
    assert isinstance(event, rt.SessionUpdate)
    assert event.session.audio == rt.AudioConfig(output=rt.AudioOutput(voice="ash"))


def test_beta_unknown_audio_format_is_a_typed_error() -> None:
    with pytest.raises(RemoteProtocolError) as err:
        rt.parse_client_event(
            json.dumps({"type": "session.update", "session": {"input_audio_format": "mp3"}})
        )
    assert err.value.code == "invalid_event"
    assert "mp3" in err.value.message


def test_beta_response_shape_maps_onto_ga() -> None:
    beta_done = {
        "type": "response.done",
        "event_id": "e",
        "response": {
            "id": "resp_1",
            "object": "realtime.response",
            "status": "failed",
            "status_details": {
                "type": "failed",
                "error": {"type": "invalid_request_error", "code": "inference_rate_limit_exceeded"},
            },
            "output": [],
            "modalities": ["audio", "text"],
            "voice": "alloy",
            "output_audio_format": "g711_ulaw",
            "temperature": 0.8,
            "usage": None,
        },
    }
    event = rt.parse_server_event(json.dumps(beta_done))
    assert isinstance(event, rt.ResponseDone)
    r = event.response
    assert r.output_modalities == ["audio"]
    assert isinstance(r.audio, rt.ResponseAudio) and isinstance(
        r.audio.output, rt.ResponseAudioOutput
    )
    assert r.audio.output.voice == "alloy" and r.audio.output.format == rt.PCMU
    assert isinstance(r.status_details, rt.StatusDetails) and r.status_details.type == "failed"
    assert event.parley_usage() is None
    create = rt.parse_client_event(
        json.dumps(
            {
                "type": "response.create",
                "response": {
                    "modalities": ["text"],
                    "max_response_output_tokens": 50,
                    "temperature": 0.7,
                },
            }
        )
    )
    assert isinstance(create, rt.ResponseCreate)
    assert create.response == rt.ResponseParams(output_modalities=["text"], max_output_tokens=50)


def test_function_call_arguments_done_without_name_is_beta_and_accepted() -> None:
    event = rt.parse_server_event(
        json.dumps(
            {
                "type": "response.function_call_arguments.done",
                "event_id": "e",
                "response_id": "r",
                "item_id": "fc",
                "output_index": 0,
                "call_id": "call_1",
                "arguments": "{}",
            }
        )
    )
    assert isinstance(event, rt.ResponseFunctionCallArgumentsDone)
    assert event.name == "" and event.arguments == "{}"


# --- usage ------------------------------------------------------------------------------


def test_usage_of_the_real_ga_response_done() -> None:
    assert EXAMPLES, "the official examples file is missing"
    event = rt.parse_server_event(json.dumps(EXAMPLES["response.done"]["examples"][0]))
    assert isinstance(event, rt.ResponseDone)
    usage = event.parley_usage()
    assert usage == Usage(
        input_text_tokens=119,
        input_audio_tokens=13,
        input_image_tokens=0,
        cached_text_tokens=64,
        cached_audio_tokens=0,
        cached_image_tokens=0,
        output_text_tokens=30,
        output_audio_tokens=91,
    )
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (132, 121, 253)


BETA_USAGE = {
    "total_tokens": 821,
    "input_tokens": 789,
    "output_tokens": 32,
    "input_token_details": {
        "text_tokens": 313,
        "audio_tokens": 476,
        "cached_tokens": 640,
        "cached_tokens_details": {"text_tokens": 256, "audio_tokens": 384},
    },
    "output_token_details": {"text_tokens": 9, "audio_tokens": 23},
}


def test_usage_of_the_real_beta_era_block() -> None:
    frame = {
        "type": "response.done",
        "event_id": "e",
        "response": {"id": "resp_1", "status": "completed", "usage": BETA_USAGE},
    }
    event = rt.parse_server_event(json.dumps(frame))
    assert isinstance(event, rt.ResponseDone)
    usage = event.parley_usage()
    assert usage == Usage(
        input_text_tokens=313,
        input_audio_tokens=476,
        cached_text_tokens=256,
        cached_audio_tokens=384,
        output_text_tokens=9,
        output_audio_tokens=23,
    )
    assert usage.total_tokens == 821


def test_usage_without_cached_details_counts_cached_as_text() -> None:
    block = {
        "total_tokens": 30,
        "input_tokens": 20,
        "output_tokens": 10,
        "input_token_details": {"text_tokens": 12, "audio_tokens": 8, "cached_tokens": 6},
        "output_token_details": {"text_tokens": 4, "audio_tokens": 6},
    }
    usage = msgspec.convert(block, rt.ResponseUsage).to_usage()
    assert (usage.cached_text_tokens, usage.cached_audio_tokens) == (6, 0)
    assert rt.ResponseUsage().to_usage() == Usage()


def test_usage_round_trips_through_the_wire_block() -> None:
    usage = Usage(
        input_text_tokens=3,
        input_audio_tokens=4,
        input_image_tokens=1,
        cached_text_tokens=2,
        cached_audio_tokens=1,
        output_text_tokens=5,
        output_audio_tokens=6,
    )
    block = rt.ResponseUsage.from_usage(usage)
    assert block.total_tokens == usage.total_tokens
    assert block.input_token_details is not None and block.input_token_details.cached_tokens == 3
    assert block.to_usage() == usage


def test_transcription_usage_both_kinds() -> None:
    frame = {
        "type": "conversation.item.input_audio_transcription.completed",
        "event_id": "e",
        "item_id": "i",
        "content_index": 0,
        "transcript": "hi",
        "usage": {"type": "duration", "seconds": 1.5},
    }
    event = rt.parse_server_event(json.dumps(frame))
    assert isinstance(event, rt.InputAudioTranscriptionCompleted)
    assert event.usage == rt.TranscriptionUsage(type="duration", seconds=1.5)


# --- errors from the server are events -----------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (
            rt.ErrorCode.CONVERSATION_ALREADY_HAS_ACTIVE_RESPONSE,
            "Conversation already has an active response in progress: resp_abc. Wait until the "
            "response is finished before creating a new one.",
        ),
        (rt.ErrorCode.RESPONSE_CANCEL_NOT_ACTIVE, "Cancellation failed: no active response found"),
        (rt.ErrorCode.SESSION_EXPIRED, "Your session hit the maximum duration of 60 minutes."),
        (
            rt.ErrorCode.INPUT_AUDIO_BUFFER_COMMIT_EMPTY,
            "Error committing input audio buffer: buffer too small.",
        ),
    ],
)
def test_error_event_is_a_normal_event_with_its_code(code: rt.ErrorCode, message: str) -> None:
    frame = {
        "type": "error",
        "event_id": "event_1",
        "error": {
            "type": "invalid_request_error",
            "code": code.value,
            "message": message,
            "param": None,
            "event_id": None,
        },
    }
    event = rt.parse_server_event(json.dumps(frame))
    assert isinstance(event, rt.RealtimeErrorEvent)
    assert event.code == code and event.error.message == message


def test_error_event_from_a_rejected_client_frame() -> None:
    with pytest.raises(RemoteProtocolError) as err:
        rt.parse_client_event('{"event_id": "evt_7"}')
    event = rt.RealtimeErrorEvent.from_protocol_error(
        err.value, event_id="event_1", client_event_id="evt_7"
    )
    wire = json.loads(rt.encode_event(event))
    assert wire["error"] == {
        "type": "invalid_request_error",
        "code": "invalid_event",
        "message": "The 'type' field is missing.",
        "param": None,
        "event_id": "evt_7",
    }


# --- tolerance ----------------------------------------------------------------------------


def test_unknown_event_types_are_surfaced_not_fatal() -> None:
    frame = '{"type": "response.future_thing", "event_id": "e", "x": [1, 2]}'
    event = rt.parse_server_event(frame)
    assert isinstance(event, rt.UnknownServerEvent)
    assert event.type == "response.future_thing"
    assert event.raw["x"] == [1, 2]
    assert json.loads(rt.encode_event(event)) == json.loads(frame)
    client = rt.parse_client_event('{"type": "session.frobnicate"}')
    assert client == rt.UnknownClientEvent("session.frobnicate", {"type": "session.frobnicate"})


def test_unknown_fields_are_ignored() -> None:
    frame = {
        "type": "input_audio_buffer.speech_started",
        "event_id": "e",
        "audio_start_ms": 5,
        "item_id": "i",
        "brand_new_field": {"nested": True},
    }
    assert rt.parse_server_event(json.dumps(frame)) == rt.InputAudioBufferSpeechStarted(
        event_id="e", audio_start_ms=5, item_id="i"
    )


# --- bad frames: typed errors ------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code", "needle"),
    [
        ("not json", "invalid_json", "JSON"),
        (b"\xff\xfe{", "invalid_json", "JSON"),
        ('{"type": "error",', "invalid_json", "JSON"),
        ("[1, 2]", "invalid_event", "object"),
        ('"response.done"', "invalid_event", "object"),
        ("null", "invalid_event", "object"),
        ("{}", "invalid_event", "'type'"),
        ('{"type": 5}', "invalid_event", "'type'"),
        ('{"type": null}', "invalid_event", "'type'"),
        ('{"type": "   "}', "invalid_event", "'type'"),
        (
            '{"type": "input_audio_buffer.speech_started", "audio_start_ms": "soon", '
            '"item_id": "i"}',
            "invalid_event",
            "audio_start_ms",
        ),
        (
            '{"type": "input_audio_buffer.speech_stopped", "item_id": "i"}',
            "invalid_event",
            "audio_end_ms",
        ),
        (
            '{"type": "response.output_audio.delta", "response_id": "r", "item_id": "i", '
            '"output_index": 0, "content_index": 0, "delta": 7}',
            "invalid_event",
            "delta",
        ),
        (
            '{"type": "response.audio.delta", "response_id": "r", "item_id": "i", '
            '"output_index": "0", "content_index": 0, "delta": ""}',
            "invalid_event",
            "output_index",
        ),
        (
            '{"type": "session.updated", "session": {"audio": {"input": {"format": '
            '{"type": "audio/mp3"}}}}}',
            "invalid_event",
            "format",
        ),
        (
            '{"type": "response.done", "response": {"usage": {"input_tokens": "many"}}}',
            "invalid_event",
            "input_tokens",
        ),
        ("[" * 100_000, "invalid_json", ""),
        ("\ud800", "invalid_json", ""),
    ],
)
def test_bad_server_frames_are_typed_errors(frame: str | bytes, code: str, needle: str) -> None:
    with pytest.raises(RemoteProtocolError) as err:
        rt.parse_server_event(frame)
    assert err.value.code == code
    assert needle in err.value.message


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        (
            '{"type": "conversation.item.truncate", "item_id": "i", "audio_end_ms": 1.5}',
            "audio_end_ms",
        ),
        ('{"type": "conversation.item.create"}', "item"),
        ('{"type": "input_audio_buffer.append", "audio": null}', "audio"),
        ('{"type": "session.update", "session": {"type": "realtime", "tools": {}}}', "tools"),
        ('{"type": "session.update", "session": "fast"}', "session"),
    ],
)
def test_bad_client_frames_are_typed_errors(frame: str, needle: str) -> None:
    with pytest.raises(RemoteProtocolError) as err:
        rt.parse_client_event(frame)
    assert err.value.code == "invalid_event"
    assert needle in err.value.message


def test_oversized_frames_are_refused_before_decoding() -> None:
    audio = "A" * (rt.MAX_FRAME_BYTES + 1)
    frame = '{"type":"input_audio_buffer.append","audio":"' + audio + '"}'
    with pytest.raises(RemoteProtocolError) as err:
        rt.parse_client_event(frame)
    assert err.value.code == "frame_too_large"
    with pytest.raises(RemoteProtocolError) as err:
        rt.parse_server_event(b"{" + b" " * 100 + b"}", max_frame_bytes=64)
    assert err.value.code == "frame_too_large"
    # a full 15 MiB append fits
    full = '{"type":"input_audio_buffer.append","audio":"' + "A" * rt.MAX_AUDIO_APPEND_BYTES + '"}'
    assert isinstance(rt.parse_client_event(full), rt.InputAudioBufferAppend)


_KNOWN_TYPES = sorted(
    {cls.__struct_config__.tag for cls in get_args(rt.ServerEvent) + get_args(rt.ClientEvent)}
    | set(rt.BETA_EVENT_NAMES)
)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_field_names = st.sampled_from(
    [
        "event_id",
        "item_id",
        "response_id",
        "delta",
        "audio",
        "item",
        "session",
        "response",
        "content_index",
        "output_index",
        "audio_end_ms",
        "error",
        "part",
        "usage",
        "transcript",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), st.binary()))
def test_arbitrary_input_only_ever_raises_remote_protocol_error(data: str | bytes) -> None:
    for parse in (rt.parse_server_event, rt.parse_client_event):
        with contextlib.suppress(RemoteProtocolError):
            parse(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_KNOWN_TYPES),
    st.dictionaries(_field_names, _json_values, max_size=6),
)
def test_known_types_with_arbitrary_fields_only_raise_remote_protocol_error(
    event_type: str, fields: dict[str, Any]
) -> None:
    frame = json.dumps({"type": event_type, **fields})
    for parse in (rt.parse_server_event, rt.parse_client_event):
        try:
            event = parse(frame)
        except RemoteProtocolError:
            continue
        # whatever decoded must encode again and decode to the same event
        assert parse(rt.encode_event(event)) == event


# --- session helpers -------------------------------------------------------------------------


def test_merge_session_changes_only_present_fields() -> None:
    base = rt.Session(
        instructions="old",
        audio=rt.AudioConfig(
            input=rt.AudioInput(format=rt.PCM16_24K, turn_detection=rt.TurnDetection()),
            output=rt.AudioOutput(voice="marin", format=rt.PCM16_24K),
        ),
        tools=[rt.Tool(name="a")],
    )
    update = rt.Session(
        instructions="new",
        audio=rt.AudioConfig(input=rt.AudioInput(turn_detection=None, format=rt.PCMU)),
    )
    merged = rt.merge_session(base, update)
    assert merged.instructions == "new"
    assert merged.tools == [rt.Tool(name="a")]
    assert isinstance(merged.audio, rt.AudioConfig)
    assert merged.audio.input == rt.AudioInput(format=rt.PCMU, turn_detection=None)
    assert merged.audio.output == rt.AudioOutput(voice="marin", format=rt.PCM16_24K)
    cleared = rt.merge_session(merged, rt.Session(tools=[], instructions=""))
    assert cleared.tools == [] and cleared.instructions == ""


def test_formats_know_their_parley_encoding() -> None:
    assert (rt.PCM16_24K.encoding, rt.PCM16_24K.sample_rate) == ("pcm16", 24000)
    assert (rt.PCMU.encoding, rt.PCMU.sample_rate) == ("ulaw", 8000)
    assert (rt.PCMA.encoding, rt.PCMA.sample_rate) == ("alaw", 8000)
    for name, fmt in [
        ("g711_ulaw", rt.PCMU),
        ("pcmu", rt.PCMU),
        ("audio/pcma", rt.PCMA),
        ("pcm16", rt.PCM16_24K),
        ("pcm", rt.PCM16_24K),
    ]:
        assert rt.format_from_name(name) == fmt
    with pytest.raises(RemoteProtocolError):
        rt.format_from_name("flac")


def test_item_builders() -> None:
    audio_item = rt.ConversationItem.user_audio(b"\x00\x01")
    assert isinstance(audio_item.content, list)
    assert rt.decode_audio(audio_item.content[0].audio or "") == b"\x00\x01"
    assert rt.ConversationItem.system_text("s").role == "system"
    call = rt.ConversationItem.function_call("c1", "lookup", "{}")
    assert (call.type, call.call_id, call.name, call.arguments) == (
        "function_call",
        "c1",
        "lookup",
        "{}",
    )
    assert rt.ConversationItem.assistant_text("Hi").text == "Hi"
    assert rt.ConversationItem.function_call_output("c", "o").text == ""


def test_package_all_names_everything() -> None:
    for name in rt.__all__:
        assert hasattr(rt, name), name
    public = {n for n in dir(rt) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(rt.__all__) | {"Any"}

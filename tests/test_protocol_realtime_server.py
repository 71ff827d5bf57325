"""The Realtime server's state machine and response writer without a socket: typed
client events in, the server events a client would read out."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from parley.engines.playback import heard_text
from parley.errors import RemoteProtocolError
from parley.events import ToolCall, ToolResult
from parley.protocols import openai_realtime as rt
from parley.protocols.openai_realtime.server_conversation import (
    MAX_BUFFER_MS,
    InputBuffer,
    ServerConversation,
)

PCMU_MS = 8  # bytes per ms of µ-law


def conversation() -> ServerConversation:
    ids = itertools.count(1)
    return ServerConversation(lambda: f"event_{next(ids)}", heard_text, rate=16000)


def types(events: list[Any]) -> list[str]:
    return [e.__struct_config__.tag for e in events]


def user_item(text: str, item_id: str | None = None, previous: str | None = None) -> Any:
    item = rt.ConversationItem.user_text(text, id=item_id) if item_id else None
    item = item or rt.ConversationItem.user_text(text)
    if previous is None:
        return rt.ConversationItemCreate(item=item)
    return rt.ConversationItemCreate(item=item, previous_item_id=previous)


def respond(conv: ServerConversation, **kw: Any) -> rt.ServerResponse:
    defaults: dict[str, Any] = {"modalities": ["audio"], "out_format": rt.PCMU, "voice": "joe"}
    defaults.update(kw)
    return conv.create_response(None, **defaults)


def test_an_audio_reply_in_the_reference_order() -> None:
    conv = conversation()
    conv.create_item(user_item("hi", "item_u"))
    rec = respond(conv)
    turn, created = conv.begin(rec, "Be brief.")
    assert turn.texts == ["hi"] and types(created) == ["response.created"]
    conv.start(rec, turn.answered)
    assert conv.started("engine_1") and conv.live("engine_1") is rec
    events = conv.writer.text(rec.out, "Hello")
    events += conv.writer.audio(rec.out, bytes(450 * PCMU_MS))  # cut into 200 ms deltas
    events += conv.writer.text(rec.out, " there.")
    usage = rt.ResponseUsage(total_tokens=3)
    events += conv.finish(rec, "completed", lambda r: usage, tail=bytes(10 * PCMU_MS))
    assert types(events) == [
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_audio_transcript.delta",
        "response.output_audio.delta",
        "response.output_audio.delta",
        "response.output_audio.delta",
        "response.output_audio_transcript.delta",
        "response.output_audio.delta",  # the resampler's tail
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    assert events[1].previous_item_id == "item_u"
    audio = [e for e in events if isinstance(e, rt.ResponseOutputAudioDelta)]
    assert [len(e.audio_bytes()) for e in audio] == [1600, 1600, 400, 80]
    final = events[-1].response
    assert (final.status, final.usage, final.conversation_id) == (
        "completed",
        usage,
        "conv_default",
    )
    assert final.output[0].content[0].transcript == "Hello there."
    assert final.audio.output.format == rt.PCMU and final.audio.output.voice == "joe"
    assert rec.out.audio_ms == 460.0
    assert conv.items[-1].assistant_audio_ms == 460.0 and conv.active is None
    assert conv.finish(rec, "completed") == []  # once only
    # The input of the usage estimate: the user's text item, before the reply.
    assert rec.input_pieces == [("hi", 0.0, 0.0)] and rec.input_instructions == "Be brief."


def test_one_response_at_a_time_and_an_out_of_band_one() -> None:
    conv = conversation()
    first = respond(conv)
    with pytest.raises(RemoteProtocolError) as info:
        respond(conv)
    assert info.value.code == "conversation_already_has_active_response"
    assert first.id in info.value.message
    side = conv.create_response(
        rt.ResponseParams(conversation="none", input=[rt.ConversationItem.user_text("x")]),
        modalities=["text"],
        out_format=rt.PCM16_24K,
        voice=None,
    )
    assert side.out.conversation_id is None and side.inputs == ["x"]
    assert conv.cancellable("client_cancelled", "resp_other") is None
    assert conv.cancellable("client_cancelled", None) is first
    assert conv.cancellable("client_cancelled", None) is None  # already being cancelled
    events = conv.finish(first, "cancelled")
    done = events[-1].response
    assert (done.status, done.status_details.reason) == ("cancelled", "client_cancelled")
    with pytest.raises(RemoteProtocolError) as bad:
        conv.create_response(
            rt.ResponseParams(
                audio=rt.ResponseAudio(
                    output=rt.ResponseAudioOutput(
                        format=rt.RealtimeAudioFormat(type="audio/pcm", rate=16000)
                    )
                )
            ),
            modalities=["audio"],
            out_format=rt.PCM16_24K,
            voice=None,
        )
    assert bad.value.code == "invalid_value"


def test_truncating_the_reply_while_it_is_still_written() -> None:
    """The VoiceClient.interrupt() bug: the live item has audio before it is done."""
    conv = conversation()
    rec = respond(conv)
    conv.start(rec, conv.begin(rec, "")[0].answered)
    conv.writer.text(rec.out, "one two three four")
    conv.writer.audio(rec.out, bytes(400 * PCMU_MS))
    cut = rt.ConversationItemTruncate(item_id=rec.out.item_id, audio_end_ms=637)
    with pytest.raises(RemoteProtocolError) as info:
        conv.truncate(cut)  # longer than the 400 ms sent so far
    assert info.value.code == "invalid_value" and "(400 ms)" in info.value.message
    owner, events = conv.truncate(
        rt.ConversationItemTruncate(item_id=rec.out.item_id, audio_end_ms=250)
    )
    assert owner is rec and types(events) == ["conversation.item.truncated"]
    closed = conv.finish(rec, "cancelled")
    item = next(e for e in closed if e.__struct_config__.tag == "response.output_item.done").item
    assert item.status == "incomplete" and item.content[0].transcript == "one two"
    assert conv.items[0].assistant_audio_ms == 250.0


def test_truncating_a_finished_reply_and_what_cannot_be_truncated() -> None:
    conv = conversation()
    _, _ = conv.create_item(user_item("q", "item_u"))
    rec = respond(conv)
    conv.start(rec, [])
    conv.writer.text(rec.out, "alpha beta gamma delta")
    conv.writer.audio(rec.out, bytes(1000 * PCMU_MS))
    conv.finish(rec, "completed")
    owner, _ = conv.truncate(rt.ConversationItemTruncate(item_id=rec.out.item_id, audio_end_ms=500))
    assert owner is None
    stored = conv.find(rec.out.item_id).item
    assert stored.content[0].transcript == "alpha beta"
    for event, code in [
        (rt.ConversationItemTruncate(item_id="item_u", audio_end_ms=0), "invalid_value"),
        (rt.ConversationItemTruncate(item_id="nope", audio_end_ms=0), "item_not_found"),
        (
            rt.ConversationItemTruncate(item_id=rec.out.item_id, content_index=1, audio_end_ms=0),
            "invalid_value",
        ),
    ]:
        with pytest.raises(RemoteProtocolError) as info:
            conv.truncate(event)
        assert info.value.code == code


def test_items_in_order_with_previous_ids_and_validation() -> None:
    conv = conversation()
    assert types(conv.commit_audio("item_a", 1200.0)) == [
        "input_audio_buffer.committed",
        "conversation.item.added",
    ]
    done = conv.transcribed("item_a", "hello", report=True)
    assert types(done) == [
        "conversation.item.done",
        "conversation.item.input_audio_transcription.completed",
    ]
    assert done[1].usage.seconds == 1.2
    _, added = conv.create_item(user_item("first", "item_0", previous="root"))
    assert added[0].previous_item_id is None
    _, after = conv.create_item(user_item("middle", "item_m", previous="item_0"))
    assert after[0].previous_item_id == "item_0"
    assert [e.id for e in conv.items] == ["item_0", "item_m", "item_a"]
    for event, code in [
        (user_item("dup", "item_0"), "invalid_value"),
        (user_item("x", previous="missing"), "item_not_found"),
        (rt.ConversationItemCreate(item=rt.ConversationItem(type="message")), "invalid_event"),
        (rt.ConversationItemCreate(item=rt.ConversationItem(type="mcp_call")), "invalid_value"),
    ]:
        with pytest.raises(RemoteProtocolError) as info:
            conv.create_item(event)
        assert info.value.code == code
    entry, deleted = conv.delete_item("item_m")
    assert entry.id == "item_m" and types(deleted) == ["conversation.item.deleted"]
    assert conv.transcribed("item_m", "late", report=True) == []  # deleted meanwhile


def test_a_client_executed_call_is_answered_then_continued() -> None:
    conv = conversation()
    conv.create_item(user_item("weather?", "item_u"))
    rec = respond(conv)
    conv.start(rec, conv.begin(rec, "")[0].answered)
    conv.started("engine_1")
    shown = conv.show_call(ToolCall("call_1", "get_weather", '{"city": "Paris"}'))
    assert shown is not None
    pending, events = shown
    assert types(events) == [
        "response.output_item.added",
        "conversation.item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "conversation.item.done",
    ]
    conv.finish(rec, "completed")
    for call_id, code in [("call_x", "invalid_tool_call_id"), ("", "missing_required_parameter")]:
        with pytest.raises(RemoteProtocolError) as info:
            conv.create_item(
                rt.ConversationItemCreate(
                    item=rt.ConversationItem.function_call_output(call_id, "{}")
                )
            )
        assert info.value.code == code
    answer = rt.ConversationItem.function_call_output("call_1", '{"sky": "sunny"}')
    conv.create_item(rt.ConversationItemCreate(item=answer))
    assert pending.result == ToolResult("call_1", "get_weather", '{"sky": "sunny"}')
    with pytest.raises(RemoteProtocolError):  # one output per call
        conv.create_item(rt.ConversationItemCreate(item=answer))
    nxt = respond(conv)
    turn, _ = conv.begin(nxt, "")
    assert turn.answered == [pending] and turn.texts == []
    conv.start(nxt, turn.answered)
    assert pending.delivered and nxt.engine_id == "engine_1"
    assert conv.live("engine_1") is nxt  # the model's reply goes on in the new response


def test_an_expired_call_refuses_a_late_output() -> None:
    conv = conversation()
    rec = respond(conv)
    conv.start(rec, [])
    shown = conv.show_call(ToolCall("call_2", "slow", "{}"))
    assert shown is not None
    conv.finish(rec, "completed")
    conv.expire(shown[0], ToolResult("call_2", "slow", "timeout", True))
    assert conv.continuation(shown[0], modalities=["text"], out_format=rt.PCMU, voice=None)
    with pytest.raises(RemoteProtocolError) as info:
        conv.create_item(
            rt.ConversationItemCreate(item=rt.ConversationItem.function_call_output("call_2", "x"))
        )
    assert info.value.code == "invalid_tool_call_id" and "no longer waiting" in info.value.message


def test_input_buffer_is_bounded_and_a_commit_needs_100_ms() -> None:
    buffer = InputBuffer(16000, max_ms=1000.0)
    buffer.append(bytes(2 * 1600 * 5))  # 500 ms
    buffer.append(bytes(2 * 1600 * 8))  # 800 ms more: 300 ms dropped
    assert buffer.ms == 1000.0 and buffer.dropped_ms == pytest.approx(300.0)
    assert len(buffer.take()) == 2 * 16000 and buffer.ms == 0
    buffer.append(bytes(2 * 160 * 9))  # 90 ms
    with pytest.raises(RemoteProtocolError) as info:
        buffer.take()
    assert info.value.code == "input_audio_buffer_commit_empty"
    assert buffer.ms == 90.0  # a refused commit keeps the audio
    assert MAX_BUFFER_MS == 120_000.0

"""The Realtime client's state machine without a socket: server events in (the typed
structs the codec decodes), parley events and client events out."""

from __future__ import annotations

from typing import Any

import pytest

from parley.audio.format import OPENAI_PCM_FORMAT
from parley.engines import playback
from parley.events import (
    AudioDelta,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    Role,
    ToolCall,
    ToolResult,
    TranscriptDelta,
    TranscriptFinal,
    Usage,
    UserSpeechStarted,
)
from parley.protocols import openai_realtime as rt
from parley.protocols.openai_realtime.client_conversation import (
    Action,
    ClientConversation,
    HistoryItem,
    RunTools,
    Send,
    SessionExpired,
)

PCM_MS = 48  # bytes per ms of PCM16 24 kHz


def machine(*, server_cancels: bool = True) -> ClientConversation:
    return ClientConversation(
        playback, audio=OPENAI_PCM_FORMAT, server_cancels=server_cancels, transcription=True
    )


def sent(actions: list[Action]) -> list[Any]:
    return [a.event for a in actions if isinstance(a, Send)]


def emitted(actions: list[Action]) -> list[Any]:
    return [a for a in actions if not isinstance(a, Send | RunTools | SessionExpired)]


def scope(rid: str = "resp_1", item: str = "item_a") -> dict[str, Any]:
    return {"response_id": rid, "item_id": item, "output_index": 0, "content_index": 0}


def start_reply(conv: ClientConversation, words: list[str], *, now: float = 0.0) -> None:
    """response.created, the message item, then one word and 100 ms of audio per delta."""
    conv.receive(rt.ResponseCreated(response=rt.RealtimeResponse(id="resp_1")), now)
    item = rt.ConversationItem(type="message", id="item_a", role="assistant")
    conv.receive(rt.ResponseOutputItemAdded(response_id="resp_1", output_index=0, item=item), now)
    for i, word in enumerate(words):
        delta = word if i == 0 else f" {word}"
        conv.receive(rt.ResponseOutputAudioTranscriptDelta(delta=delta, **scope()), now)
        audio = rt.ResponseOutputAudioDelta.from_audio(bytes(100 * PCM_MS), **scope())
        conv.receive(audio, now)


def done(status: str = "completed", rid: str = "resp_1") -> rt.ResponseDone:
    return rt.ResponseDone(response=rt.RealtimeResponse(id=rid, status=status))  # type: ignore[arg-type]


def test_a_spoken_reply_maps_onto_parley_events_and_the_history() -> None:
    conv = machine()
    committed = conv.receive(rt.InputAudioBufferCommitted(item_id="item_u"), 0.0)
    assert committed == []  # the transcript comes later
    heard = conv.receive(
        rt.InputAudioTranscriptionCompleted(item_id="item_u", content_index=0, transcript=" hi "),
        0.0,
    )
    assert heard == [TranscriptFinal(Role.USER, "hi", "item_u")]
    created = conv.receive(rt.ResponseCreated(response=rt.RealtimeResponse(id="resp_1")), 0.0)
    assert created == [ResponseStarted("resp_1")]
    item = rt.ConversationItem(type="message", id="item_a", role="assistant")
    conv.receive(rt.ResponseOutputItemAdded(response_id="resp_1", output_index=0, item=item), 0)
    out = conv.receive(rt.ResponseOutputAudioTranscriptDelta(delta="Hello", **scope()), 0.0)
    assert out == [TranscriptDelta(Role.ASSISTANT, "Hello", "item_a")]
    audio = conv.receive(rt.ResponseOutputAudioDelta.from_audio(b"\x01\x00" * 2400, **scope()), 0)
    assert audio == [AudioDelta("resp_1", b"\x01\x00" * 2400, 24000, "pcm16")]
    assert conv.current is not None and conv.current.audio_ms == 100.0
    final = conv.receive(
        rt.ResponseOutputAudioTranscriptDone(transcript="Hello there.", **scope()), 0.0
    )
    assert final == [TranscriptFinal(Role.ASSISTANT, "Hello there.", "item_a")]
    usage = rt.ResponseUsage.from_usage(Usage(input_text_tokens=5, output_audio_tokens=7))
    wire_done = rt.ResponseDone(
        response=rt.RealtimeResponse(id="resp_1", status="completed", usage=usage)
    )
    (end,) = conv.receive(wire_done, 1.0)
    assert isinstance(end, ResponseDone) and (end.status, end.text) == ("completed", "Hello there.")
    assert conv.responses == 1 and conv.usage.total_tokens == 12
    assert conv.history == [("user", "hi"), ("assistant", "Hello there.")]


def test_barge_in_cuts_at_the_reported_position_in_whole_words() -> None:
    conv = machine(server_cancels=False)
    start_reply(conv, ["one", "two", "three", "four"])  # 400 ms of audio, 18 chars
    conv.report_playback("resp_1", 250.0)
    conv.report_playback("resp_1", 100.0)  # an older report never moves it back
    speech = rt.InputAudioBufferSpeechStarted(audio_start_ms=1234, item_id="item_u2")
    actions = conv.receive(speech, 0.1)
    cut, started = emitted(actions)
    # 250 / 400 of "one two three four" is "one two thr|ee": the cut word is dropped.
    assert cut == Interrupted("resp_1", "one two", 250.0)
    assert started == UserSpeechStarted(1234.0)
    truncate, cancel = sent(actions)
    assert isinstance(truncate, rt.ConversationItemTruncate)
    assert (truncate.item_id, truncate.audio_end_ms, truncate.content_index) == ("item_a", 250, 0)
    assert isinstance(cancel, rt.ResponseCancel)  # server VAD does not cancel here
    # Nothing more of the cut reply is shown; its done carries what was heard.
    more = rt.ResponseOutputAudioTranscriptDelta(delta=" five", **scope())
    assert conv.receive(more, 0.2) == []
    (end,) = conv.receive(done("cancelled"), 0.3)
    assert end == ResponseDone("resp_1", "cancelled", "one two", None)
    assert conv.history == [("assistant", "one two")]


def test_server_vad_cancels_by_itself_and_an_estimate_runs_in_real_time() -> None:
    conv = machine(server_cancels=True)
    start_reply(conv, ["alpha", "beta"], now=10.0)  # first audio at t=10 s, 200 ms
    actions = conv.receive(rt.InputAudioBufferSpeechStarted(audio_start_ms=0, item_id="u"), 10.1)
    (cut, _) = emitted(actions)
    assert isinstance(cut, Interrupted) and cut.played_ms == pytest.approx(100.0)
    assert [type(e) for e in sent(actions)] == [rt.ConversationItemTruncate]


def test_cancel_ends_the_reply_at_once_with_the_heard_text() -> None:
    conv = machine()
    start_reply(conv, ["red", "green", "blue"])  # 300 ms
    conv.report_playback("resp_1", 300.0)
    actions = conv.cancel("resp_1", 1.0)
    cancel, truncate = sent(actions)
    assert isinstance(cancel, rt.ResponseCancel) and cancel.response_id == "resp_1"
    assert isinstance(truncate, rt.ConversationItemTruncate) and truncate.audio_end_ms == 300
    assert emitted(actions) == [ResponseDone("resp_1", "cancelled", "red green blue")]
    # The server's own response.done adds usage but no second ResponseDone.
    assert conv.receive(done("cancelled"), 1.1) == []
    assert conv.responses == 1
    # Unknown and finished replies: nothing.
    assert conv.cancel("resp_1", 2.0) == [] and conv.cancel("nope", 2.0) == []


def test_a_cancel_after_the_reply_was_made_does_nothing() -> None:
    conv = machine()
    start_reply(conv, ["done"])
    conv.receive(done(), 0.0)
    assert conv.cancel("resp_1", 0.0) == []


def test_typed_text_tools_context_and_the_seed_of_a_new_session() -> None:
    conv = machine()
    conv.seed([HistoryItem("s1", "user", "earlier question"), HistoryItem("s2", "assistant", "")])
    actions = conv.user_text("what now", "what now?", 0.0, connected=False)
    create, response = sent(actions)
    assert isinstance(create, rt.ConversationItemCreate) and create.item.text == "what now"
    assert isinstance(response, rt.ResponseCreate)
    assert emitted(actions) == [TranscriptFinal(Role.USER, "what now?")]
    conv.context("account", "gold tier")
    conv.context("account", "platinum tier")  # replaces, does not pile up
    conv.receive(rt.ResponseCreated(response=rt.RealtimeResponse(id="resp_t")), 0.0)
    call_done = rt.ResponseFunctionCallArgumentsDone(
        response_id="resp_t",
        item_id="item_fc",
        output_index=0,
        call_id="call_1",
        name="lookup",
        arguments="{}",
    )
    assert conv.receive(call_done, 0.0) == [ToolCall("call_1", "lookup", "{}")]
    (_, tools) = conv.receive(done(rid="resp_t"), 0.0)
    assert tools == RunTools((ToolCall("call_1", "lookup", "{}"),))
    result = ToolResult("call_1", "lookup", '{"ok": true}')
    out = conv.tool_result(result)
    assert out[0] == result and isinstance(sent(out)[0], rt.ConversationItemCreate)
    assert isinstance(sent(conv.tools_done())[0], rt.ResponseCreate)
    # Typed while disconnected: the next session gets everything, then a reply.
    seed = conv.opening()
    assert [(e.item.type, e.item.text or e.item.output or e.item.name) for e in seed[:-1]] == [
        ("message", "earlier question"),  # the empty assistant turn is not sent
        ("message", "what now"),
        ("message", "platinum tier"),
        ("function_call", "lookup"),
        ("function_call_output", '{"ok": true}'),
    ]
    assert isinstance(seed[-1], rt.ResponseCreate)
    assert conv.opening()[-1:] != [rt.ResponseCreate()]  # asked for once


def test_a_lost_connection_ends_the_reply_incomplete_and_asks_again() -> None:
    conv = machine()
    start_reply(conv, ["half", "a"])
    assert conv.connection_lost() == [ResponseDone("resp_1", "incomplete", "half a")]
    assert conv.history == []  # the cut reply is not seeded as said
    assert isinstance(conv.opening()[-1], rt.ResponseCreate)
    assert conv.connection_lost() == []


def test_errors_cancel_not_active_and_session_expired() -> None:
    conv = machine()

    def error(code: str) -> rt.RealtimeErrorEvent:
        return rt.RealtimeErrorEvent(error=rt.ErrorDetail(type="x", code=code, message="m"))

    assert conv.receive(error("response_cancel_not_active"), 0.0) == []
    assert conv.receive(error("session_expired"), 0.0) == [SessionExpired()]
    (failure,) = conv.receive(error("rate_limit_exceeded"), 0.0)
    assert failure.code == "rate_limit_exceeded" and not failure.fatal  # type: ignore[union-attr]

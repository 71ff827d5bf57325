"""Conversation: state machine, transcript, metrics, hooks, audio formats, isolation,
driven through the in-memory transport by a SimulatedCaller (fake models)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from parley.audio.format import AudioFormat
from parley.conversation import (
    TRANSITIONS,
    Conversation,
    ConversationState,
    StateMachine,
)
from parley.engines import CascadeEngine
from parley.errors import LocalProtocolError, ProviderError, RemoteProtocolError
from parley.events import Event, Interrupted, ResponseDone, ResponseStarted, Role, TurnMetrics
from parley.testing.caller import SimulatedCaller
from parley.testing.fakes import FakeLLM, FakeSTT, FakeTTS, FakeVAD, tone
from parley.testing.transport import memory_transport_pair

S = ConversationState


def test_transition_table_covers_every_state_and_ended_is_final() -> None:
    assert set(TRANSITIONS) == set(ConversationState)
    assert TRANSITIONS[S.ENDED] == frozenset()
    assert all(S.ENDED in targets for state, targets in TRANSITIONS.items() if state is not S.ENDED)


def test_illegal_transition_raises() -> None:
    machine = StateMachine()
    machine.to(S.USER_SPEAKING)
    with pytest.raises(LocalProtocolError) as info:
        machine.to(S.SPEAKING)
    assert info.value.code == "illegal_transition"
    machine.to(S.ENDED)
    with pytest.raises(LocalProtocolError):
        machine.to(S.LISTENING)


class Recorder:
    def __init__(self) -> None:
        self.states: list[ConversationState] = []
        self.events: list[Event] = []
        self.started = self.ended = 0

    async def on_start(self, conv: Conversation) -> None:
        self.started += 1

    async def on_end(self, conv: Conversation) -> None:
        self.ended += 1

    async def on_event(self, conv: Conversation, event: Event) -> None:
        self.events.append(event)
        if not self.states or self.states[-1] is not conv.state:
            self.states.append(conv.state)


def engine(
    stt: FakeSTT | None = None, llm: FakeLLM | None = None, vad: FakeVAD | None = None
) -> CascadeEngine:
    return CascadeEngine(vad or FakeVAD(), stt or FakeSTT("hello"), llm or FakeLLM(), FakeTTS())


async def test_a_call_through_the_memory_transport() -> None:
    stream, peer = memory_transport_pair()
    rec = Recorder()
    llm = FakeLLM(["Hi there. How can I help?"])
    conv = Conversation(
        stream, engine(FakeSTT("hello"), llm),
        on_start=rec.on_start, on_end=rec.on_end, on_event=rec.on_event,
    )  # fmt: skip
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(conv.run())
        async with SimulatedCaller(peer, FakeTTS(ms_per_char=80), speed=8) as caller:
            await caller.say("hello")
            reply = await asyncio.wait_for(caller.wait_for_reply(), 5)
            await asyncio.wait_for(caller.wait_quiet(300), 5)
    await task
    assert rec.started == rec.ended == 1 and conv.state is S.ENDED
    assert rec.states[:4] == [S.USER_SPEAKING, S.THINKING, S.SPEAKING, S.LISTENING]
    assert [(t.role, t.text) for t in conv.transcript] == [
        (Role.USER, "hello"),
        (Role.ASSISTANT, "Hi there. How can I help?"),
    ]
    assert all(t.ended_at is not None and t.ended_at >= t.started_at for t in conv.transcript)
    assert reply.text == "Hi there. How can I help?"
    # The caller heard every sample the TTS made (16 kHz in, 16 kHz out here).
    spoken_chars = len("Hi there.") + len("How can I help?")  # clause by clause, 60 ms a char
    assert len(reply.heard) == pytest.approx(2 * 16 * 60 * spoken_chars, rel=0.02)
    # The engine's figures of the turn reach the call's observer (the switchboard's
    # meter turns them into ConversationMetrics: tests/test_analytics_server.py).
    (metrics,) = [e for e in rec.events if isinstance(e, TurnMetrics)]
    assert metrics.voice_to_voice_ms is not None


async def test_phone_formats_are_converted_both_ways() -> None:
    ulaw8k = AudioFormat("ulaw", 8000)
    stream, peer = memory_transport_pair(ulaw8k)
    conv = Conversation(stream, engine(llm=FakeLLM(["Okay then."])))
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(conv.run())
        async with SimulatedCaller(peer, FakeTTS(ms_per_char=80), speed=8) as caller:
            await caller.say("hello")
            reply = await asyncio.wait_for(caller.wait_for_reply(), 5)
            await asyncio.wait_for(caller.wait_quiet(300), 5)
    await task
    heard = np.frombuffer(bytes(reply.heard), dtype="<i2").astype(np.float64)
    # 16 kHz tone → 8 kHz µ-law: the right length, and still a loud 440 Hz tone.
    assert len(heard) == pytest.approx(8 * 60 * len("Okay then."), rel=0.05)
    spectrum = np.abs(np.fft.rfft(heard))
    assert np.fft.rfftfreq(len(heard), 1 / 8000)[spectrum.argmax()] == pytest.approx(440, abs=5)


async def test_barge_in_clears_the_phone_and_marks_the_turn() -> None:
    stream, peer = memory_transport_pair()
    long_reply = " ".join(["This reply goes on and on."] * 8)
    conv = Conversation(stream, engine(FakeSTT(["tell me", "stop"]), FakeLLM([long_reply, "Ok."])))
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(conv.run())
        async with SimulatedCaller(peer, FakeTTS(ms_per_char=40), speed=4) as caller:
            await caller.say("tell me")
            reply = await asyncio.wait_for(caller.wait_for_reply(), 5)
            await asyncio.wait_for(caller.wait_heard_ms(reply.response_id, 1500), 5)
            await caller.say("stop")
            await asyncio.wait_for(caller.wait_quiet(500), 10)
    await task
    assistant = [t for t in conv.transcript if t.role is Role.ASSISTANT]
    cut = assistant[0]
    assert cut.interrupted and cut.text and long_reply.startswith(cut.text)
    assert len(cut.text) < len(long_reply) / 2
    assert reply.cleared and reply.audio_after_clear == 0
    assert len(reply.heard) < len(reply.received) or len(reply.received) < 2 * 16 * 40 * len(
        long_reply
    )


async def test_a_failing_call_does_not_affect_another() -> None:
    good_stream, good_peer = memory_transport_pair()
    bad_stream, bad_peer = memory_transport_pair()
    good = Conversation(good_stream, engine(llm=FakeLLM(["Fine."])))
    bad = Conversation(bad_stream, engine(vad=FakeVAD(error=ProviderError("vad gone"))))
    async with asyncio.TaskGroup() as tg:
        tg.create_task(good.run())
        bad_task = tg.create_task(bad.run())
        async with SimulatedCaller(good_peer, FakeTTS(ms_per_char=80), speed=8) as caller:
            await caller.say("hello")
            await asyncio.wait_for(caller.wait_for_reply(), 5)
            await asyncio.wait_for(caller.wait_quiet(300), 5)
        await bad_peer.hangup()
        await bad_task
    assert bad.state is S.ENDED and bad.error is not None and bad.error.fatal
    assert "vad gone" in bad.error.message
    assert good.error is None
    assert [t.text for t in good.transcript] == ["hello", "Fine."]


async def test_cancelling_run_cancels_everything_and_closes_the_stream() -> None:
    stream, peer = memory_transport_pair()
    answered = asyncio.Event()

    async def on_event(_c: Conversation, event: Event) -> None:
        if isinstance(event, ResponseStarted):
            answered.set()

    conv = Conversation(stream, engine(), on_event=on_event)
    task = asyncio.create_task(conv.run())
    await peer.send_text("hello")
    await asyncio.wait_for(answered.wait(), 5)  # the call is under way: engine, pumps, reply
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stream.closed and conv.state is S.ENDED


async def test_end_from_our_side_and_typed_text() -> None:
    stream, peer = memory_transport_pair()
    events: list[Any] = []

    async def on_event(conv: Conversation, event: Event) -> None:
        events.append(event)
        if isinstance(event, ResponseDone):
            await conv.end()

    conv = Conversation(stream, engine(llm=FakeLLM(["Typed back."])), on_event=on_event)
    await peer.send_text("hi")
    await asyncio.wait_for(conv.run(), 5)
    assert [(t.role, t.text) for t in conv.transcript] == [
        (Role.USER, "hi"),
        (Role.ASSISTANT, "Typed back."),
    ]
    assert not any(isinstance(e, Interrupted) for e in events)


async def test_malformed_pcm_from_the_peer_is_a_remote_protocol_error() -> None:
    stream, peer = memory_transport_pair()
    conv = Conversation(stream, engine())
    await peer.send_audio(b"\x00\x01\x02")  # not whole PCM16 samples
    await asyncio.wait_for(conv.run(), 5)
    assert conv.error is not None and conv.error.code == "bad_audio_length"
    assert issubclass(RemoteProtocolError, Exception)


def test_tone_helper_is_loud() -> None:
    assert np.abs(np.frombuffer(tone(50), dtype="<i2")).max() > 7000

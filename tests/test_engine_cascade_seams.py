"""The cascade's declared capabilities: HistorySeedable (proved by the first request
the OpenAI wire server records), Cancellable (the model's HTTP stream is closed),
and CallEngine as a whole; plus failover onto a plain CascadeEngine that carries
the conversation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from parley.audio.format import OPENAI_PCM_FORMAT
from parley.conversation import Conversation
from parley.engines.cascade import CascadeConfig, CascadeEngine
from parley.engines.failover import FailoverEngine
from parley.engines.realtime import RealtimeConfig, RealtimeEngine
from parley.engines.seams import CallEngine, missing_capabilities
from parley.events import (
    AudioDelta,
    Event,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    Role,
    ToolCall,
)
from parley.providers.openai_llm import OpenAILLM
from parley.providers.seams import LLM, Message
from parley.testing import (
    EventLog,
    FakeLLM,
    FakeSTT,
    FakeTTS,
    FakeVAD,
    OpenAIWireServer,
    RealtimeUpstream,
    ScriptedReply,
    ScriptedResponse,
    silence,
    split_words,
    tone,
)
from parley.testing.transport import memory_transport_pair

RATE = 16000


@asynccontextmanager
async def running(engine: CascadeEngine) -> AsyncIterator[EventLog]:
    log = EventLog(engine)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(engine.run())
        tg.create_task(log.collect())
        yield log
        await engine.close()


def cascade(
    llm: LLM, config: CascadeConfig | None = None, *, tts: FakeTTS | None = None
) -> CascadeEngine:
    stt = FakeSTT(["what about my order"])
    return CascadeEngine(FakeVAD(RATE), stt, llm, tts or FakeTTS(RATE), config)


def test_the_cascade_is_a_call_engine() -> None:
    engine: CallEngine = cascade(FakeLLM())  # mypy: see also the check in cascade.py
    assert isinstance(engine, CallEngine) and missing_capabilities(engine) == []


# -- seed_history -------------------------------------------------------------------------


async def test_seeded_turns_lead_the_first_llm_request() -> None:
    earlier = [
        Message(Role.USER, "My name is Ada."),
        Message(Role.ASSISTANT, "Nice to meet you, Ada."),
    ]
    async with OpenAIWireServer() as server:
        server.script(ScriptedReply(text=split_words("You are Ada.")))
        llm = OpenAILLM("gpt-4o-mini", base_url=server.openai_base_url, max_retries=0)
        engine = cascade(llm, CascadeConfig(instructions="Be brief."))
        engine.seed_history(earlier)
        async with running(engine) as log:
            await engine.send_text("What is my name?")
            await log.until(lambda: bool(log.of(ResponseDone)), 15)
        await llm.aclose()
        (first,) = server.chat_requests
    assert first["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
        {"role": "user", "content": "What is my name?"},
    ]
    assert [m.content for m in engine.history][-1] == "You are Ada."


def test_seeding_replaces_the_history_and_keeps_the_newest_max_history() -> None:
    engine = cascade(FakeLLM(), CascadeConfig(max_history=3))
    call = ToolCall("c1", "lookup", "{}")
    engine.seed_history([Message(Role.USER, "old")])
    engine.seed_history(
        [
            Message(Role.USER, "one"),
            Message(Role.ASSISTANT, "", tool_calls=(call,)),
            Message(Role.TOOL, "{}", tool_call_id="c1", name="lookup"),
            Message(Role.ASSISTANT, "two"),
            Message(Role.USER, "three"),
        ]
    )
    # The cut fell between a tool call and its result: the orphaned result goes too.
    assert [(m.role, m.content) for m in engine.history] == [
        (Role.ASSISTANT, "two"),
        (Role.USER, "three"),
    ]


# -- cancel_response ----------------------------------------------------------------------


async def test_cancel_response_stops_the_llm_and_tts_and_keeps_what_was_heard() -> None:
    tts = FakeTTS(RATE)
    words = "Sure thing. " + " ".join(f"Item number {i} is ready." for i in range(40))
    async with OpenAIWireServer() as server:
        server.script(
            ScriptedReply(text=split_words(words), chunk_delay_s=0.05),
            ScriptedReply(text=split_words("Next answer.")),
        )
        llm = OpenAILLM("gpt-4o-mini", base_url=server.openai_base_url, max_retries=0)
        engine = cascade(llm, tts=tts)
        async with running(engine) as log:
            await engine.send_text("List everything")
            await log.until(lambda: bool(log.of(AudioDelta)), 15)
            rid = log.of(ResponseStarted)[0].response_id
            await engine.report_playback(rid, tts.duration_ms("Sure thing."))
            await engine.cancel_response(rid)
            await log.until(lambda: bool(log.of(ResponseDone)))
            (done,) = log.of(ResponseDone)
            n_audio = len(log.of(AudioDelta))
            # A finished or unknown reply: nothing happens.
            await engine.cancel_response(rid)
            await engine.cancel_response("resp_nope")
            outcome = await server.requests[0].wait_finished()
            await engine.send_text("And now?")
            await log.until(lambda: len(log.of(ResponseDone)) == 2, 15)
        await llm.aclose()
    assert (done.status, done.text) == ("cancelled", "Sure thing.")
    assert outcome == "disconnected"  # the model's HTTP stream was closed
    assert server.requests[0].chunks_sent < len(split_words(words))
    audio_after = [e for e in log.of(AudioDelta) if e.response_id == rid]
    assert len(audio_after) == n_audio  # no more of it
    assert tts.texts == ["Sure thing.", "Next answer."]
    assert not log.of(Interrupted)  # a cancel is not a barge-in
    assert [d.status for d in log.of(ResponseDone)] == ["cancelled", "completed"]
    second = server.chat_requests[1]["messages"]
    assert second[-3:] == [
        {"role": "user", "content": "List everything"},
        {"role": "assistant", "content": "Sure thing."},
        {"role": "user", "content": "And now?"},
    ]


async def test_cancel_of_a_finished_reply_changes_nothing() -> None:
    engine = cascade(FakeLLM(["All done."]))
    async with running(engine) as log:
        await engine.send_text("hi")
        await log.until(lambda: bool(log.of(ResponseDone)))
        await engine.cancel_response(log.of(ResponseDone)[0].response_id)
        history = engine.history
    assert [d.status for d in log.of(ResponseDone)] == ["completed"]
    assert history[-1].content == "All done."


# -- failover onto the plain cascade --------------------------------------------------------


async def test_failover_carries_the_conversation_into_the_cascades_first_request() -> None:
    async with RealtimeUpstream(turn_audio_ms=200) as up, OpenAIWireServer() as server:
        up.script(ScriptedResponse("Your order shipped.", user_transcript="where is my order"))
        server.script(ScriptedReply(text=split_words("It arrives tomorrow.")))
        llm = OpenAILLM("gpt-4o-mini", base_url=server.openai_base_url, max_retries=0)
        realtime = RealtimeEngine(
            RealtimeConfig(url=up.url, api_key="sk-test", connect_attempts=2,
                           backoff_initial_s=0.01, backoff_max_s=0.02)
        )  # fmt: skip
        engine = FailoverEngine(realtime, cascade(llm))
        stream, peer = memory_transport_pair(OPENAI_PCM_FORMAT, maxsize=10_000)
        events: list[Event] = []
        changed = asyncio.Event()

        async def on_event(_c: Conversation, ev: Event) -> None:
            events.append(ev)
            changed.set()

        async def until(pred: Callable[[], bool]) -> None:
            async with asyncio.timeout(15):
                while not pred():
                    changed.clear()
                    await changed.wait()

        def done() -> list[ResponseDone]:
            return [e for e in events if isinstance(e, ResponseDone) and e.status == "completed"]

        async def listen() -> None:
            async for _out in peer:  # the caller's speaker
                pass

        conv = Conversation(stream, engine, on_event=on_event)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(conv.run())
            tg.create_task(listen())
            await up.until(lambda: bool(up.connections))
            await peer.send_audio(bytes(200 * 48))  # one turn on the realtime engine
            await until(lambda: len(done()) == 1)
            await peer.report_playback(done()[0].response_id, 1e9)
            up.refuse_connections = True
            await up.drop()  # the realtime socket dies and does not come back
            await until(lambda: engine.active == "cascade")
            audio = tone(480, 24000) + silence(1000, 24000)
            for k in range(0, len(audio), 960):
                await peer.send_audio(audio[k : k + 960])
            await until(lambda: len(done()) == 2)
            await peer.hangup()
        await llm.aclose()
        (first,) = server.chat_requests
    assert [d.text for d in done()] == ["Your order shipped.", "It arrives tomorrow."]
    assert first["messages"] == [
        {"role": "user", "content": "where is my order"},
        {"role": "assistant", "content": "Your order shipped."},
        {"role": "user", "content": "what about my order"},
    ]

"""FailoverEngine: a RealtimeEngine against the fake upstream as primary, a real
CascadeEngine (with the deterministic provider fakes) as fallback, inside a real
Conversation on the in-memory transport."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from parley.audio.format import OPENAI_PCM_FORMAT
from parley.conversation import Conversation
from parley.engines.cascade import CascadeEngine
from parley.engines.failover import FailoverEngine, FailoverPolicy, switch_count
from parley.engines.realtime import RealtimeConfig, RealtimeEngine
from parley.engines.seams import HistorySeedable
from parley.events import EngineSwitched, ErrorEvent, Event, ResponseDone, Role
from parley.providers.openai_llm import OpenAILLM
from parley.providers.seams import LLM
from parley.realtime_server import RealtimeBackend, cascade_maker, create_realtime_app
from parley.testing import OpenAIWireServer, ScriptedReply
from parley.testing.fakes import FakeLLM, FakeSTT, FakeTTS, FakeVAD, silence, tone
from parley.testing.realtime_upstream import RealtimeUpstream, ScriptedResponse
from parley.testing.transport import MemoryPeer, ReplyAudio, memory_transport_pair
from servers import serve_asgi

PCM_MS = 48  # PCM16 24 kHz


def realtime(up: RealtimeUpstream, attempts: int = 3) -> RealtimeEngine:
    return RealtimeEngine(
        RealtimeConfig(
            url=up.url,
            api_key="sk-test",
            connect_attempts=attempts,
            backoff_initial_s=0.01,
            backoff_max_s=0.02,
        )
    )


def cascade(llm: LLM) -> CascadeEngine:
    return CascadeEngine(FakeVAD(16000), FakeSTT(["what about my order"]), llm, FakeTTS(16000))


async def speak(peer: MemoryPeer) -> None:
    """One spoken turn as 24 kHz PCM16: 480 ms of tone, then a second of silence."""
    audio = tone(480, 24000) + silence(1000, 24000)
    for k in range(0, len(audio), 20 * PCM_MS):
        await peer.send_audio(audio[k : k + 20 * PCM_MS])


class Call:
    def __init__(self, engine: FailoverEngine) -> None:
        self.stream, self.peer = memory_transport_pair(OPENAI_PCM_FORMAT, maxsize=10_000)
        self.events: list[Event] = []
        self.changed = asyncio.Event()
        self.conv = Conversation(self.stream, engine, on_event=self.on_event)
        self.heard: dict[str, int] = {}

    async def on_event(self, _c: Conversation, ev: Event) -> None:
        self.events.append(ev)
        self.changed.set()

    async def listen(self) -> None:
        async for out in self.peer:
            if isinstance(out, ReplyAudio):
                self.heard[out.response_id] = self.heard.get(out.response_id, 0) + len(out.audio)

    def done(self) -> list[ResponseDone]:
        return [e for e in self.events if isinstance(e, ResponseDone) and e.status == "completed"]

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]

    async def until(self, predicate: Callable[[], bool], limit_s: float = 10.0) -> None:
        """Wait until ``predicate()`` holds, checked at each event of the call."""
        async with asyncio.timeout(limit_s):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    async def until_done(self, n: int) -> None:
        await self.until(lambda: len(self.done()) >= n)


async def test_refused_upstream_continues_on_the_cascade() -> None:
    before = switch_count()
    async with RealtimeUpstream() as up:
        up.refuse_connections = True
        llm = FakeLLM(["The cascade answers."])
        engine = FailoverEngine(realtime(up), lambda: cascade(llm))
        call = Call(engine)
        task = asyncio.create_task(call.conv.run())
        listener = asyncio.create_task(call.listen())
        await speak(call.peer)
        await call.until_done(1)
        await call.peer.hangup()
        await asyncio.wait_for(task, 5)
        await asyncio.wait_for(listener, 5)
    assert up.refused == 3 and not up.connections
    switched = [e for e in call.events if isinstance(e, EngineSwitched)]
    assert len(switched) == 1
    assert (switched[0].previous, switched[0].current) == ("realtime", "cascade")
    assert "ProviderError" in switched[0].reason
    assert engine.switches == 1 and switch_count() == before + 1 and engine.active == "cascade"
    reply = call.done()[0]
    assert reply.text == "The cascade answers."
    assert call.heard[reply.response_id] > 0  # the caller hears the fallback
    users = [t.text for t in call.conv.transcript if t.role is Role.USER]
    assert users == ["what about my order"]
    assert call.conv.error is None


async def test_mid_call_drop_with_no_way_back_carries_the_conversation() -> None:
    async with RealtimeUpstream(turn_audio_ms=200) as up:
        up.script(ScriptedResponse("Your order shipped.", user_transcript="where is my order"))
        llm = FakeLLM(["It arrives tomorrow."])
        fallback = cascade(llm)  # the plain cascade: it implements HistorySeedable itself
        assert isinstance(fallback, HistorySeedable)
        engine = FailoverEngine(realtime(up), fallback)
        await engine.update(instructions="Be kind.")
        await engine.inject_context("account", {"tier": "gold"})
        call = Call(engine)
        task = asyncio.create_task(call.conv.run())
        listener = asyncio.create_task(call.listen())
        await up.until(lambda: bool(up.connections))
        await call.peer.send_audio(bytes(200 * PCM_MS))  # one turn on the realtime engine
        await call.until_done(1)
        await call.peer.report_playback(call.done()[0].response_id, 1e9)
        up.refuse_connections = True
        await up.drop()  # the upstream dies and does not come back
        await call.until(lambda: bool(call.of(EngineSwitched)))
        assert engine.active == "cascade"
        await speak(call.peer)
        await call.until_done(2)
        await call.peer.hangup()
        await asyncio.wait_for(task, 5)
        await asyncio.wait_for(listener, 5)
    assert [d.text for d in call.done()] == ["Your order shipped.", "It arrives tomorrow."]
    messages, _tools = llm.requests[0]
    said = [(m.role, m.content) for m in messages]
    assert said[0][0] is Role.SYSTEM and "Be kind." in said[0][1] and "gold" in said[0][1]
    assert said[1:] == [
        (Role.USER, "where is my order"),
        (Role.ASSISTANT, "Your order shipped."),
        (Role.USER, "what about my order"),
    ]
    assert all(n > 0 for n in call.heard.values()) and len(call.heard) == 2


async def test_repeated_errors_within_the_window_switch() -> None:
    async with RealtimeUpstream() as up:
        llm = FakeLLM(["Fallback here."])
        engine = FailoverEngine(
            realtime(up),
            lambda: cascade(llm),
            policy=FailoverPolicy(max_failures=3, window_s=10),
        )
        call = Call(engine)
        task = asyncio.create_task(call.conv.run())
        await up.until(lambda: bool(up.connections) and bool(up.current.events))
        for _ in range(2):
            await up.send_error("server_error", "The server had an error")
        await call.until(lambda: len(call.of(ErrorEvent)) == 2)  # both seen by the engine
        assert engine.active == "realtime"  # two failures: not yet
        await up.send_error("server_error", "The server had an error")
        await call.until(lambda: bool(call.of(EngineSwitched)))
        assert engine.active == "cascade"
        await call.peer.hangup()
        await asyncio.wait_for(task, 5)
    switched = [e for e in call.events if isinstance(e, EngineSwitched)]
    assert len(switched) == 1 and "server_error" in switched[0].reason
    assert up.connections[0].closed  # the primary was shut down


async def test_a_killed_local_realtime_server_fails_over_with_the_history() -> None:
    """RealtimeEngine against Parley's own /v1/realtime (its cascade on deterministic
    providers, real protocol over a real socket); the server dies mid-call, so the
    failover's cascade takes over, and its first request to the loopback OpenAI-wire
    server carries the earlier turns."""
    vad = FakeVAD(16000)
    upstream_brain = FakeLLM(["Your order shipped."])
    local = create_realtime_app(
        backend=RealtimeBackend(vad=vad, stt=FakeSTT(["where is my order"]), voices=("tone",)),
        make_engine=cascade_maker(vad, FakeSTT(), upstream_brain, FakeTTS(24000)),
        warmup=False,
    )
    async with OpenAIWireServer() as wire:
        wire.script(ScriptedReply(("It arrives tomorrow.",)))
        llm = OpenAILLM("gpt-4o-mini", base_url=wire.openai_base_url, api_key="k", max_retries=0)
        async with serve_asgi(local) as port:
            primary = RealtimeEngine(
                RealtimeConfig(
                    url=f"ws://127.0.0.1:{port}/v1/realtime",
                    api_key="sk-test",
                    connect_attempts=2,
                    backoff_initial_s=0.01,
                    backoff_max_s=0.02,
                )
            )
            engine = FailoverEngine(primary, lambda: cascade(llm))
            call = Call(engine)
            task = asyncio.create_task(call.conv.run())
            listener = asyncio.create_task(call.listen())
            await speak(call.peer)  # the first turn: the local server hears and answers
            await call.until_done(1)
            await call.peer.report_playback(call.done()[0].response_id, 1e9)
        # serve_asgi's exit stopped the server: the socket is gone and nothing listens.
        await call.until(lambda: bool(call.of(EngineSwitched)))
        assert engine.active == "cascade"
        await speak(call.peer)
        await call.until_done(2)
        await call.peer.hangup()
        await asyncio.wait_for(task, 5)
        await asyncio.wait_for(listener, 5)
        await llm.aclose()
        first = wire.chat_requests[0]
    assert [d.text for d in call.done()] == ["Your order shipped.", "It arrives tomorrow."]
    assert first["messages"][-3:] == [
        {"role": "user", "content": "where is my order"},
        {"role": "assistant", "content": "Your order shipped."},
        {"role": "user", "content": "what about my order"},
    ]
    switched = [e for e in call.events if isinstance(e, EngineSwitched)]
    assert len(switched) == 1 and switched[0].current == "cascade"

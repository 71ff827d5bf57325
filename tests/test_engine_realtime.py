"""RealtimeEngine against the fake GA upstream on a real loopback WebSocket: session
config, event mapping, tools, barge-in, usage and cost, reconnects under faults,
rollover, session_expired, and µ-law pass-through."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from parley.audio.format import OPENAI_PCM_FORMAT, TWILIO_FORMAT
from parley.audio.resample import StreamResampler
from parley.audio.transcode import Transcoder
from parley.conversation import Conversation, ToolRegistry
from parley.engines.realtime import RealtimeConfig, RealtimeEngine
from parley.errors import AuthError, ProviderError
from parley.events import (
    AudioDelta,
    ErrorEvent,
    Event,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    Role,
    ToolCall,
    ToolResult,
    TranscriptFinal,
    Usage,
    UserSpeechStarted,
    UserSpeechStopped,
)
from parley.protocols.openai_realtime import (
    ConversationItemCreate,
    ResponseCancel,
    ResponseCreate,
    SessionUpdate,
    TurnDetection,
)
from parley.providers.seams import Message
from parley.testing.events import EventLog
from parley.testing.realtime_upstream import (
    RealtimeUpstream,
    ScriptedFunctionCall,
    ScriptedResponse,
)
from parley.testing.transport import memory_transport_pair

PCM_MS = 48  # bytes per ms of PCM16 24 kHz
GA_USAGE = Usage(  # the GA spec's response.done example (resp_CCXHw0UJld10EzIUXQCNh)
    input_text_tokens=119,
    input_audio_tokens=13,
    cached_text_tokens=64,
    output_text_tokens=30,
    output_audio_tokens=91,
)
BETA_USAGE = Usage(  # the Dec 2024 usage block of protocols.md §6
    input_text_tokens=313,
    input_audio_tokens=476,
    cached_text_tokens=256,
    cached_audio_tokens=384,
    output_text_tokens=9,
    output_audio_tokens=23,
)


def config(up: RealtimeUpstream, **kw: Any) -> RealtimeConfig:
    base: dict[str, Any] = {
        "url": up.url,
        "api_key": "sk-test",
        "connect_attempts": 3,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "connect_timeout_s": 2.0,
    }
    base.update(kw)
    return RealtimeConfig(**base)


class Run(EventLog):
    """An engine running in the background, with every event it emitted so far."""

    engine: RealtimeEngine


@asynccontextmanager
async def running(engine: RealtimeEngine) -> AsyncIterator[Run]:
    run = Run(engine)
    task = asyncio.create_task(engine.run())
    pump = asyncio.create_task(run.collect())
    try:
        yield run
    finally:
        await engine.close()
        await asyncio.wait_for(task, 5)
        await asyncio.wait_for(pump, 5)


async def test_connects_with_bearer_and_sends_the_session() -> None:
    tools = ToolRegistry()

    @tools.register
    async def order_status(order_id: str) -> str:
        """Look up an order."""
        return f"order {order_id} shipped"

    async with RealtimeUpstream() as up:
        cfg = config(
            up,
            model="gpt-realtime-2025-08-28",
            instructions="Be brief.",
            voice="cedar",
            turn_detection=TurnDetection(type="semantic_vad", eagerness="high"),
        )
        async with running(RealtimeEngine(cfg, tools=tools)):
            await up.until(lambda: bool(up.connections) and bool(up.current.events))
        conn = up.connections[0]
        assert conn.headers["Authorization"] == "Bearer sk-test"
        assert conn.path == "/v1/realtime?model=gpt-realtime-2025-08-28"
        first = conn.events[0]
        assert isinstance(first, SessionUpdate)
        s = conn.session  # as the server merged it
        assert s.instructions == "Be brief."
        assert s.audio.output.voice == "cedar"  # type: ignore[union-attr]
        assert s.audio.input.format.type == "audio/pcm"  # type: ignore[union-attr]
        td = s.audio.input.turn_detection  # type: ignore[union-attr]
        assert td.type == "semantic_vad" and td.eagerness == "high"  # type: ignore[union-attr]
        assert [t.name for t in s.tools] == ["order_status"]  # type: ignore[union-attr]


async def test_refused_key_is_an_auth_error_without_retries() -> None:
    async with RealtimeUpstream(api_key="right") as up:
        engine = RealtimeEngine(config(up, api_key="wrong"))
        with pytest.raises(AuthError):
            await engine.run()
        assert up.connections == []


async def test_unreachable_upstream_is_a_provider_error_after_retries() -> None:
    async with RealtimeUpstream() as up:
        up.refuse_connections = True
        engine = RealtimeEngine(config(up, connect_attempts=4))
        t0 = time.monotonic()
        with pytest.raises(ProviderError) as info:
            await engine.run()
        assert info.value.retryable
        assert up.refused == 4 and engine.connect_failures == 4
        assert time.monotonic() - t0 < 2.0


async def test_a_spoken_turn_maps_onto_parley_events_and_is_priced() -> None:
    async with RealtimeUpstream(turn_audio_ms=200) as up:
        up.script(
            ScriptedResponse("Hello there, how can I help?", user_transcript="hi", usage=GA_USAGE),
            ScriptedResponse("Sure thing.", user_transcript="help me", usage=BETA_USAGE),
        )
        engine = RealtimeEngine(config(up))
        async with running(engine) as run:
            for n in (1, 2):
                await engine.send_audio(bytes(200 * PCM_MS))
                await run.until(lambda n=n: len(run.of(ResponseDone)) == n)  # type: ignore[misc]
                # The caller heard it all (else the next turn would be a barge-in).
                await engine.report_playback(run.of(ResponseDone)[-1].response_id, 1e9)
        kinds = [type(e) for e in run.events if not isinstance(e, AudioDelta)]
        i = kinds.index(UserSpeechStarted)
        assert kinds[i + 1] is UserSpeechStopped
        users = [e.text for e in run.of(TranscriptFinal) if e.role is Role.USER]
        assert users == ["hi", "help me"]
        done = run.of(ResponseDone)
        assert [d.text for d in done] == ["Hello there, how can I help?", "Sure thing."]
        assert [d.usage for d in done] == [GA_USAGE, BETA_USAGE]
        assert [s.response_id for s in run.of(ResponseStarted)] == [d.response_id for d in done]
        audio = run.of(AudioDelta)
        assert audio and all(a.sample_rate == 24000 and a.encoding == "pcm16" for a in audio)
        assert up.current.audio == bytes(400 * PCM_MS)  # every caller byte arrived
        # The per-conversation cost by hand, gpt-realtime prices ($ per 1M tokens):
        ga = (119 - 64) * 4 + 64 * 0.40 + 13 * 32 + 30 * 16 + 91 * 64  # 6965.6
        beta = (313 - 256) * 4 + 256 * 0.40 + (476 - 384) * 32 + 384 * 0.40 + 9 * 16 + 23 * 64
        assert engine.usage == GA_USAGE + BETA_USAGE
        assert engine.cost_usd == pytest.approx((ga + beta) / 1e6, rel=1e-12)
        assert engine.cost_usd == pytest.approx(0.0120096, rel=1e-12)
        assert engine.history == [
            ("user", "hi"),
            ("assistant", "Hello there, how can I help?"),
            ("user", "help me"),
            ("assistant", "Sure thing."),
        ]


async def test_function_calls_run_through_the_tool_registry() -> None:
    tools = ToolRegistry()

    @tools.register
    async def order_status(order_id: str) -> str:
        """Look up an order."""
        return f"order {order_id} shipped"

    async with RealtimeUpstream() as up:
        up.script(
            ScriptedResponse(
                user_transcript="where is order 42",
                function_call=ScriptedFunctionCall(
                    "order_status", '{"order_id": "42"}', call_id="call_7"
                ),
            ),
            ScriptedResponse("It shipped yesterday."),
        )
        engine = RealtimeEngine(config(up), tools=tools)
        async with running(engine) as run:
            await engine.send_audio(bytes(200 * PCM_MS))
            await run.until(lambda: len(run.of(ResponseDone)) == 2)
        assert run.of(ToolCall) == [ToolCall("call_7", "order_status", '{"order_id": "42"}')]
        result = run.of(ToolResult)[0]
        assert result.call_id == "call_7" and "order 42 shipped" in result.output
        sent = up.current.events
        outputs = [
            (i, e)
            for i, e in enumerate(sent)
            if isinstance(e, ConversationItemCreate) and e.item.type == "function_call_output"
        ]
        assert len(outputs) == 1
        idx, out = outputs[0]
        assert out.item.call_id == "call_7" and "shipped" in str(out.item.output)
        assert any(isinstance(e, ResponseCreate) for e in sent[idx + 1 :])
        assert run.of(ResponseDone)[-1].text == "It shipped yesterday."


async def test_barge_in_truncates_at_the_played_milliseconds() -> None:
    async with RealtimeUpstream(delta_interval_s=0.03) as up:
        words = "one two three four five six seven eight nine ten"
        up.script(ScriptedResponse(words, user_transcript="count", chunks=10, chunk_ms=100))
        engine = RealtimeEngine(config(up))
        async with running(engine) as run:
            await engine.send_audio(bytes(200 * PCM_MS))
            await run.until(lambda: len(run.of(AudioDelta)) >= 3)
            rid = run.of(AudioDelta)[0].response_id
            await engine.report_playback(rid, 150.0)
            await up.barge_in()
            await run.until(lambda: bool(run.of(ResponseDone)))
            await up.until(lambda: bool(up.current.truncations))
            n_audio = len(run.of(AudioDelta))
            await asyncio.sleep(0.1)  # a window of three of the upstream's 30 ms deltas
            assert len(run.of(AudioDelta)) == n_audio  # nothing of the cut reply after it
        cut = run.of(Interrupted)
        assert len(cut) == 1 and cut[0].response_id == rid and cut[0].played_ms == 150.0
        trunc = up.current.truncations[0]
        assert trunc.audio_end_ms == 150 and trunc.content_index == 0
        assert trunc.item_id == up.current_item_id
        done = run.of(ResponseDone)[0]
        assert done.status == "cancelled" and done.text == cut[0].played_text
        assert not run.of(ErrorEvent)
        # Server VAD cancels by itself: the engine sent no response.cancel.
        assert not any(isinstance(e, ResponseCancel) for e in up.current.events)


async def test_without_server_interrupts_the_engine_cancels_and_ignores_not_active() -> None:
    td = TurnDetection(type="server_vad", interrupt_response=False)
    async with RealtimeUpstream(delta_interval_s=0.03) as up:
        up.script(ScriptedResponse("a b c d e f g h", chunks=8))
        engine = RealtimeEngine(config(up, turn_detection=td))
        async with running(engine) as run:
            await engine.send_audio(bytes(200 * PCM_MS))
            await run.until(lambda: len(run.of(AudioDelta)) >= 2)
            await up.barge_in()
            await run.until(lambda: bool(run.of(ResponseDone)))
            await up.send_error(
                "response_cancel_not_active", "Cancellation failed: no active response found"
            )
            await up.send_error("rate_limit_exceeded", "slow down")
            await run.until(lambda: bool(run.of(ErrorEvent)))
        assert any(isinstance(e, ResponseCancel) for e in up.current.events)
        assert run.of(ResponseDone)[0].status == "cancelled"
        assert [e.code for e in run.of(ErrorEvent)] == ["rate_limit_exceeded"]


async def test_inject_context_and_update_mid_response_do_not_cancel_it() -> None:
    async with RealtimeUpstream(delta_interval_s=0.02) as up:
        up.script(ScriptedResponse("one two three four five six", chunks=6))
        engine = RealtimeEngine(config(up))
        async with running(engine) as run:
            await engine.send_audio(bytes(200 * PCM_MS))
            await run.until(lambda: len(run.of(AudioDelta)) >= 2)
            await engine.inject_context("account", {"tier": "gold"})
            await engine.update(instructions="Now speak French.")
            await run.until(lambda: bool(run.of(ResponseDone)))
        assert run.of(ResponseDone)[0].status == "completed"
        sent = up.current.events
        assert not any(isinstance(e, ResponseCancel | ResponseCreate) for e in sent)
        system = [e for e in sent if isinstance(e, ConversationItemCreate)]
        assert system[0].item.role == "system" and "gold" in system[0].item.text
        assert up.current.session.instructions == "Now speak French."


async def test_twenty_drops_mid_response_lose_no_finished_turn() -> None:
    """The fault test: the upstream socket dies mid-reply 20 times in one call."""
    drops = 20
    async with RealtimeUpstream(turn_audio_ms=200) as up:
        for i in range(drops):
            up.script(
                ScriptedResponse(
                    f"Partial {i} words here now",
                    user_transcript=f"question {i}",
                    chunks=5,
                    drop_after_deltas=2,
                ),
                ScriptedResponse(f"Answer number {i}.", chunks=3),
            )
        engine = RealtimeEngine(config(up))
        stream, peer = memory_transport_pair(OPENAI_PCM_FORMAT, maxsize=10_000)
        done: list[ResponseDone] = []
        changed = asyncio.Event()

        async def on_event(_c: Conversation, ev: Event) -> None:
            if isinstance(ev, ResponseDone) and ev.status == "completed":
                done.append(ev)
                changed.set()

        conv = Conversation(stream, engine, on_event=on_event)
        task = asyncio.create_task(conv.run())
        heard: dict[str, int] = {}

        async def listen() -> None:
            async for out in peer:
                rid = getattr(out, "response_id", "")
                heard[rid] = heard.get(rid, 0) + len(getattr(out, "audio", b""))

        listener = asyncio.create_task(listen())
        t0 = time.monotonic()
        for i in range(drops):
            await peer.send_audio(bytes(200 * PCM_MS))
            async with asyncio.timeout(5):
                while len(done) < i + 1:
                    changed.clear()
                    await changed.wait()
            await peer.report_playback(done[-1].response_id, 1e9)  # heard to the end
        elapsed = time.monotonic() - t0
        await peer.hangup()
        await asyncio.wait_for(task, 5)
        await asyncio.wait_for(listener, 5)

        assert engine.reconnects == drops and up.drops == drops
        assert len(up.connections) == drops + 1
        assert max(engine.reconnect_ms) < 2000, engine.reconnect_ms
        print(
            f"reconnect ms: max {max(engine.reconnect_ms):.1f} "
            f"mean {sum(engine.reconnect_ms) / drops:.1f}; 20 turns in {elapsed:.2f} s"
        )
        # Every finished turn is in the transcript, in order.
        expected: list[tuple[Role, str]] = []
        for i in range(drops):
            expected += [(Role.USER, f"question {i}"), (Role.ASSISTANT, f"Answer number {i}.")]
        finished = [
            (t.role, t.text)
            for t in conv.transcript
            if t.role is Role.USER or t.text.startswith("Answer")
        ]
        assert finished == expected
        # ...and the caller heard every answer.
        for d in done:
            assert heard.get(d.response_id, 0) > 0
        # The last session was seeded with the whole conversation so far, in order.
        seeded = [
            (e.item.role, e.item.text)
            for e in up.connections[-1].events
            if isinstance(e, ConversationItemCreate)
        ]
        want = [(r.value, t) for r, t in expected[:-2]] + [("user", f"question {drops - 1}")]
        assert seeded == want


async def test_rollover_before_the_session_limit_reseeds() -> None:
    async with RealtimeUpstream(turn_audio_ms=200) as up:
        up.script(ScriptedResponse("First answer.", user_transcript="first question"))
        cfg = config(up, session_limit_s=0.8, rollover_margin_s=0.5)
        engine = RealtimeEngine(cfg)
        async with running(engine) as run:
            await engine.send_audio(bytes(200 * PCM_MS))
            await run.until(lambda: bool(run.of(ResponseDone)))
            await up.until(lambda: len(up.connections) >= 2, limit_s=3)
            await up.until(lambda: len(up.connections[1].items) == 2)
        assert engine.reconnects >= 1
        second = up.connections[1]
        assert isinstance(second.events[0], SessionUpdate)
        assert [(i.role, i.text) for i in second.items] == [
            ("user", "first question"),
            ("assistant", "First answer."),
        ]
        assert not run.of(ErrorEvent)  # a planned rollover is not an error


async def test_session_expired_reconnects_and_buffers_caller_audio() -> None:
    async with RealtimeUpstream(turn_audio_ms=None) as up:
        engine = RealtimeEngine(config(up))
        async with running(engine):
            await up.until(lambda: bool(up.connections) and bool(up.current.events))
            await engine.send_audio(b"\x01\x00" * 480)
            await up.expire_session()
            # Audio sent while the session is being replaced is buffered, then replayed.
            for _ in range(5):
                await engine.send_audio(b"\x02\x00" * 480)
            await up.until(lambda: len(up.connections) == 2)
            await up.until(
                lambda: len(up.connections[1].audio) + len(up.connections[0].audio) >= 6 * 960
            )
        total = bytes(up.connections[0].audio) + bytes(up.connections[1].audio)
        assert total == b"\x01\x00" * 480 + b"\x02\x00" * 480 * 5
        assert engine.reconnects == 1 and engine.dropped_audio_chunks == 0


async def test_reconnect_buffer_is_bounded_and_counts_drops() -> None:
    engine = RealtimeEngine(RealtimeConfig(api_key="x", reconnect_buffer_ms=100))
    for _ in range(10):  # not connected: everything is buffered, 20 ms per chunk
        await engine.send_audio(bytes(20 * PCM_MS))
    assert engine.dropped_audio_chunks == 5


async def test_ulaw_pass_through_bytes_in_equal_bytes_forwarded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: dict[str, int] = {"transcode": 0, "resample": 0}

    def counting(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **k: Any) -> Any:
            calls[name] += 1
            return fn(*a, **k)

        return wrapper

    # Every transcoder that is not a pass-through, and every resampler anywhere.
    process = Transcoder.process

    def transcode(self: Transcoder, data: bytes) -> bytes:
        if not self.passthrough:
            calls["transcode"] += 1
        return process(self, data)

    monkeypatch.setattr(Transcoder, "process", transcode)
    for name in ("process", "process_array"):
        method = getattr(StreamResampler, name)
        monkeypatch.setattr(StreamResampler, name, counting("resample", method))

    reply = bytes(range(256)) * 4  # every µ-law code, 128 ms at 8 kHz
    async with RealtimeUpstream(turn_audio_ms=None) as up:
        up.script(ScriptedResponse("Hello caller.", audio=reply, chunks=4))
        engine = RealtimeEngine(config(up, audio="ulaw"))
        assert engine.input_format == TWILIO_FORMAT and engine.output_format == TWILIO_FORMAT
        assert engine.input_format.sample_rate == 8000
        stream, peer = memory_transport_pair(TWILIO_FORMAT)
        conv = Conversation(stream, engine)
        task = asyncio.create_task(conv.run())
        await up.until(lambda: bool(up.connections) and bool(up.current.events))
        # Caller → upstream, straight from the engine seam.
        caller = bytes((i * 7) % 256 for i in range(1600))
        for k in range(0, len(caller), 160):
            await engine.send_audio(caller[k : k + 160])
        await up.until(lambda: len(up.current.audio) == len(caller))
        assert bytes(up.current.audio) == caller
        assert [base64.b64decode(a) for a in up.current.appends] == [
            caller[k : k + 160] for k in range(0, len(caller), 160)
        ]
        fmt = up.current.session.audio
        assert fmt.input.format.type == "audio/pcmu"  # type: ignore[union-attr]
        assert fmt.output.format.type == "audio/pcmu"  # type: ignore[union-attr]
        # Upstream → caller through a real Conversation on a Twilio-format stream.
        await engine.send_text("hi")
        got = b""
        async with asyncio.timeout(5):
            while len(got) < len(reply):
                out = await peer.receive()
                got += getattr(out, "audio", b"")
        assert got == reply
        await peer.hangup()
        await asyncio.wait_for(task, 5)
    assert calls == {"transcode": 0, "resample": 0}


async def test_ulaw_pass_through_inbound_via_conversation() -> None:
    async with RealtimeUpstream(turn_audio_ms=None) as up:
        engine = RealtimeEngine(config(up, audio="ulaw"))
        stream, peer = memory_transport_pair(TWILIO_FORMAT)
        conv = Conversation(stream, engine)
        task = asyncio.create_task(conv.run())
        await up.until(lambda: bool(up.connections) and bool(up.current.events))
        caller = bytes((i * 7) % 256 for i in range(1600))
        for k in range(0, len(caller), 160):
            await peer.send_audio(caller[k : k + 160])
        try:
            await up.until(lambda: len(up.current.audio) >= len(caller), limit_s=2)
        finally:
            await peer.hangup()
            await asyncio.wait_for(task, 5)
        assert bytes(up.current.audio) == caller


async def test_seed_history_goes_up_when_the_session_opens() -> None:
    """HistorySeedable: a conversation under way becomes the session's items, in order,
    right after session.update (the re-seed a reconnection does)."""
    history = [
        Message(Role.USER, "Where is my order?"),
        Message(
            Role.ASSISTANT,
            "Let me look.",
            tool_calls=(ToolCall("call_7", "find_order", '{"id": 7}'),),
        ),
        Message(Role.TOOL, '{"status": "shipped"}', tool_call_id="call_7"),
        Message(Role.ASSISTANT, "It has shipped."),
    ]
    async with RealtimeUpstream(turn_audio_ms=None) as up:
        engine = RealtimeEngine(config(up))
        engine.seed_history(history)
        async with running(engine):
            await up.until(lambda: bool(up.connections) and len(up.current.items) == 5)
        sent = up.connections[0].events
        assert isinstance(sent[0], SessionUpdate)
        items = [e.item for e in sent[1:6] if isinstance(e, ConversationItemCreate)]
        assert [(i.type, i.role, i.text) for i in items if i.type == "message"] == [
            ("message", "user", "Where is my order?"),
            ("message", "assistant", "Let me look."),
            ("message", "assistant", "It has shipped."),
        ]
        assert [i.type for i in items] == [
            "message",
            "message",
            "function_call",
            "function_call_output",
            "message",
        ]
        assert (items[2].call_id, items[2].name, items[3].output) == (
            "call_7",
            "find_order",
            '{"status": "shipped"}',
        )
    assert engine.history[0] == ("user", "Where is my order?")


async def test_cancel_response_stops_the_reply_with_what_was_heard() -> None:
    """Cancellable: response.cancel upstream, the item truncated at the heard position,
    ResponseDone(cancelled) with those words at once; nothing of the reply after it."""
    async with RealtimeUpstream(delta_interval_s=0.03) as up:
        words = "one two three four five six seven eight nine ten"
        up.script(ScriptedResponse(words, chunks=10, chunk_ms=100))
        engine = RealtimeEngine(config(up))
        async with running(engine) as run:
            await engine.send_audio(bytes(200 * PCM_MS))
            await run.until(lambda: len(run.of(AudioDelta)) >= 3)
            rid = run.of(AudioDelta)[0].response_id
            await engine.report_playback(rid, 200.0)
            await engine.cancel_response(rid)
            await run.until(lambda: bool(run.of(ResponseDone)))
            (done,) = run.of(ResponseDone)
            await up.until(lambda: bool(up.current.truncations))
            await up.until(lambda: any(isinstance(e, ResponseCancel) for e in up.current.events))
            n_audio = len(run.of(AudioDelta))
            await asyncio.sleep(0.1)  # a window of three of the upstream's 30 ms deltas
            assert len(run.of(AudioDelta)) == n_audio
            await engine.cancel_response(rid)  # already cancelled: nothing happens
            await engine.cancel_response("resp_unknown")
        assert done.status == "cancelled" and done.text == "one two"
        assert len(run.of(ResponseDone)) == 1 and not run.of(ErrorEvent)
        cancel = next(e for e in up.current.events if isinstance(e, ResponseCancel))
        assert cancel.response_id == rid
        assert up.current.truncations[0].audio_end_ms == 200
        assert engine.history == [("assistant", "one two")]

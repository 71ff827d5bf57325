"""``parley.client.VoiceClient`` over real sockets, driven by files instead of a sound card.

Servers: Parley's own Realtime server (``create_realtime_app`` on uvicorn, loopback)
with the offline models for the spoken round trip and with the deterministic fakes
of ``parley.testing`` for the fast tests; ``RealtimeUpstream`` (a scripted GA
upstream) where a test must see exactly what the client sent (truncation, function
output); a raw ``websockets`` server for malformed frames. No network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from websockets.asyncio.server import ServerConnection, serve

from parley.audio import StreamResampler, read_wav, wav_bytes
from parley.client.devices import BufferSpeaker, WavFileSource
from parley.client.talk import realtime_url, talk
from parley.client.vad import ClientVAD, VADSettings, VoiceAudio, VoiceStarted, VoiceStopped
from parley.client.voice import ResponseInfo, VoiceClient, VoiceEngineConfig
from parley.errors import ConfigError, ProviderError
from parley.events import ErrorEvent, Usage
from parley.protocols.openai_realtime import (
    ConversationItemTruncate,
    ResponseCancel,
    ResponseCreate,
)
from parley.providers.seams import ToolSpec
from parley.realtime_server import (
    EngineMaker,
    RealtimeBackend,
    cascade_maker,
    create_realtime_app,
)
from parley.testing.fakes import FakeLLM, FakeSTT, FakeTTS, FakeVAD, silence, tone
from parley.testing.realtime_upstream import (
    RealtimeUpstream,
    ScriptedFunctionCall,
    ScriptedResponse,
)
from servers import LoopServer, start_serving
from speech import normalise, speak

# -- helpers ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def realtime_server(
    backend: RealtimeBackend, make_engine: EngineMaker | None = None, port: int = 0
) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    app = create_realtime_app(backend=backend, make_engine=make_engine, warmup=True)
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = LoopServer(config)
    task = await start_serving(server, [sock])
    try:
        yield f"ws://127.0.0.1:{port}/v1/realtime"
    finally:
        server.should_exit = True
        await task


def fake_backend(
    tts_ms_per_char: float = 20.0, tts_delay_s: float = 0.0
) -> tuple[RealtimeBackend, EngineMaker]:
    vad = FakeVAD(16000)
    brain = FakeLLM(reply=lambda msgs: f"You said: {msgs[-1].content}")
    tts = FakeTTS(16000, ms_per_char=tts_ms_per_char, chunk_ms=100.0, delay_s=tts_delay_s)
    backend = RealtimeBackend(vad=vad, stt=FakeSTT(["hello there"]), voices=("tone",))
    return backend, cascade_maker(vad, FakeSTT(), brain, tts)


class Recorder:
    """Every callback of one client, and an event per response done."""

    def __init__(self, client: VoiceClient) -> None:
        self.audio = bytearray()
        self.text: list[str] = []
        self.transcripts: list[tuple[str, str]] = []
        self.done: list[ResponseInfo] = []
        self.errors: list[ErrorEvent] = []
        self.done_event = asyncio.Event()
        client.on_audio_response = self.audio.extend
        client.on_text_response = self.text.append
        client.on_transcript = lambda role, text: self.transcripts.append((role, text))
        client.on_error = self.errors.append

        async def on_done(info: ResponseInfo) -> None:  # an async callback works too
            self.done.append(info)
            self.done_event.set()

        client.on_response_done = on_done

    async def next_done(self, within_s: float = 20.0) -> ResponseInfo:
        async with asyncio.timeout(within_s):
            await self.done_event.wait()
        self.done_event.clear()
        return self.done[-1]


def hand_cost_gpt_realtime(u: Usage) -> float:
    # protocols.md §1.9, gpt-realtime: text 4.00 / cached 0.40 / out 16.00; audio 32.00 /
    # cached 0.40 / out 64.00 (USD per 1M tokens).
    return (
        (u.input_text_tokens - u.cached_text_tokens) * 4.00
        + u.cached_text_tokens * 0.40
        + (u.input_audio_tokens - u.cached_audio_tokens) * 32.00
        + u.cached_audio_tokens * 0.40
        + u.output_text_tokens * 16.00
        + u.output_audio_tokens * 64.00
    ) / 1e6


# -- the client VAD (sans-I/O) ---------------------------------------------------------


def test_vad_start_end_delays_and_prefix() -> None:
    vad = ClientVAD(VADSettings(threshold=0.05, start_ms=100, end_ms=300, prefix_ms=200), 16000)
    events = vad.push(silence(500) + tone(600) + silence(400))
    kinds = [type(e) for e in events if not isinstance(e, VoiceAudio)]
    assert kinds == [VoiceStarted, VoiceStopped]
    started = next(e for e in events if isinstance(e, VoiceStarted))
    stopped = next(e for e in events if isinstance(e, VoiceStopped))
    assert started.audio_ms == 500
    assert (stopped.audio_ms, stopped.speech_ms) == (1100, 600)
    speech = b"".join(e.pcm for e in events if isinstance(e, VoiceAudio))
    # prefix (200 ms) + the tone (600 ms) + the 300 ms of silence that proved the end
    assert len(speech) == 2 * 16 * (200 + 600 + 300)
    # A click shorter than start_ms is not speech.
    assert [e for e in vad.push(tone(60) + silence(400)) if not isinstance(e, VoiceAudio)] == []
    with pytest.raises(ConfigError):
        VADSettings(threshold=0.0)


def test_vad_end_of_stream_stops_speech() -> None:
    vad = ClientVAD(VADSettings(start_ms=40), 24000)
    vad.push(tone(300, 24000))
    assert vad.speaking
    (stopped,) = vad.end()
    assert isinstance(stopped, VoiceStopped) and stopped.speech_ms == 300


def test_config_modes_and_url() -> None:
    fast = VoiceEngineConfig(mode="fast", api_key="k")
    big = VoiceEngineConfig(mode="big")
    assert fast.resolved_url == "wss://api.openai.com/v1/realtime"
    assert (fast.resolved_model, fast.resolved_voice) == ("gpt-realtime", "marin")
    assert fast.realtime_config(1).turn_detection is not None
    assert fast.realtime_config(1).turn_detection.type == "semantic_vad"  # type: ignore[union-attr]
    assert big.resolved_url is None  # the local lane, started at connect
    assert big.resolved_turn_detection == "server_vad"
    assert VoiceEngineConfig(turn_detection="client").realtime_config(1).turn_detection is None
    assert realtime_url("http://h:8000") == "ws://h:8000/v1/realtime"
    assert realtime_url("wss://x/v1/realtime?model=m") == "wss://x/v1/realtime?model=m"
    with pytest.raises(ConfigError):
        VoiceEngineConfig(latency_mode="warp")  # type: ignore[arg-type]


async def test_file_devices(tmp_path: Path) -> None:
    src = WavFileSource(wav_bytes(tone(100, 16000), 16000), sample_rate=24000, speed=0)
    got = b"".join([c async for c in src.chunks()])
    assert len(got) == 2 * 24 * (100 + 1000)  # resampled, plus the trailing silence
    out = tmp_path / "out.wav"
    spk = BufferSpeaker(24000, path=out)
    spk.write(b"\x01\x00" * 2400)
    assert (spk.played_ms, spk.queued_ms) == (100.0, 0.0)
    await spk.close()
    assert read_wav(out) == (b"\x01\x00" * 2400, 24000, 1)


# -- spoken round trip on the offline stack --------------------------------------------


async def test_spoken_file_round_trip_offline_stack(tmp_path: Path) -> None:
    from parley.realtime_server import offline_backend

    pcm, rate = speak("What a lovely day it is.")
    wav = tmp_path / "said.wav"
    wav.write_bytes(wav_bytes(pcm, rate))
    speaker = BufferSpeaker(16000)
    async with realtime_server(offline_backend()) as url:
        client = VoiceClient(
            VoiceEngineConfig(mode="big", url=url, sample_rate=16000, latency_mode="low"),
            microphone=WavFileSource(wav, chunk_ms=20, speed=1.0),
            speaker=speaker,
        )
        rec = Recorder(client)
        async with client:
            client.start_listening()
            info = await rec.next_done(within_s=30)
            await client.wait_until_listened()
            metrics = client.get_metrics()
            usage = client.get_usage()
    assert info.status == "completed"
    user = [t for r, t in rec.transcripts if r == "user"]
    assert user and "lovely day" in normalise(user[0])
    assert "lovely day" in normalise("".join(rec.text))  # the echo brain says it back
    assert len(rec.audio) > 2 * 16000 * 0.5  # at least half a second of reply, at 16 kHz
    assert speaker.played_ms > 500
    assert info.usage is not None and info.usage.output_audio_tokens > 0
    assert usage.total_tokens >= info.usage.total_tokens > 0
    assert len(metrics.turns) == 1 and metrics.turns[0].reference == "local_vad"
    assert 0 < metrics.turns[0].latency_ms < 5000
    assert metrics.audio_sent_ms > 2000 and metrics.errors == 0
    assert client.estimate_cost() is None  # "parley-realtime" has no price row
    assert client.estimate_cost("gpt-realtime") == pytest.approx(hand_cost_gpt_realtime(usage))


# -- fast tests on the fakes -----------------------------------------------------------


async def test_send_text_round_trip() -> None:
    async with realtime_server(*fake_backend()) as url:
        client = VoiceClient(
            VoiceEngineConfig(mode="big", url=url, latency_mode="balanced"),
            speaker=BufferSpeaker(24000),
        )
        rec = Recorder(client)
        async with client:
            await client.send_text("good morning")
            info = await rec.next_done()
            metrics = client.get_metrics()
    assert info.status == "completed"
    assert "You said: good morning" in "".join(rec.text)
    assert ("user", "good morning") in rec.transcripts
    assert len(rec.audio) > 0 and info.audio_ms > 0
    assert metrics.turns[0].reference == "text" and metrics.turns[0].latency_ms > 0
    assert metrics.responses == 1 and rec.errors == []


async def test_client_vad_commits_the_turn() -> None:
    """turn_detection="client": the server's VAD is off; the client sends the speech and
    commits it when its own VAD hears the end."""
    async with realtime_server(*fake_backend()) as url:
        cfg = VoiceEngineConfig(
            mode="big", url=url, turn_detection="client", vad_end_ms=300, latency_mode="low"
        )
        client = VoiceClient(cfg, speaker=BufferSpeaker(24000))
        rec = Recorder(client)
        async with client:
            audio = silence(300, 24000) + tone(700, 24000) + silence(600, 24000)
            for i in range(0, len(audio), 960):
                await client.send_audio(audio[i : i + 960])
            info = await rec.next_done()
            metrics = client.get_metrics()
    assert info.status == "completed"
    assert ("user", "hello there") in rec.transcripts
    # Only speech went up: prefix + tone + the end delay, not the leading silence.
    assert 900 <= metrics.audio_sent_ms <= 1400
    assert metrics.turns[0].reference == "local_vad"


async def test_interrupt_truncates_at_what_was_heard() -> None:
    # Deltas at real-time pace and a 200 ms jitter buffer ("quality"): the speaker
    # starts well after the first chunk, so only a truncation at the position the
    # speaker reports (not "time since the first chunk") lands near ``heard``.
    async with RealtimeUpstream(delta_interval_s=0.1) as up:
        up.script(ScriptedResponse(transcript="one two three four five six seven eight nine ten"))
        speaker = BufferSpeaker(24000, realtime=True)
        client = VoiceClient(
            VoiceEngineConfig(mode="fast", url=up.url, api_key="test", latency_mode="quality"),
            speaker=speaker,
        )
        rec = Recorder(client)
        async with client:
            await client.send_text("count to ten")
            async with asyncio.timeout(5):
                while speaker.played_ms < 300:  # noqa: ASYNC110 - a virtual clock, no event
                    await asyncio.sleep(0.01)
            await client.interrupt()
            heard = speaker.played_ms
            assert speaker.queued_ms == 0
            # The truncate went out before the cancel, and the upstream answers the
            # cancel with this response.done: both are in its record.
            info = await rec.next_done()
            truncations = [e for e in up.current.events if isinstance(e, ConversationItemTruncate)]
            cancels = [e for e in up.current.events if isinstance(e, ResponseCancel)]
            metrics = client.get_metrics()
    assert len(truncations) == 1
    assert truncations[0].item_id and abs(truncations[0].audio_end_ms - heard) < 80
    assert heard < 600  # ten words of 100 ms: most of it was never heard
    assert cancels or info.status == "completed"
    assert metrics.interruptions == 1
    assert speaker.played_ms == pytest.approx(heard, abs=1)  # nothing played after the stop


async def test_function_call_result_goes_back() -> None:
    async with RealtimeUpstream() as up:
        up.script(
            ScriptedResponse(function_call=ScriptedFunctionCall("get_weather", '{"city": "Oslo"}')),
            ScriptedResponse(transcript="It is sunny in Oslo."),
        )
        tool = ToolSpec("get_weather", "Weather of a city")
        client = VoiceClient(
            VoiceEngineConfig(mode="fast", url=up.url, api_key="k", tools=(tool,)),
            speaker=BufferSpeaker(24000),
        )
        calls: list[tuple[str, dict[str, Any]]] = []

        async def on_call(name: str, args: dict[str, Any]) -> dict[str, str]:
            calls.append((name, args))
            return {"forecast": "sunny"}

        client.on_function_call = on_call
        rec = Recorder(client)
        async with client:
            await client.send_text("weather in Oslo?")
            await rec.next_done()  # the function call response
            info = await rec.next_done()  # the answer after the output
            sent = list(up.current.events)
            session = up.current.session
    assert calls == [("get_weather", {"city": "Oslo"})]
    outputs = [i for i in up.current.items if i.type == "function_call_output"]
    assert [json.loads(o.output) for o in outputs] == [{"forecast": "sunny"}]  # type: ignore[arg-type]
    assert sum(isinstance(e, ResponseCreate) for e in sent) == 2
    assert "sunny" in info.text
    assert [t.name for t in session.tools] == ["get_weather"]  # type: ignore[union-attr]
    assert up.connections[0].headers["Authorization"] == "Bearer k"
    assert client.get_metrics().function_calls == 1
    cost = client.estimate_cost()  # gpt-realtime: priced
    assert cost is not None and cost > 0
    assert cost == pytest.approx(hand_cost_gpt_realtime(client.get_usage()))


async def test_connect_retries_until_the_port_accepts() -> None:
    port = _free_port()
    url = f"ws://127.0.0.1:{port}/v1/realtime"
    client = VoiceClient(VoiceEngineConfig(mode="big", url=url), speaker=BufferSpeaker())
    with pytest.raises(ProviderError):
        await client.connect(retry_count=1)  # nothing listens: refused twice
    assert not client.connected
    connecting = asyncio.create_task(client.connect(retry_count=8))
    # A window on the clock, not a wait on state: while the port is closed, each
    # attempt is refused and the next one comes after its back-off.
    await asyncio.sleep(0.3)
    assert not connecting.done()
    async with realtime_server(*fake_backend(), port=port):
        async with asyncio.timeout(10):
            await connecting
        assert client.connected
        rec = Recorder(client)
        await client.send_text("hi")
        assert (await rec.next_done()).status == "completed"
        await client.disconnect()


async def test_bad_frames_reach_on_error_and_the_client_goes_on() -> None:
    created = {"type": "session.created", "event_id": "e0", "session": {"type": "realtime"}}
    bad = [
        "not json at all",
        json.dumps({"no": "type"}),
        json.dumps({"type": "response.output_audio.delta"}),  # required fields missing
        json.dumps(
            {
                "type": "error",
                "event_id": "e9",
                "error": {"type": "x", "code": "boom", "message": "m"},
            }
        ),
    ]

    async def handler(ws: ServerConnection) -> None:
        await ws.send(json.dumps(created))
        async for frame in ws:
            if json.loads(frame).get("type") == "session.update":
                for frame_out in bad:
                    await ws.send(frame_out)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = VoiceClient(
            VoiceEngineConfig(mode="big", url=f"ws://127.0.0.1:{port}/v1/realtime"),
            speaker=BufferSpeaker(),
        )
        errors: list[ErrorEvent] = []
        four = asyncio.Event()

        def on_error(error: ErrorEvent) -> None:
            errors.append(error)
            if len(errors) == 4:
                four.set()

        client.on_error = on_error
        async with client:
            async with asyncio.timeout(5):
                await four.wait()
            assert client.connected
            await client.send_text("still there?")  # the socket still works
    assert [e.code for e in errors] == ["invalid_json", "invalid_event", "invalid_event", "boom"]
    assert not any(e.fatal for e in errors)


async def test_talk_with_files(tmp_path: Path) -> None:
    said = tmp_path / "in.wav"
    said.write_bytes(wav_bytes(silence(200, 24000) + tone(600, 24000), 24000))
    out = tmp_path / "reply.wav"
    lines: list[str] = []
    async with realtime_server(*fake_backend()) as url:
        metrics = await talk(
            url.replace("ws://", "http://").removesuffix("/v1/realtime"),
            input_wav=said,
            output_wav=out,
            latency_mode="low",
            duration_s=20,
            echo=lines.append,
        )
    assert metrics.responses == 1
    assert "user: hello there" in lines
    assert any(line.startswith("assistant: You said: hello there") for line in lines)
    reply, rate, _ = read_wav(out)
    assert rate == 24000 and np.abs(np.frombuffer(reply, "<i2")).max() > 1000


def test_resampled_device_rate_keeps_duration() -> None:
    # 48 kHz devices: what reaches the wire is the same duration at 24 kHz.
    rs = StreamResampler(48000, 24000)
    out = rs.process(tone(1000, 48000)) + rs.flush()
    assert abs(len(out) - 2 * 24000) <= 4

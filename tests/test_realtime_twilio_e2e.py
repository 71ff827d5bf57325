"""A Twilio call through ``RealtimeEngine`` to the local Realtime server, end to end.

The phone (``place_call``: real Twilio Media Streams frames at real-time pace, a
Piper-spoken sentence) calls an in-process Parley app whose engine is
``RealtimeEngine``; its upstream is ``parley realtime-server`` in a *subprocess*
(the offline cascade: Silero, Whisper, the echo brain, Piper). That server's own
µ-law ↔ PCM work happens in the other process and is not counted here.

In this process every codec and resampler entry the conversation path uses is
wrapped with a counter. On a phone line the realtime engine runs on ``audio/pcmu``,
so the caller's µ-law must reach ``input_audio_buffer.append`` byte for byte and
the upstream's ``response.output_audio.delta`` must reach the phone byte for byte:
the counters stay at zero. The control call on the local cascade (which needs
PCM16 16 kHz) shows the same counters do see that work when it happens.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import soxr

import parley.audio.transcode as transcode_mod
import parley.engines.realtime as realtime_mod
from parley.app import Parley
from parley.audio.g711 import ulaw_decode, ulaw_encode
from parley.audio.resample import StreamResampler
from parley.client.twilio_call import CallResult, place_call
from parley.config import EngineKind, ParleySettings
from parley.engines.realtime import RealtimeEngine
from parley.protocols.openai_realtime import (
    InputAudioBufferAppend,
    ResponseOutputAudioDelta,
    encode_event_text,
    parse_server_event,
)
from parley.protocols.twilio_caller import TwilioCaller
from servers import ROOT, free_port, serve_app
from speech import normalise, speak, words_missed

pytestmark = pytest.mark.slow

KEY = "sk-local-e2e"
SENTENCE = "Please book a table for two people at seven tonight."

# Every step a transcoder can take to change audio format (the G.711 tables it picks
# at construction, its channel mixers, looked up at call time) and every
# StreamResampler entry point (any instance, anywhere in this process).
_RESAMPLER_METHODS = ("__init__", "process", "process_array", "flush")


@pytest.fixture(scope="module")
def realtime_server() -> Iterator[str]:
    """``parley realtime-server`` in a subprocess; its ws URL once it listens (warm)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley", "realtime-server", "--port", str(port), "--api-key", KEY],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # uvicorn binds only after the lifespan warmed the models up.
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"parley realtime-server exited with {proc.returncode}:\n{out}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("parley realtime-server did not listen within 90 s")
                time.sleep(0.1)  # another process: it shows it listens only by accepting
        yield f"ws://127.0.0.1:{port}/v1/realtime"
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@pytest.fixture
def conversions(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts of every decode/encode/downmix/resample call on the conversation path."""
    counts: Counter[str] = Counter()

    def counting(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    for table, kind in ((transcode_mod._DECODERS, "decode"), (transcode_mod._ENCODERS, "encode")):
        for encoding in ("ulaw", "alaw"):
            monkeypatch.setitem(table, encoding, counting(f"{encoding}_{kind}", table[encoding]))
    for name in ("_downmix", "_upmix"):
        mixer = getattr(transcode_mod, name)
        monkeypatch.setattr(transcode_mod, name, counting(name.strip("_"), mixer))
    for method in _RESAMPLER_METHODS:
        original = getattr(StreamResampler, method)
        monkeypatch.setattr(
            StreamResampler, method, counting(f"StreamResampler.{method}", original)
        )
    return counts


@pytest.fixture
def phone_sent(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The µ-law payload of every ``media`` frame the simulated phone sends."""
    sent: list[bytes] = []
    original = TwilioCaller.media

    def media(self: TwilioCaller, ulaw: bytes, **kwargs: Any) -> bytes:
        sent.append(bytes(ulaw))
        return original(self, ulaw, **kwargs)

    monkeypatch.setattr(TwilioCaller, "media", media)
    return sent


def caller_ulaw() -> bytes:
    """``SENTENCE`` spoken by Piper, as a phone line carries it (µ-law 8 kHz)."""
    pcm, rate = speak(SENTENCE)
    pcm8k = soxr.resample(np.frombuffer(pcm, "<i2"), rate, 8000).astype("<i2").tobytes()
    return ulaw_encode(pcm8k)


async def heard(reply_ulaw: bytes) -> str:
    """What Whisper hears in the reply (decoded and resampled here, in the test)."""
    from parley.providers.whisper import WhisperSTT

    reply16k = soxr.resample(np.frombuffer(ulaw_decode(reply_ulaw), "<i2"), 8000, 16000)
    return (await WhisperSTT().transcribe(reply16k.astype("<i2").tobytes())).text


async def call(app: Parley, caller: bytes) -> tuple[CallResult, str, list[dict[str, Any]]]:
    """Place the call; the phone's result, the conversation id and its REST transcript."""
    async with serve_app(app) as server:
        result = await place_call(
            server.ws_url("/twilio/stream"),
            [caller],
            trailing_silence_s=1.5,
            reply_timeout_s=20.0,
            reply_gap_s=0.8,
        )
        # The call registry says when the call has ended (its record is stored by then).
        assert await app.calls.wait_finished(app.calls.records(), 10)
        async with httpx.AsyncClient(base_url=server.url) as client:
            ended = (await client.get("/conversations", params={"status": "ended"})).json()
            (conversation,) = ended["conversations"]
            r = await client.get(f"/conversations/{conversation['id']}/transcript")
    assert r.status_code == 200, r.text
    turns = r.json()["turns"]
    assert isinstance(turns, list)
    return result, conversation["id"], turns


async def test_twilio_call_through_the_realtime_engine_passes_ulaw_through(
    realtime_server: str,
    conversions: Counter[str],
    phone_sent: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caller = caller_ulaw()
    # The wire in both directions, as the realtime engine sees it (wrapping its codec
    # for the JSON frames, not replacing it): the audio of every append it sends and
    # of every audio delta it receives.
    appended: list[bytes] = []
    deltas: list[bytes] = []

    def encode_spy(event: Any) -> Any:
        frame = encode_event_text(event)
        if isinstance(event, InputAudioBufferAppend):
            appended.append(event.audio_bytes())
        return frame

    def parse_spy(frame: Any) -> Any:
        event = parse_server_event(frame)
        if isinstance(event, ResponseOutputAudioDelta):
            deltas.append(event.audio_bytes())
        return event

    monkeypatch.setattr(realtime_mod, "encode_event_text", encode_spy)
    monkeypatch.setattr(realtime_mod, "parse_server_event", parse_spy)

    app = Parley(
        settings=ParleySettings(
            engine=EngineKind.REALTIME,
            realtime_url=realtime_server,
            realtime_api_key=KEY,  # type: ignore[arg-type]
            failover=False,
        )
    )
    live: dict[str, Any] = {}

    @app.on_conversation_start
    async def keep(session_id: str, user_id: str | None) -> None:
        live["conv"] = app.conversation(session_id)  # ended calls leave memory

    result, conversation_id, turns = await call(app, caller)

    # -- no conversion happened in this process (read before the test decodes anything)
    counts = dict(conversions)
    stored = await app.session(conversation_id)  # an ended call lives in the store
    assert stored is not None
    assert not stored.record.config["summary"]["errors"], stored.record.config["summary"]
    assert result.close_code is None, (result.close_code, result.close_reason)
    assert counts == {}, counts
    engine = live["conv"].engine
    assert isinstance(engine, RealtimeEngine)
    assert engine.input_format.encoding == "ulaw"
    assert engine.input_format.sample_rate == 8000
    assert (engine.responses, engine.reconnects) == (1, 0)

    # -- the caller's bytes went upstream unchanged, in order ---------------------------
    assert len(phone_sent) == result.frames_sent
    sent = b"".join(phone_sent)
    up = b"".join(appended)
    assert caller in sent
    # Every frame, silence included, in the order the phone sent it (the hang-up comes
    # after the last frame, so nothing is cut off).
    assert up == sent, (len(up), len(sent))

    # -- the upstream's µ-law reached the phone unchanged --------------------------------
    (turn,) = result.turns
    assert turn.clears == 0
    down = b"".join(deltas)
    assert len(down) > 8000  # over a second of speech
    assert bytes(turn.reply_ulaw) == down

    # -- reply audio: the echo brain answered the spoken sentence ------------------------
    assert turn.latency_ms is not None
    text = normalise(await heard(bytes(turn.reply_ulaw)))
    assert text.startswith("you said"), text
    assert words_missed(SENTENCE, text) <= 1, text  # heard twice: TTS → µ-law → Whisper

    # -- transcript: the user's sentence and the agent's reply ---------------------------
    roles = [t["role"] for t in turns]
    assert roles == ["user", "assistant"], turns
    user, agent = (normalise(t["text"]) for t in turns)
    assert user == normalise(SENTENCE), turns
    assert agent.startswith("you said") and normalise(SENTENCE) in agent, turns
    assert not turns[1]["interrupted"]


async def test_control_the_local_cascade_does_decode_and_resample(
    conversions: Counter[str],
) -> None:
    """The same call on the local cascade: the counters see the conversions (they can
    fail the test above)."""
    app = Parley(settings=ParleySettings(engine=EngineKind.LOCAL, brain="echo"))
    result, conversation_id, _ = await call(app, caller_ulaw())
    counts = dict(conversions)
    stored = await app.session(conversation_id)  # an ended call lives in the store
    assert stored is not None and not stored.record.config["summary"]["errors"]
    assert counts.get("ulaw_decode", 0) >= result.frames_sent // 2, counts  # caller → PCM16
    resampled = counts.get("StreamResampler.process", 0) + counts.get(
        "StreamResampler.process_array", 0
    )
    assert resampled > 0, counts  # 8 kHz → 16 kHz and back
    assert counts.get("ulaw_encode", 0) > 0, counts  # the reply → µ-law
    (turn,) = result.turns
    text = normalise(await heard(bytes(turn.reply_ulaw)))
    assert words_missed(SENTENCE, text) <= 1, text  # heard twice: TTS → µ-law → Whisper

"""The local Realtime server over a real socket: uvicorn on loopback, a raw
``websockets`` client, the GA wire format. The backend is a real cascade engine on
the deterministic fakes of ``parley.testing`` (energy VAD, scripted STT, a tone
TTS), so every test runs in well under a second; ``test_realtime_server_sdk.py``
does the same with the real offline models and OpenAI's own SDK.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import pytest
import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection, connect

from parley.audio import StreamResampler, ulaw_decode, ulaw_encode
from parley.endpointing import EAGERNESS, EndOfTurn, EndOfTurnInput
from parley.protocols.openai_realtime import TurnDetection
from parley.realtime_server import (
    EngineMaker,
    RealtimeBackend,
    cascade_maker,
    create_realtime_app,
    endpoint_config,
    estimate_usage,
    turn_config,
)
from parley.testing.fakes import FakeLLM, FakeSTT, FakeTTS, FakeVAD, silence, tone
from parley.turns import TurnConfig
from servers import LoopServer, start_serving

FAKE_TTS_MS_PER_CHAR = 20.0


class Stack(NamedTuple):
    """A server's shared input side and its per-session engine maker (None: offline)."""

    backend: RealtimeBackend
    make_engine: EngineMaker | None = None


@contextlib.asynccontextmanager
async def serve(stack: Stack, *, api_key: str | None = None) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_realtime_app(
        backend=stack.backend, make_engine=stack.make_engine, api_key=api_key, warmup=False
    )
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
    transcripts: Sequence[str] = ("hello there",),
    *,
    llm: FakeLLM | None = None,
    tts_delay_s: float = 0.0,
) -> tuple[Stack, FakeSTT]:
    stack, stt, _ = fake_stack(transcripts, llm=llm, tts_delay_s=tts_delay_s)
    return stack, stt


def fake_stack(
    transcripts: Sequence[str] = ("hello there",),
    *,
    llm: FakeLLM | None = None,
    tts_delay_s: float = 0.0,
) -> tuple[Stack, FakeSTT, FakeTTS]:
    vad = FakeVAD(16000)
    stt = FakeSTT(list(transcripts))
    brain = llm or FakeLLM(reply=lambda msgs: f"You said: {msgs[-1].content}")
    tts = FakeTTS(16000, ms_per_char=FAKE_TTS_MS_PER_CHAR, chunk_ms=100.0, delay_s=tts_delay_s)
    backend = RealtimeBackend(vad=vad, stt=stt, voices=("tone",))
    return Stack(backend, cascade_maker(vad, FakeSTT(), brain, tts)), stt, tts


def spoken_ms(tts: FakeTTS) -> float:
    """How much audio the tone TTS made (it speaks clause by clause)."""
    return sum(tts.duration_ms(t) for t in tts.texts)


async def send(ws: ClientConnection, event: dict[str, Any]) -> None:
    await ws.send(json.dumps(event))


async def recv(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(10):
        event: dict[str, Any] = json.loads(await ws.recv())
    return event


async def until(ws: ClientConnection, kind: str) -> list[dict[str, Any]]:
    """Every event up to and including the first of type ``kind``."""
    seen = []
    while True:
        event = await recv(ws)
        seen.append(event)
        if event["type"] == kind:
            return seen


def pcm24(pcm16k: bytes) -> bytes:
    rs = StreamResampler(16000, 24000)
    return rs.process(pcm16k) + rs.flush()


async def append(ws: ClientConnection, audio: bytes, chunk: int) -> None:
    for i in range(0, len(audio), chunk):
        piece = base64.b64encode(audio[i : i + chunk]).decode()
        await send(ws, {"type": "input_audio_buffer.append", "audio": piece})


def condensed(types: list[str]) -> list[str]:
    """Event types with runs of the same delta type collapsed to one."""
    out: list[str] = []
    for t in types:
        if t.endswith(".delta") and t in out[-2:]:
            continue
        out.append(t)
    return out


RESPONSE_ORDER = [
    "response.created",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
]
RESPONSE_END = [
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "conversation.item.done",
    "response.done",
]


async def test_server_vad_turn_in_the_documented_order() -> None:
    stack, stt, tts = fake_stack(["hello there"])
    async with serve(stack) as url, connect(url) as ws:
        first = await recv(ws)
        assert first["type"] == "session.created"
        assert first["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
        await send(
            ws,
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "instructions": "Be brief.",
                    "audio": {
                        "input": {
                            "turn_detection": {
                                "type": "server_vad",
                                "threshold": 0.5,
                                "silence_duration_ms": 300,
                                "prefix_padding_ms": 200,
                            }
                        }
                    },
                },
            },
        )
        updated = await recv(ws)
        assert updated["type"] == "session.updated"
        td = updated["session"]["audio"]["input"]["turn_detection"]
        assert (td["silence_duration_ms"], td["prefix_padding_ms"]) == (300, 200)
        assert updated["session"]["instructions"] == "Be brief."

        speech = silence(400) + tone(600) + silence(700)
        await append(ws, pcm24(speech), 4800)  # 100 ms appends
        events = await until(ws, "response.done")
        types = condensed([e["type"] for e in events])
        expected = [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
            "conversation.item.input_audio_transcription.completed",
            *RESPONSE_ORDER,
            "response.output_audio_transcript.delta",
            "response.output_audio.delta",
            *RESPONSE_END,
        ]
        # Transcript deltas run ahead of audio (the LLM streams before TTS speaks):
        # compare with the deltas' relative order left out, then check both came.
        no_deltas = [t for t in types if not t.endswith(".delta")]
        assert no_deltas == [t for t in expected if not t.endswith(".delta")]
        assert "response.output_audio.delta" in types
        assert "response.output_audio_transcript.delta" in types

        by_type = {e["type"]: e for e in events}
        started = by_type["input_audio_buffer.speech_started"]
        stopped = by_type["input_audio_buffer.speech_stopped"]
        assert (
            started["item_id"]
            == stopped["item_id"]
            == by_type["input_audio_buffer.committed"]["item_id"]
        )
        # Onset at 400 ms, minus the 200 ms prefix padding; end at ~1000 ms (32 ms frames).
        assert 150 <= started["audio_start_ms"] <= 250
        assert 950 <= stopped["audio_end_ms"] <= 1100
        user_done = next(e for e in events if e["type"] == "conversation.item.done")
        assert user_done["item"]["role"] == "user"
        assert user_done["item"]["content"][0] == {
            "type": "input_audio",
            "transcript": "hello there",
        }
        assert (
            by_type["conversation.item.input_audio_transcription.completed"]["transcript"]
            == "hello there"
        )
        # The committed audio is the utterance, 16 kHz for the STT.
        assert len(stt.calls) >= 1 and 0.7 < len(stt.calls[-1]) / 32000 < 1.3

        done = by_type["response.done"]["response"]
        assert done["status"] == "completed"
        assert done["object"] == "realtime.response"
        item = done["output"][0]
        assert item["role"] == "assistant" and item["status"] == "completed"
        part = item["content"][0]
        assert part["type"] == "output_audio"  # GA content types only
        reply = "You said: hello there"
        assert part["transcript"] == reply
        transcript = "".join(
            e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta"
        )
        assert transcript == reply
        assert by_type["response.output_audio_transcript.done"]["transcript"] == reply
        audio = b"".join(
            base64.b64decode(e["delta"])
            for e in events
            if e["type"] == "response.output_audio.delta"
        )
        audio_ms = len(audio) / 2 / 24000 * 1000  # PCM16 at 24 kHz
        assert audio_ms == pytest.approx(spoken_ms(tts), abs=5)
        usage = done["usage"]
        user_ms = len(stt.calls[-1]) / 32
        assert usage["input_token_details"]["audio_tokens"] == math.ceil(user_ms / 100)
        assert usage["input_token_details"]["text_tokens"] == math.ceil(len("Be brief.") / 4)
        assert usage["output_token_details"]["audio_tokens"] == math.ceil(audio_ms / 50)
        assert usage["output_token_details"]["text_tokens"] == math.ceil(len(reply) / 4)
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


async def test_manual_commit_with_pcmu_both_ways() -> None:
    stack, stt, tts = fake_stack(["what time is it"])
    async with serve(stack) as url, connect(url) as ws:
        await recv(ws)
        await send(
            ws,
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {
                        "input": {"format": {"type": "audio/pcmu"}, "turn_detection": None},
                        "output": {"format": {"type": "audio/pcmu"}},
                    },
                },
            },
        )
        updated = await recv(ws)
        assert updated["session"]["audio"]["input"]["turn_detection"] is None
        assert updated["session"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}

        speech = tone(500, 8000)
        ulaw = ulaw_encode(speech)
        # 50 ms is under the 100 ms minimum.
        await append(ws, ulaw[:400], 160)
        await send(ws, {"type": "input_audio_buffer.commit", "event_id": "evt_c1"})
        err = await recv(ws)
        assert err["type"] == "error"
        assert err["error"]["code"] == "input_audio_buffer_commit_empty"
        assert err["error"]["event_id"] == "evt_c1"
        # No VAD: loud audio makes no speech events, and nothing happens before commit.
        await append(ws, ulaw[400:], 160)
        await send(ws, {"type": "input_audio_buffer.commit"})
        events = await until(ws, "conversation.item.input_audio_transcription.completed")
        assert [e["type"] for e in events] == [
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
            "conversation.item.input_audio_transcription.completed",
        ]
        assert events[-1]["transcript"] == "what time is it"
        # The whole 500 ms reached the STT, decoded and resampled to 16 kHz.
        assert len(stt.calls[-1]) / 32 == pytest.approx(500, abs=15)
        await send(ws, {"type": "response.create"})
        events = await until(ws, "response.done")
        audio = b"".join(
            base64.b64decode(e["delta"])
            for e in events
            if e["type"] == "response.output_audio.delta"
        )
        reply = "You said: what time is it"
        # µ-law at 8 kHz: one byte a sample.
        assert reply.startswith(tts.texts[0])
        assert len(audio) / 8 == pytest.approx(spoken_ms(tts), abs=5)
        pcm = np.frombuffer(ulaw_decode(audio), dtype="<i2").astype(np.float64)
        rms = float(np.sqrt(np.mean(pcm[400:-400] ** 2)))
        assert 4000 < rms < 7000  # the 8000-amplitude tone, not noise or silence
        assert events[-1]["response"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}


async def test_malformed_events_get_errors_and_the_session_goes_on() -> None:
    stack, _ = fake_backend()
    async with serve(stack) as url, connect(url) as ws:
        await recv(ws)
        cases = [
            ("not json", "invalid_json"),
            ('{"event_id": "e1"}', "invalid_event"),
            ('{"type": "no.such.event"}', "invalid_event"),
            ('["a list"]', "invalid_event"),
            ('{"type": "input_audio_buffer.append", "audio": 5}', "invalid_event"),
            ('{"type": "input_audio_buffer.append", "audio": "@@not base64@@"}', "invalid_audio"),
            ('{"type": "conversation.item.delete", "item_id": "nope"}', "item_not_found"),
            ('{"type": "response.cancel", "event_id": "e9"}', "response_cancel_not_active"),
            (
                '{"type": "session.update", "session": {"type": "realtime", "audio": '
                '{"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}}',
                "invalid_value",
            ),
        ]
        for frame, code in cases:
            await ws.send(frame)
            event = await recv(ws)
            assert event["type"] == "error", frame
            assert event["error"]["code"] == code, (frame, event)
            assert event["error"]["type"] == "invalid_request_error"
        # The session is intact: the rejected update changed nothing, a good one works.
        await send(
            ws, {"type": "session.update", "session": {"type": "realtime", "instructions": "x"}}
        )
        updated = await recv(ws)
        assert updated["type"] == "session.updated"
        assert updated["session"]["audio"]["input"]["format"] == {
            "type": "audio/pcm",
            "rate": 24000,
        }


async def test_items_responses_cancel_and_the_one_active_response() -> None:
    llm = FakeLLM(reply=lambda msgs: f"You said: {msgs[-1].content}", delay_s=0.05)
    stack, _ = fake_backend(llm=llm)
    async with serve(stack) as url, connect(url) as ws:
        await recv(ws)
        await send(
            ws,
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
            },
        )
        await recv(ws)
        await send(
            ws,
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "id": "item_u1",
                    "content": [{"type": "input_text", "text": "one two three four five six"}],
                },
            },
        )
        added, done = await recv(ws), await recv(ws)
        assert (added["type"], done["type"]) == (
            "conversation.item.added",
            "conversation.item.done",
        )
        assert added["item"]["id"] == "item_u1" and added["previous_item_id"] is None

        await send(ws, {"type": "response.create"})
        created = await recv(ws)
        assert created["type"] == "response.created"
        assert created["response"]["status"] == "in_progress"
        await send(ws, {"type": "response.create", "event_id": "e2"})
        events = await until(ws, "error")
        assert events[-1]["error"]["code"] == "conversation_already_has_active_response"
        assert created["response"]["id"] in events[-1]["error"]["message"]
        await send(ws, {"type": "response.cancel"})
        events = await until(ws, "response.done")
        done_resp = events[-1]["response"]
        assert done_resp["status"] == "cancelled"
        assert done_resp["status_details"]["reason"] == "client_cancelled"
        assert done_resp["id"] == created["response"]["id"]
        # Nothing more from the cancelled reply, and a new response may start.
        await send(ws, {"type": "response.cancel"})
        err = await until(ws, "error")
        assert err[-1]["error"]["code"] == "response_cancel_not_active"
        assert all(e.get("response_id") != done_resp["id"] for e in err)

        await send(
            ws,
            {
                "type": "conversation.item.create",
                "previous_item_id": "root",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "hi"}],
                },
            },
        )
        first = (await until(ws, "conversation.item.done"))[-1]
        assert first["previous_item_id"] is None
        await send(ws, {"type": "conversation.item.delete", "item_id": first["item"]["id"]})
        deleted = await until(ws, "conversation.item.deleted")
        assert deleted[-1]["item_id"] == first["item"]["id"]
        await send(
            ws,
            {
                "type": "conversation.item.create",
                "previous_item_id": "missing",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "x"}],
                },
            },
        )
        assert (await until(ws, "error"))[-1]["error"]["code"] == "item_not_found"


async def test_truncate_cuts_the_assistant_item() -> None:
    stack, _, tts = fake_stack()
    async with serve(stack) as url, connect(url) as ws:
        await recv(ws)
        await send(
            ws,
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
            },
        )
        await recv(ws)
        await send(
            ws,
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "alpha beta gamma delta"}],
                },
            },
        )
        user = (await until(ws, "conversation.item.done"))[-1]["item"]["id"]
        await send(ws, {"type": "response.create"})
        done = (await until(ws, "response.done"))[-1]["response"]
        item = done["output"][0]
        reply = item["content"][0]["transcript"]
        assert reply == "You said: alpha beta gamma delta"
        total_ms = spoken_ms(tts)
        await send(
            ws,
            {
                "type": "conversation.item.truncate",
                "item_id": item["id"],
                "content_index": 0,
                "audio_end_ms": int(total_ms) + 100,
            },
        )
        assert (await until(ws, "error"))[-1]["error"]["code"] == "invalid_value"
        await send(
            ws,
            {
                "type": "conversation.item.truncate",
                "item_id": user,
                "content_index": 0,
                "audio_end_ms": 0,
            },
        )
        assert (await until(ws, "error"))[-1]["error"]["code"] == "invalid_value"
        half = int(total_ms / 2)
        await send(
            ws,
            {
                "type": "conversation.item.truncate",
                "item_id": item["id"],
                "content_index": 0,
                "audio_end_ms": half,
            },
        )
        truncated = (await until(ws, "conversation.item.truncated"))[-1]
        assert (truncated["item_id"], truncated["audio_end_ms"]) == (item["id"], half)
        await send(ws, {"type": "conversation.item.retrieve", "item_id": item["id"]})
        retrieved = (await until(ws, "conversation.item.retrieved"))[-1]["item"]
        heard = retrieved["content"][0]["transcript"]
        assert reply.startswith(heard) and 0 < len(heard) < len(reply)
        assert heard == "You said: alpha"  # whole words up to the middle


async def test_barge_in_cancels_the_reply_with_turn_detected() -> None:
    stack, _ = fake_backend(["first", "second"], tts_delay_s=0.1)
    async with serve(stack) as url, connect(url) as ws:
        await recv(ws)
        await send(
            ws,
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {
                        "input": {
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 300}
                        }
                    },
                },
            },
        )
        await recv(ws)
        await append(ws, pcm24(tone(500) + silence(600)), 4800)
        await until(ws, "response.output_audio.delta")
        await append(ws, pcm24(tone(500)), 4800)
        events = await until(ws, "response.done")
        kinds = [e["type"] for e in events]
        assert kinds.index("input_audio_buffer.speech_started") < kinds.index("response.done")
        assert events[-1]["response"]["status"] == "cancelled"
        assert events[-1]["response"]["status_details"]["reason"] == "turn_detected"
        assert events[-1]["response"]["output"][0]["status"] == "incomplete"


async def test_api_key_header_subprotocol_and_refusal() -> None:
    stack, _ = fake_backend()
    async with serve(stack, api_key="sk-local-1") as url:
        for headers, protocols in [({}, None), ({"Authorization": "Bearer wrong"}, None)]:
            with pytest.raises(websockets.InvalidStatus) as info:
                async with connect(url, additional_headers=headers, subprotocols=protocols):
                    pass
            assert info.value.response.status_code == 401
            assert b"invalid_api_key" in info.value.response.body
        async with connect(url, additional_headers={"Authorization": "Bearer sk-local-1"}) as ws:
            assert (await recv(ws))["type"] == "session.created"
        offered = ["realtime", "openai-insecure-api-key.sk-local-1"]
        async with connect(url, subprotocols=offered) as ws:  # type: ignore[arg-type]
            assert ws.subprotocol == "realtime"
            assert (await recv(ws))["type"] == "session.created"


def test_turn_detection_maps_onto_turn_config() -> None:
    cfg = turn_config(TurnDetection(threshold=0.7, silence_duration_ms=500, prefix_padding_ms=300))
    assert (cfg.threshold, cfg.end_of_turn_silence_ms, cfg.prefix_padding_ms) == (0.7, 500, 300)
    assert cfg.stop_threshold <= cfg.threshold
    short = turn_config(TurnDetection(silence_duration_ms=200))
    assert short.speculative_silence_ms < short.end_of_turn_silence_ms == 200
    # semantic_vad: until the transcript is in, the eagerness curve's wait.
    for eagerness, pending in (("high", 992), ("medium", 1504), ("low", 2016)):
        td = TurnDetection(type="semantic_vad", eagerness=eagerness)  # type: ignore[arg-type]
        assert turn_config(td).end_of_turn_silence_ms == pending
        assert endpoint_config(td).model == EAGERNESS[eagerness]  # type: ignore[index]
    assert turn_config(TurnDetection()) == TurnConfig(stop_threshold=0.35)


def test_server_vad_runs_the_model_with_its_silence_as_the_unsure_wait() -> None:
    ep = endpoint_config(TurnDetection(type="server_vad", silence_duration_ms=500))
    assert ep.mode == "model"
    model = EndOfTurn(ep.model)
    assert model.pending_ms == 500  # a slow transcript never waits longer than asked
    # Surer than unsure, so shorter than the silence asked for (0.85 → 202 ms).
    assert 160 <= model.decide(EndOfTurnInput("I'd like a large pizza, please.")).wait_ms < 250
    assert model.decide(EndOfTurnInput("My account number is")).wait_ms == 1504
    assert endpoint_config(TurnDetection(silence_duration_ms=100)).model.short_ms == 100


def pause_utterance() -> bytes:
    """Words, a 1.2 s pause, more words, then silence (energy VAD, 16 kHz)."""
    return silence(300) + tone(600) + silence(1200) + tone(500) + silence(2600)


async def committed_turns(url: str, turn_detection: dict[str, Any]) -> list[str]:
    """Speak :func:`pause_utterance` over the socket (100 ms appends) with
    ``turn_detection``; the transcripts of the turns the server committed."""
    async with connect(url) as ws:
        assert (await recv(ws))["type"] == "session.created"
        session = {"type": "realtime", "audio": {"input": {"turn_detection": turn_detection}}}
        await send(ws, {"type": "session.update", "session": session})
        assert (await recv(ws))["type"] == "session.updated"
        await append(ws, pcm24(pause_utterance()), 4800)
        turns: list[str] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.5):  # the last turn ends 0.3–2 s in (audio time)
                while True:
                    event = await recv(ws)
                    if event["type"] == "conversation.item.input_audio_transcription.completed":
                        turns.append(event["transcript"])
        return turns


@pytest.mark.parametrize(
    ("turn_detection", "turns"),
    [
        # "My account number is" at the pause: the model waits 992 ms when eager
        # (the 1.2 s pause cuts the turn), 2,016 ms when not (one turn).
        ({"type": "semantic_vad", "eagerness": "high"}, 2),
        ({"type": "semantic_vad", "eagerness": "low"}, 1),
        ({"type": "semantic_vad", "eagerness": "auto"}, 1),
        # server_vad: the same model; acoustically a 640 ms silence would cut the pause.
        ({"type": "server_vad", "silence_duration_ms": 640}, 1),
    ],
)
async def test_semantic_vad_eagerness_sets_the_wait_after_unfinished_words(
    turn_detection: dict[str, Any], turns: int
) -> None:
    # The STT's first run is the speculation at the pause, then what each turn says.
    stack, _stt = fake_backend(["My account number is", "4 4 7 1 2 9.", "4 4 7 1 2 9."])
    async with serve(stack) as url:
        heard = await committed_turns(url, turn_detection)
    assert len(heard) == turns, heard


async def test_semantic_vad_ends_a_finished_sentence_sooner_than_its_silence() -> None:
    """A finished sentence ends ~160 ms after the speech (and the transcript) with
    the model, where the acoustic wait of medium eagerness was 640 ms."""
    stack, _stt = fake_backend(["I would like a large pizza, please."])
    async with serve(stack) as url, connect(url) as ws:
        assert (await recv(ws))["type"] == "session.created"
        td = {"type": "semantic_vad", "eagerness": "medium"}
        session = {"type": "realtime", "audio": {"input": {"turn_detection": td}}}
        await send(ws, {"type": "session.update", "session": session})
        assert (await recv(ws))["type"] == "session.updated"
        # Speech then 400 ms of silence in one append, then nothing: the transcript of
        # the pause comes in after the audio, and the session polls the input.
        audio = pcm24(silence(300) + tone(600) + silence(400))
        await append(ws, audio, len(audio))  # one append
        events = await until(ws, "input_audio_buffer.committed")
        assert [e["type"] for e in events][-2:] == [
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
        ]
        await until(ws, "response.done")  # the reply, before the socket closes


def test_usage_estimate_rules() -> None:
    usage = estimate_usage(
        "abcdefgh", [("hi", 0.0, 0.0), ("", 1050.0, 0.0), ("x", 0.0, 520.0)], "hello", 1001.0
    )
    assert usage.input_text_tokens == 2 + 1  # instructions + the typed "hi"
    assert usage.input_audio_tokens == 11 + 11  # 1050 ms user /100, 520 ms assistant /50
    assert (usage.output_text_tokens, usage.output_audio_tokens) == (2, 21)

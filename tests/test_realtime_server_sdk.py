"""The proof for issue 5 item 2: OpenAI's official Python SDK talks to the local
Realtime server — real uvicorn socket, no network, the real offline stack (Silero,
Whisper tiny.en, the echo brain, Piper)."""

from __future__ import annotations

import base64
import time

import numpy as np
import pytest
import soxr
from openai import AsyncOpenAI

from parley.realtime_server import offline_backend
from speech import normalise, speak
from test_realtime_server import Stack, serve

SENTENCE = "Please book a table for two people tonight."


def _pcm24(text: str) -> bytes:
    pcm, rate = speak(text)  # Piper, 22,050 Hz
    samples = np.frombuffer(pcm, dtype="<i2")
    return bytes(soxr.resample(samples, rate, 24000).astype("<i2").tobytes())


async def test_official_sdk_round_trip_offline() -> None:
    backend = offline_backend()
    await backend.warmup()
    speech = bytes(2 * 24000 * 3 // 10) + _pcm24(SENTENCE) + bytes(2 * 24000)  # + 1 s silence
    async with serve(Stack(backend), api_key="sk-parley-test") as url:
        base = url.removesuffix("/realtime")
        client = AsyncOpenAI(api_key="sk-parley-test", websocket_base_url=base)
        async with client.realtime.connect(model="gpt-realtime") as conn:
            created = await conn.recv()
            assert created.type == "session.created"
            await conn.session.update(
                session={
                    "type": "realtime",
                    "instructions": "Repeat what you hear.",
                    "output_modalities": ["audio"],
                    "audio": {
                        "input": {
                            "format": {"type": "audio/pcm", "rate": 24000},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
                        },
                        "output": {"format": {"type": "audio/pcm", "rate": 24000}},
                    },
                }
            )
            updated = await conn.recv()
            assert updated.type == "session.updated"
            assert updated.session.instructions == "Repeat what you hear."
            t0 = time.monotonic()
            step = 2 * 2400  # 100 ms appends, as a client streaming a microphone would
            for i in range(0, len(speech), step):
                await conn.input_audio_buffer.append(
                    audio=base64.b64encode(speech[i : i + step]).decode()
                )
            transcript = ""
            audio = b""
            reply = ""
            kinds: list[str] = []
            async for event in conn:
                kinds.append(event.type)
                if event.type == "conversation.item.input_audio_transcription.completed":
                    transcript = event.transcript
                elif event.type == "response.output_audio.delta":
                    audio += base64.b64decode(event.delta)
                elif event.type == "response.output_audio_transcript.done":
                    reply = event.transcript
                elif event.type == "error":
                    pytest.fail(f"server error: {event.error}")
                elif event.type == "response.done":
                    done = event
                    break
            elapsed = time.monotonic() - t0
    assert normalise(SENTENCE) in normalise(transcript)
    assert normalise(reply) == normalise(f"You said: {SENTENCE}")
    assert done.response.status == "completed"
    assert done.response.usage is not None and done.response.usage.output_tokens > 0
    seconds = len(audio) / 2 / 24000
    assert seconds > 2.0, seconds  # Piper speaking the echoed sentence at 24 kHz
    assert (
        kinds.index("input_audio_buffer.speech_started")
        < kinds.index("input_audio_buffer.committed")
        < kinds.index("response.created")
        < kinds.index("response.done")
    )
    print(f"sdk round trip: {elapsed:.2f}s wall, reply {seconds:.2f}s of audio")

"""Whisper and Piper for real: Piper speaks, Whisper transcribes, nothing is faked.

The models load once per test session (the process-wide registry), so these
tests cost a few seconds of loading plus about half a second per transcription.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator

import numpy as np
import pytest
import soxr

from parley.errors import LocalProtocolError
from parley.providers import STT, TTS
from parley.providers.models import load_count, load_counts
from parley.providers.piper import PiperTTS
from parley.providers.whisper import WhisperSTT
from speech import normalise, silence_16k, speak_16k

pytestmark = pytest.mark.slow

SENTENCES = [
    "Please call me back tomorrow morning.",
    "I would like to book a table for two people tonight.",
]


def test_satisfy_the_seams() -> None:
    assert isinstance(WhisperSTT(), STT)
    assert isinstance(PiperTTS(), TTS)
    assert WhisperSTT().sample_rate == 16000
    assert PiperTTS().sample_rate == 22050


@pytest.mark.parametrize("text", SENTENCES)
async def test_whisper_transcribes_piper_speech_exactly(text: str) -> None:
    result = await WhisperSTT().transcribe(silence_16k(0.2) + speak_16k(text) + silence_16k(0.2))
    assert normalise(result.text) == normalise(text)
    assert result.is_final and result.language == "en"
    assert 1.0 < result.duration_s < 5.0


async def test_whisper_empty_and_odd_input() -> None:
    stt = WhisperSTT()
    assert (await stt.transcribe(b"")).text == ""
    with pytest.raises(LocalProtocolError) as info:
        await stt.transcribe(b"\x00\x01\x02")
    assert info.value.code == "bad_pcm_length"
    with pytest.raises(ValueError):
        WhisperSTT(cpu_threads=0)


async def test_piper_streams_sentence_by_sentence() -> None:
    tts = PiperTTS()
    await tts.warmup()
    text = "Hello there. " + (
        "Your order left our warehouse yesterday afternoon and it should reach you"
        " by Friday, unless the weather delays the trucks again."
    )
    start = time.perf_counter()
    arrivals: list[float] = []
    chunks: list[bytes] = []
    async for chunk in tts.synthesize(text):
        arrivals.append(time.perf_counter() - start)
        chunks.append(chunk)
    total = time.perf_counter() - start
    assert len(chunks) >= 2
    assert all(len(c) % 2 == 0 and c for c in chunks)
    # The short first sentence comes out well before the long rest is made.
    assert arrivals[0] < 0.5 * total
    assert len(chunks[0]) < len(b"".join(chunks[1:]))
    seconds = sum(len(c) for c in chunks) / 2 / tts.sample_rate
    assert 4.0 < seconds < 15.0  # plausibly the whole text at speaking pace


async def test_piper_output_says_the_text() -> None:
    tts = PiperTTS()
    pcm = b"".join([c async for c in tts.synthesize(SENTENCES[0])])
    pcm16k = soxr.resample(np.frombuffer(pcm, dtype="<i2"), tts.sample_rate, 16000)
    result = await WhisperSTT().transcribe(pcm16k.astype("<i2").tobytes())
    assert normalise(result.text) == normalise(SENTENCES[0])


async def test_piper_closing_early_stops_synthesis() -> None:
    tts = PiperTTS()
    stream = tts.synthesize("One. Two. Three. Four. Five.")
    assert isinstance(stream, AsyncGenerator)
    first = await anext(stream)
    await stream.aclose()  # barge-in: nothing after the first sentence is made
    assert first
    assert [c async for c in tts.synthesize("   ")] == []


async def test_second_instances_load_nothing() -> None:
    stt, tts = WhisperSTT(), PiperTTS()
    await stt.warmup()
    await tts.warmup()
    before = load_counts()
    assert before[stt.model_name] == 1 and before[tts.model_name] == 1
    stt2, tts2 = WhisperSTT(), PiperTTS()
    await stt2.transcribe(speak_16k(SENTENCES[0]))
    _ = [c async for c in tts2.synthesize("Nothing new is loaded.")]
    assert load_counts() == before
    assert load_count(stt2.model_name) == 1 and load_count(tts2.model_name) == 1
    # A different thread count is a different CTranslate2 model: that one does load.
    assert WhisperSTT(cpu_threads=1).model_name != stt.model_name


async def test_inference_runs_off_the_event_loop(caplog: pytest.LogCaptureFixture) -> None:
    stt, tts = WhisperSTT(), PiperTTS()
    await stt.warmup()
    await tts.warmup()
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    # Whisper on the loop takes ~0.4 s; a loaded 2-core machine (GIL handoffs, other
    # processes) can stretch a normal callback to tens of milliseconds.
    loop.slow_callback_duration = 0.1
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)  # the probe: how late the loop wakes it is measured
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    caplog.set_level(logging.WARNING, logger="asyncio")
    tick = asyncio.create_task(ticker())
    try:
        pcm = speak_16k(SENTENCES[1])
        transcript, audio = await asyncio.gather(
            stt.transcribe(pcm), _collect(tts.synthesize(SENTENCES[1]))
        )
    finally:
        tick.cancel()
        loop.set_debug(False)
    assert normalise(transcript.text) == normalise(SENTENCES[1])
    assert audio
    slow = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
    assert slow == []
    assert len(gaps) > 20  # the loop kept ticking while the models ran
    assert max(gaps) < 0.3, gaps


async def _collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in stream])

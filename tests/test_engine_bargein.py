"""Backchannel-aware barge-in in the cascade engine (``CascadeConfig.barge_in``):
Piper-spoken sounds while a reply plays, heard by Silero and Whisper tiny.en."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from parley.bargein import BargeInConfig
from parley.engines import CascadeConfig, CascadeEngine
from parley.events import AudioDelta, Interrupted, ResponseStarted, Role, TranscriptFinal
from parley.providers.silero import SileroVAD
from parley.providers.whisper import WhisperSTT
from parley.testing.events import EventLog
from parley.testing.fakes import FakeLLM, FakeTTS
from speech import silence_16k, speak_16k

RATE = 16000
# ~12 s of reply audio (the tone TTS: 80 ms a character), played on the wall clock.
REPLY = "Your order has two large pizzas, one with olives and one with mushrooms, and a salad."


@pytest.fixture(scope="module")
def models() -> tuple[SileroVAD, WhisperSTT]:
    return SileroVAD(), WhisperSTT()


@asynccontextmanager
async def replying(models: tuple[SileroVAD, WhisperSTT]) -> AsyncIterator[EventLog]:
    """An engine speaking a long reply to a typed question."""
    vad, stt = models
    engine = CascadeEngine(
        vad,
        stt,
        FakeLLM([REPLY, "Sure, what would you like instead?"]),
        FakeTTS(RATE, ms_per_char=80.0),
        CascadeConfig(barge_in=BargeInConfig()),
    )
    log = EventLog(engine)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(engine.run())
        tg.create_task(log.collect())
        await engine.send_text("What is in my order?")
        await log.until(lambda: bool(log.of(AudioDelta)), limit_s=10)
        yield log
        await engine.close()


async def say(log: EventLog, text: str) -> None:
    engine = log.engine
    assert isinstance(engine, CascadeEngine)
    pcm = silence_16k(0.3) + speak_16k(text) + silence_16k(1.5)
    step = 2 * RATE * 20 // 1000
    for i in range(0, len(pcm), step):
        await engine.send_audio(pcm[i : i + step])
        await asyncio.sleep(0.002)  # faster than real time, the decisions in between


def user_words(log: EventLog) -> list[str]:
    return [t.text for t in log.of(TranscriptFinal) if t.role is Role.USER]


@pytest.mark.parametrize("sound", ["Yeah.", "Okay.", "Right.", "Uh-huh."])
async def test_a_backchannel_neither_stops_the_reply_nor_is_answered(
    models: tuple[SileroVAD, WhisperSTT], sound: str
) -> None:
    async with replying(models) as log:
        await say(log, sound)
        # The burst's transcript and the policy's decision. A burst judged a
        # backchannel is dropped without an event (only its transcript's return shows,
        # and the decision comes after it), so this asserts on a window.
        await asyncio.sleep(2.0)
        assert not log.of(Interrupted)
        assert user_words(log) == ["What is in my order?"]  # no new turn
        assert len(log.of(ResponseStarted)) == 1


async def test_words_during_the_reply_stop_it_and_are_answered(
    models: tuple[SileroVAD, WhisperSTT],
) -> None:
    async with replying(models) as log:
        await say(log, "Wait, stop. I want to change my order.")
        await log.until(lambda: len(log.of(ResponseStarted)) == 2, limit_s=15)
        (cut,) = log.of(Interrupted)
        assert cut.played_text and REPLY.startswith(cut.played_text.rstrip(".,"))
        heard = user_words(log)
        assert len(heard) == 2 and "change my order" in heard[1].lower()

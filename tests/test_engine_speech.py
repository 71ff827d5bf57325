"""The speech front end on its own: FakeVAD (energy) and FakeSTT over real PCM."""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any

import pytest

from parley.endpointing import EndpointConfig
from parley.engines.speech import (
    SpeechFrontEnd,
    SpeechOutput,
    SpeechPause,
    SpeechResume,
    SpeechStart,
    Transcription,
    UserTurn,
)
from parley.errors import ProviderError
from parley.testing.fakes import FakeSTT, FakeVAD, silence, tone
from parley.turns import TurnConfig
from waits import WatchedSTT

RATE = 16000
FRAME_MS = 32  # FakeVAD's frame


def front(
    stt: FakeSTT | None = None, turn: TurnConfig | None = None, **kw: Any
) -> tuple[SpeechFrontEnd, FakeVAD, FakeSTT]:
    vad, stt = FakeVAD(RATE), stt or FakeSTT("hello there")
    return SpeechFrontEnd(vad, stt, turn if turn is not None else TurnConfig(), **kw), vad, stt


async def feed(
    fe: SpeechFrontEnd, pcm: bytes, *, chunk_ms: int = 20, t0: float = 0.0
) -> list[SpeechOutput]:
    """Push ``pcm`` in chunks (one batch each); chunk k 'arrived' at t0 + k·chunk_ms."""
    step = 2 * RATE * chunk_ms // 1000
    out: list[SpeechOutput] = []
    for k, i in enumerate(range(0, len(pcm), step)):
        out += await fe.push([(pcm[i : i + step], t0 + k * chunk_ms / 1000)])
        # Live, time passes between chunks: a speculative STT task (no delay) finishes.
        await asyncio.sleep(0)
    return out


def kinds(outs: list[SpeechOutput]) -> list[type]:
    return [type(o) for o in outs]


async def test_an_utterance_is_transcribed_once_at_the_pause_and_reused() -> None:
    fe, _vad, stt = front()
    outs = await feed(fe, silence(320) + tone(640) + silence(900), t0=100.0)
    assert kinds(outs) == [SpeechStart, SpeechPause, UserTurn]
    start, pause, turn = outs
    assert isinstance(start, SpeechStart) and isinstance(pause, SpeechPause)
    assert isinstance(turn, UserTurn)
    assert start.audio_ms == pytest.approx(320, abs=FRAME_MS)
    assert start.start_ms == pytest.approx(0, abs=FRAME_MS)  # 320 ms of prefix padding
    assert math.isinf(start.gap_ms) and pause.speculating
    assert turn.speculative_hit and turn.reason == "silence"
    assert len(stt.calls) == 1 and stt.calls[0] == turn.audio
    heard = await turn.transcript
    assert isinstance(heard, Transcription) and heard.result.text == "hello there"  # type: ignore[union-attr]
    assert turn.audio_ms == pytest.approx(960, abs=FRAME_MS)
    # The end of speech is dated by the arrival of the chunk that carried it.
    assert turn.speech_end_t == pytest.approx(100.0 + 0.96, abs=0.04)
    assert turn.figures["speculative_stt_runs"] == 1.0
    assert turn.figures["end_of_turn_wait_ms"] == pytest.approx(640, abs=FRAME_MS)
    assert fe.position_ms == pytest.approx(1860, abs=FRAME_MS)
    await fe.aclose()


async def test_speech_resuming_drops_the_speculation() -> None:
    stt = FakeSTT(["my number is", "my number is five five five"], delay_s=0.2)
    fe, _vad, stt = front(stt)
    outs = await feed(fe, silence(100) + tone(500) + silence(300) + tone(500))
    assert kinds(outs) == [SpeechStart, SpeechPause, SpeechResume]
    outs = await feed(fe, silence(900))
    assert kinds(outs) == [SpeechPause, UserTurn]
    turn = outs[-1]
    assert isinstance(turn, UserTurn) and turn.speculative_hit
    assert turn.figures["speculative_stt_runs"] == 2.0  # both runs of this utterance
    assert (await turn.transcript).result.text == "my number is five five five"  # type: ignore[union-attr]
    assert len(stt.calls) == 2 and len(stt.calls[1]) > len(stt.calls[0])
    await fe.aclose()


async def test_without_speculation_the_stt_runs_at_the_end_of_turn() -> None:
    fe, _vad, stt = front(speculative_stt=False)
    outs = await feed(fe, silence(100) + tone(600) + silence(300))
    assert kinds(outs) == [SpeechStart, SpeechPause] and not stt.calls
    pause = outs[-1]
    assert isinstance(pause, SpeechPause) and not pause.speculating
    outs = await feed(fe, silence(600))
    (turn,) = outs
    assert isinstance(turn, UserTurn) and not turn.speculative_hit
    assert (await turn.transcript).result.text == "hello there"  # type: ignore[union-attr]
    assert stt.calls == [turn.audio]
    await fe.aclose()


async def test_one_executor_call_scores_a_whole_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    import parley.engines.speech as speech

    calls: list[tuple[int, str]] = []
    original = speech._score

    def counting(stream: Any, frames: list[bytes]) -> list[float]:
        calls.append((len(frames), threading.current_thread().name))
        return original(stream, frames)

    monkeypatch.setattr(speech, "_score", counting)
    fe, vad, _stt = front()
    pcm = silence(100) + tone(600) + silence(900)  # 1.6 s = 50 frames
    step = 2 * RATE * 20 // 1000
    outs = await fe.push([(pcm[i : i + step], 0.0) for i in range(0, len(pcm), step)])
    assert kinds(outs) == [SpeechStart, SpeechPause, UserTurn]
    assert [n for n, _ in calls] == [50] and vad.streams[0].frames == 50
    assert calls[0][1] != threading.main_thread().name  # in the executor, not on the loop
    await fe.aclose()


async def test_a_finished_sentence_ends_the_turn_when_its_transcript_is_in() -> None:
    """Endpointing: no audio arrives after the pause, yet poll() ends the turn once
    the speculative transcript says the sentence is complete."""
    woke = asyncio.Event()
    stt = FakeSTT("What time is it?", delay_s=0.05)
    turn = TurnConfig(end_of_turn_silence_ms=640, speculative_silence_ms=96)
    fe, _vad, _ = front(
        stt,
        turn,
        endpointing=EndpointConfig(complete_wait_ms=256, incomplete_wait_ms=960),
        on_transcript=woke.set,
    )
    outs = await fe.push([(silence(100) + tone(600) + silence(400), 0.0)])
    assert kinds(outs) == [SpeechStart, SpeechPause]  # 400 ms < the acoustic 640 ms
    await asyncio.wait_for(woke.wait(), 2)
    (ended,) = fe.poll()
    assert isinstance(ended, UserTurn) and ended.speculative_hit
    assert ended.figures["endpoint_verdict"] == 1.0
    assert ended.figures["end_of_turn_wait_ms"] == 256.0
    assert fe.poll() == []  # judged once
    await fe.aclose()


async def test_an_unfinished_transcript_makes_the_turn_wait_longer() -> None:
    turn = TurnConfig(end_of_turn_silence_ms=640, speculative_silence_ms=96)
    fe, _vad, _ = front(
        FakeSTT("My number is"), turn, endpointing=EndpointConfig(incomplete_wait_ms=960)
    )
    outs = await feed(fe, silence(100) + tone(600) + silence(800))
    assert kinds(outs) == [SpeechStart, SpeechPause]  # 800 ms of silence did not end it
    outs = await feed(fe, silence(300))
    (ended,) = outs
    assert isinstance(ended, UserTurn) and ended.figures["endpoint_verdict"] == -1.0
    assert ended.figures["end_of_turn_wait_ms"] == 960.0
    await fe.aclose()


async def test_reset_drops_the_utterance_and_positions_go_on() -> None:
    fe, _vad, _stt = front(FakeSTT("x", delay_s=5))
    outs = await feed(fe, silence(100) + tone(600) + silence(300))
    assert kinds(outs) == [SpeechStart, SpeechPause]
    speculation = next(iter(fe._tasks))
    before = fe.position_ms
    fe.reset()
    assert not fe.in_turn
    await asyncio.wait([speculation])  # the cancellation has taken effect
    assert speculation.cancelled()
    outs = await feed(fe, silence(1000))
    assert outs == [] and fe.position_ms == pytest.approx(before + 1000, abs=FRAME_MS)
    await fe.aclose()


async def test_reconfigure_applies_new_settings_from_the_current_position() -> None:
    fe, _vad, _stt = front()
    await feed(fe, silence(1000))
    fe.reconfigure(TurnConfig(end_of_turn_silence_ms=1200, prefix_padding_ms=0))
    outs = await feed(fe, tone(600) + silence(900))
    assert kinds(outs) == [SpeechStart, SpeechPause]  # 900 ms no longer ends a turn
    start = outs[0]
    assert isinstance(start, SpeechStart)
    assert start.audio_ms == pytest.approx(1000, abs=FRAME_MS)  # positions go on
    assert start.start_ms == start.audio_ms  # no prefix padding now
    outs = await feed(fe, silence(400))
    assert kinds(outs) == [UserTurn]
    await fe.aclose()


async def test_turn_detection_off_only_counts_the_audio() -> None:
    fe, vad, stt = front()
    fe.reconfigure(None)
    assert fe.turn_config is None
    outs = await feed(fe, silence(100) + tone(600) + silence(900))
    assert outs == [] and not stt.calls
    assert not vad.streams or vad.streams[0].frames == 0  # nothing was scored
    assert fe.position_ms == pytest.approx(1600)
    fe.reconfigure(TurnConfig())
    outs = await feed(fe, tone(600) + silence(900))
    assert kinds(outs) == [SpeechStart, SpeechPause, UserTurn]
    assert outs[0].audio_ms == pytest.approx(1600, abs=FRAME_MS)  # type: ignore[union-attr]
    await fe.aclose()


async def test_flush_ends_the_turn_in_progress() -> None:
    fe, _vad, _stt = front()
    assert fe.flush() is None
    outs = await feed(fe, silence(100) + tone(600))
    assert kinds(outs) == [SpeechStart] and fe.in_turn
    turn = fe.flush()
    assert turn is not None and turn.reason == "flush" and not fe.in_turn
    assert (await turn.transcript).result.text == "hello there"  # type: ignore[union-attr]
    await fe.aclose()


async def test_stt_errors_are_values_and_aclose_cancels_what_runs() -> None:
    fe, _vad, _stt = front(FakeSTT(error=ProviderError("stt down", provider="fake")))
    failed = await fe.transcribe(tone(300))
    assert isinstance(failed.result, ProviderError) and failed.stt_ms >= 0
    stt = WatchedSTT("late", delay_s=10)
    slow, _vad, _ = front(stt)
    task = slow.transcribe(tone(300))
    await stt.watch.until(lambda: len(stt.calls) == 1)  # under way when aclose comes
    await slow.aclose()
    assert task.cancelled()
    await fe.aclose()

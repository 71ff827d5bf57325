"""End of turn on the labelled corpus, Whisper in the loop, over a phone line. ONE JSON line.

Data: ``tests/data/turn_corpus.json`` built by ``bench/turn_corpus.py`` (Piper, one
synthesis per utterance, pauses inserted at Whisper-found word boundaries): pause
utterances (phone/card/account numbers, addresses, emails, lists, dates,
hesitations, hanging clauses, spelled codes; 300–1,000 ms pauses) and finished ones
(statements, questions, short answers to the agent's question).

The caller is Twilio-faithful: the 16 kHz utterance goes down to 8 kHz (the phone
network), is µ-law encoded in 20 ms frames (160 bytes, what Twilio sends), and each
frame is decoded and resampled to 16 kHz by a per-call ``StreamResampler`` exactly as
the server does; Silero v5 scores 32 ms frames of that. The resampler's delay is
added to every decision time (the caller hears the answer that much later).

Simulation at real-time pace on the audio clock: the TurnDetector runs frame by
frame; at each SpeechPaused the audio so far is transcribed for real and the
transcript "arrives" after its measured wall time (one STT at a time); a
SpeechResumed before it drops it. Then the setting's policy sets the wait. Settings,
all in the same run:

- ``acoustic``: the TurnDetector's 640 ms alone (no STT);
- ``rule``: today's transcript-aware rule (``EndpointConfig()``), full Whisper;
- ``model``: :class:`parley.endpointing.EndOfTurn` (syntax + dialogue context,
  adaptive wait), QuickWhisper transcripts; and ``model/full-whisper`` to separate
  the model from the faster transcript;
- each signal alone (``syntax-only``, ``context-only``, ``smart-turn-only``) and
  ``model+smart-turn`` (Smart Turn v3.2's p as a third signal, weight 1, its own
  inference time added), and the ``semantic_vad`` eagerness curves low/high.

Split: ``split`` in the labels (half tune, half held). A small grid of wait curves is
ranked on the tuning half (≤ 5 % cut-offs, then the lowest finished-delay p50);
held-out figures are the honest ones. Goals (issue 12): ≤ 5 % early cut-offs on
held-out pause utterances, finished end-of-turn delay p50 ≤ 400 ms.

``stt_candidates``: full Whisper vs QuickWhisper (latency, CPU per call, agreement on
the whole utterances), and the CPU an incremental re-transcription every 500 ms of
speech would cost.

Run: ``.venv/bin/python bench/turns.py [--quick]`` (~10 min on 2 cores; ``--quick``:
every fourth utterance). Figures of the last runs (busy shared box): see
:mod:`parley.endpointing`. STT candidates in the same run: full Whisper wall p50
346–466 ms, CPU p50 ~475 ms per call; QuickWhisper wall p50 90–97 ms, CPU p50
~146 ms (7–14 of ~760–1250 calls fell back to the full window on a repetition);
same words as full Whisper on 69–73 of 100 held-out utterances, 8.6 word edits per
100 words once digit grouping is ignored (mostly digit formatting and a dropped
last word either way). Incremental re-transcription every 500 ms of speech would
cost ~230 ms of CPU per second of speech per call — a quarter of a core per
talking caller — for a transcript that at the pause is still missing its last
words, so the quick window at the pause is the chosen approach.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import re
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from parley.audio.g711 import ulaw_decode, ulaw_encode
from parley.audio.resample import StreamResampler
from parley.endpointing import (
    EndOfTurn,
    EndOfTurnConfig,
    EndOfTurnInput,
    EndpointConfig,
    EndpointPolicy,
    eagerness_config,
)
from parley.turns import (
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnConfig,
    TurnDetector,
    TurnEnded,
)
from turn_corpus import RATE, Builder, Rendered, load_items

FRAME = 512  # Silero v5 at 16 kHz: 32 ms
FRAME_BYTES = FRAME * 2
LINE_RATE = 8000
LINE_FRAME = 160  # 20 ms of 8 kHz µ-law


def phone_line(pcm16k: bytes) -> tuple[bytes, float]:
    """What the server's engine gets from a Twilio caller: 16 kHz → 8 kHz µ-law in
    20 ms frames → decoded and resampled back to 16 kHz by a stream resampler.
    Returns the audio and the resampler's delay (ms)."""
    narrow = soxr.resample(np.frombuffer(pcm16k, "<i2"), RATE, LINE_RATE)
    ulaw = ulaw_encode(np.asarray(narrow).round().clip(-32768, 32767).astype("<i2").tobytes())
    rs = StreamResampler(LINE_RATE, RATE)
    out = bytearray()
    sent = 0
    for i in range(0, len(ulaw) - LINE_FRAME + 1, LINE_FRAME):
        out += rs.process(ulaw_decode(ulaw[i : i + LINE_FRAME]))
        sent += LINE_FRAME
    # The stream's output is time-aligned with its input, so what it still owes at the
    # end (the steady-state deficit, as bench/resampler_delay.py measures) is its delay.
    delay = (sent * RATE / LINE_RATE - len(out) / 2) * 1000 / RATE
    out += rs.flush()
    out = out[: len(out) // FRAME_BYTES * FRAME_BYTES]
    return bytes(out), delay


def silero(pcm: bytes) -> list[float]:
    from parley.providers.silero import SileroVAD

    stream = _VAD.setdefault("v", SileroVAD(RATE)).stream()
    return [stream.probability(pcm[i : i + FRAME_BYTES]) for i in range(0, len(pcm), FRAME_BYTES)]


_VAD: dict[str, Any] = {}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_utime + r.ru_stime) * 1000


class Timed:
    """A blocking model call, cached per audio, remembering wall and CPU ms per call."""

    def __init__(self, fn: Callable[[bytes], Any], store: Path | None = None) -> None:
        self._fn = fn
        self._store = store
        self._cache: dict[str, tuple[Any, float, float]] = {}
        if store is not None and store.is_file():
            self._cache = pickle.loads(store.read_bytes())

    def save(self) -> None:
        if self._store is not None:
            self._store.parent.mkdir(parents=True, exist_ok=True)
            self._store.write_bytes(pickle.dumps(self._cache))

    def __call__(self, audio: bytes) -> tuple[Any, float]:
        key = hashlib.blake2b(audio, digest_size=16).hexdigest()
        if key not in self._cache:
            t0, c0 = time.perf_counter(), _cpu()
            value = self._fn(audio)
            self._cache[key] = (value, (time.perf_counter() - t0) * 1000, _cpu() - c0)
        value, ms, _ = self._cache[key]
        return value, ms

    def wall(self) -> list[float]:
        return [ms for _, ms, _ in self._cache.values()]

    def cpu(self) -> list[float]:
        return [c for _, _, c in self._cache.values()]


@dataclass(frozen=True)
class Setting:
    name: str
    turn: TurnConfig
    stt: str | None  # "full" | "quick" | None (acoustic)
    decide: Callable[[str, Rendered, float | None], float | None] | None
    smart_turn: bool = False


@dataclass
class Utt:
    r: Rendered
    pcm: bytes
    probs: list[float]


def simulate(s: Setting, u: Utt, models: dict[str, Timed], line_delay: float) -> dict[str, Any]:
    det = TurnDetector(s.turn, RATE, FRAME_BYTES)
    ended: list[TurnEnded] = []
    pending: tuple[float, str, float | None] | None = None
    busy = 0.0
    runs = 0
    # 2.5 s of silence after the audio, so a 2 s wait (eagerness low) can still end it.
    probs = [*u.probs, *([0.0] * 80)]
    pcm = u.pcm + bytes(80 * FRAME_BYTES)
    for i, p in enumerate(probs):
        if pending is not None and det.position_ms >= pending[0] and s.decide is not None:
            wait = s.decide(pending[1], u.r, pending[2])
            pending = None
            if (e := det.set_end_of_turn_silence(wait)) is not None:
                ended.append(e)
        sig = det.push(pcm[i * FRAME_BYTES : (i + 1) * FRAME_BYTES], p)
        if sig is None:
            continue
        if isinstance(sig, TurnEnded):
            ended.append(sig)
            pending = None
        elif isinstance(sig, SpeechPaused) and s.stt is not None:
            runs += 1
            result, ms = models[s.stt](sig.audio)
            text = result.transcript.text if s.stt == "quick" else result.text
            p_audio = None
            if s.smart_turn:
                p_audio, st_ms = models["smart_turn"](sig.audio)
                ms += st_ms
            start = max(sig.at_ms, busy)
            busy = start + ms
            pending = (busy, text, p_audio)
        elif isinstance(sig, SpeechResumed | SpeechStarted):
            pending = None
    end = u.r.speech_end_ms
    cuts = [e for e in ended if e.at_ms < end and e.audio_ms > u.r.speech_start_ms]
    final = next((e for e in ended if e.at_ms >= end), None)
    return {
        "cut": bool(cuts),
        "missed": final is None,
        "delay": None if final is None else final.at_ms + line_delay - end,
        "runs": runs,
    }


def pct(xs: list[float], q: float) -> float | None:
    return round(float(np.percentile(xs, q)), 1) if xs else None


def summarise(
    s: Setting, utts: list[Utt], models: dict[str, Timed], delay: float
) -> dict[str, Any]:
    res = [(u, simulate(s, u, models, delay)) for u in utts]
    pause = [(u, r) for u, r in res if u.r.item.kind == "pause"]
    fin = [(u, r) for u, r in res if u.r.item.kind != "pause"]
    by_cat: dict[str, list[int]] = {}
    for u, r in pause:
        c = by_cat.setdefault(u.r.item.category, [0, 0])
        c[0] += r["cut"]
        c[1] += 1
    fin_d = [r["delay"] for _, r in fin if r["delay"] is not None and not r["cut"]]
    pause_d = [r["delay"] for _, r in pause if r["delay"] is not None and not r["cut"]]
    kinds: dict[str, list[float]] = {}
    for u, r in fin:
        if r["delay"] is not None and not r["cut"]:
            kinds.setdefault(u.r.item.kind, []).append(r["delay"])
    return {
        "setting": s.name,
        "cutoff_rate": round(sum(r["cut"] for _, r in pause) / max(1, len(pause)), 3),
        "finished_delay_p50_ms": pct(fin_d, 50),
        "finished_delay_p90_ms": pct(fin_d, 90),
        "finished_delay_p50_by_kind": {k: pct(v, 50) for k, v in sorted(kinds.items())},
        "finished_cut_rate": round(sum(r["cut"] for _, r in fin) / max(1, len(fin)), 3),
        "pause_utts_delay_p50_ms": pct(pause_d, 50),
        "missed": sum(r["missed"] for _, r in res),
        "cut_by_category": {k: f"{v[0]}/{v[1]}" for k, v in sorted(by_cat.items())},
        "stt_runs_per_utt": round(sum(r["runs"] for _, r in res) / max(1, len(res)), 2),
    }


def model_decide(
    model: EndOfTurn, *, context: bool = True
) -> Callable[[str, Rendered, float | None], float | None]:
    def decide(text: str, r: Rendered, p_audio: float | None) -> float | None:
        agent = r.item.agent if context else None
        d = model.decide(EndOfTurnInput(text, last_agent_text=agent, audio_p_finished=p_audio))
        return d.wait_ms

    return decide


def settings(grid: bool) -> list[Setting]:
    base = TurnConfig()
    rule = EndpointPolicy(EndpointConfig())
    out = [
        Setting("acoustic-640", base, None, None),
        Setting("rule (today's default)", base, "full", lambda t, r, p: rule.wait_ms(t)[1]),
    ]

    def model(
        name: str, cfg: EndOfTurnConfig, stt: str = "quick", spec: float = 160.0, **kw: Any
    ) -> Setting:
        turn = replace(base, end_of_turn_silence_ms=cfg.pending_ms, speculative_silence_ms=spec)
        st = cfg.audio_weight > 0
        return Setting(name, turn, stt, model_decide(EndOfTurn(cfg), **kw), smart_turn=st)

    default = EndOfTurnConfig()
    out += [
        model("model", default),
        model("model/full-whisper", default, "full"),
        model("syntax-only", replace(default, context_weight=0.0)),
        model("context-only", replace(default, syntax_weight=0.0)),
        model("model+smart-turn", replace(default, audio_weight=1.0)),
        model(
            "smart-turn-only", replace(default, syntax_weight=0, context_weight=0, audio_weight=1)
        ),
        model("eagerness-low", eagerness_config("low")),
        model("eagerness-high", eagerness_config("high")),
    ]
    if grid:  # the trade-off curve: how long a "surely finished" turn waits
        for short in (96.0, 160.0, 320.0, 480.0, 640.0):
            for unsure in (704.0, 960.0):
                for p_high in (0.8, 0.9):
                    cfg = replace(
                        default, short_ms=short, unsure_ms=max(short, unsure), p_high=p_high
                    )
                    out.append(model(f"grid s{short:.0f} u{unsure:.0f} p{p_high}", cfg))
                    if short <= 320:  # the transcript 64 ms sooner, at more STT runs
                        name = f"grid spec96 s{short:.0f} u{unsure:.0f} p{p_high}"
                        out.append(model(name, cfg, spec=96.0))
    return out


def _norm(text: str) -> str:
    """Lower-case words; digit runs joined ("8 0 8" = "808" = "8-08"), since the two
    decoders group spoken digits differently and that is formatting, not hearing."""
    words = re.findall(r"[a-z0-9']+", text.lower())
    out: list[str] = []
    for w in words:
        if w.isdigit() and out and out[-1].isdigit():
            out[-1] += w
        else:
            out.append(w)
    return " ".join(out)


def _edits(a: list[str], b: list[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="every fourth utterance")
    ap.add_argument("--no-grid", action="store_true")
    ap.add_argument(
        "--stt-cache",
        type=Path,
        default=None,
        help="reuse model results (and their measured times) from this directory; for "
        "iterating on policies only — a reported run starts without it",
    )
    ap.add_argument("--only", choices=("tune", "held"), default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    items = load_items()
    if args.quick:
        items = items[::4]
    builder = Builder()
    rendered = [builder.render(i) for i in items]
    t1 = time.perf_counter()
    utts, line_delay = [], 0.0
    for r in rendered:
        pcm, line_delay = phone_line(r.pcm)
        utts.append(Utt(r, pcm, silero(pcm)))
    t2 = time.perf_counter()

    from parley.providers.quick_whisper import QuickWhisperSTT
    from parley.providers.smart_turn import SmartTurn
    from parley.providers.whisper import WhisperSTT

    full, quick, st = WhisperSTT(), QuickWhisperSTT(), SmartTurn()
    full._transcribe_blocking(bytes(2 * RATE))
    quick.transcribe_blocking(bytes(2 * RATE))
    st.p_finished_blocking(bytes(2 * RATE))
    store = args.stt_cache
    models = {
        "full": Timed(full._transcribe_blocking, store and store / "full.pkl"),
        "quick": Timed(quick.transcribe_blocking, store and store / "quick.pkl"),
        "smart_turn": Timed(st.p_finished_blocking, store and store / "smart_turn.pkl"),
    }
    all_settings = settings(grid=not args.no_grid)
    tune = [u for u in utts if u.r.item.split == "tune"]
    held = [u for u in utts if u.r.item.split == "held"]
    if args.only == "tune":
        held = tune
    elif args.only == "held":
        tune = held
    rows_tune = [summarise(s, tune, models, line_delay) for s in all_settings]
    rows_held = [summarise(s, held, models, line_delay) for s in all_settings]
    t3 = time.perf_counter()

    def rank(row: dict[str, Any]) -> tuple[Any, ...]:
        """Both goals if any setting meets them; else the fewest cut-offs among those
        that keep the finished p50 within 400 ms and cut at most 3 % of finished
        utterances; never one that misses a turn end."""
        p50 = row["finished_delay_p50_ms"] or 1e9
        return (
            row["missed"] > 0,
            p50 > 400,
            row["finished_cut_rate"] > 0.03,
            row["cutoff_rate"] > 0.05,
            row["cutoff_rate"],
            p50,
        )

    grid_i = [i for i, s in enumerate(all_settings) if s.name.startswith("grid")]
    best = min(grid_i, key=lambda i: rank(rows_tune[i])) if grid_i else None

    # STT candidates on whole utterances (the final pause's audio is what matters most).
    whole = [u.pcm[: int((u.r.speech_end_ms + 160) * RATE / 1000) * 2] for u in held]
    agree, edits, words = 0, 0, 0
    for a in whole:
        f = _norm(models["full"](a)[0].text).split()
        q = _norm(models["quick"](a)[0].transcript.text).split()
        agree += f == q
        edits += _edits(f, q)
        words += len(f)
    inc_cpu: list[float] = []
    for u in held[:: max(1, len(held) // 12)]:  # incremental: every 500 ms of the utterance
        speech_s = (u.r.speech_end_ms - u.r.speech_start_ms) / 1000
        c0 = _cpu()
        start = int(u.r.speech_start_ms * RATE / 1000)
        for k in range(1, int(speech_s / 0.5) + 1):
            quick.transcribe_blocking(u.pcm[: (start + k * RATE // 2) * 2])
        inc_cpu.append((_cpu() - c0) / max(0.5, speech_s))
    for m in models.values():
        m.save()
    out = {
        "bench": "turns",
        "quick_fallbacks_to_full_window": quick.fallbacks,
        "stt_cache_reused": args.stt_cache is not None,
        "utterances": len(utts),
        "held_out": len(held),
        "held_pause_utts": sum(u.r.item.kind == "pause" for u in held),
        "held_finished_utts": sum(u.r.item.kind != "pause" for u in held),
        "line": "16k -> 8k mu-law 20 ms frames -> decode -> StreamResampler(8000, 16000) LQ",
        "line_delay_ms": round(line_delay, 1),
        "vad": "silero v5, 32 ms",
        "goals": {"cutoff_rate_max": 0.05, "finished_delay_p50_max_ms": 400},
        "held": [rows_held[i] for i in range(len(all_settings)) if i not in grid_i],
        "tune": [rows_tune[i] for i in range(len(all_settings)) if i not in grid_i],
        "grid_rule": "tuning half: no miss; finished p50 <= 400 ms; <= 3 % finished "
        "cut; then fewest cut-offs",
        "grid_best_on_tune": None if best is None else all_settings[best].name,
        "grid_best_held": None if best is None else rows_held[best],
        "grid_held": [
            {
                k: r[k]
                for k in ("setting", "cutoff_rate", "finished_delay_p50_ms", "finished_cut_rate")
            }
            for i, r in enumerate(rows_held)
            if i in grid_i
        ],
        "stt_candidates": {
            name: {
                "calls": len(models[name].wall()),
                "wall_p50_ms": pct(models[name].wall(), 50),
                "wall_p90_ms": pct(models[name].wall(), 90),
                "cpu_p50_ms": pct(models[name].cpu(), 50),
            }
            for name in ("full", "quick", "smart_turn")
        }
        | {
            "quick_vs_full_on_held_utterances": {
                "exact": f"{agree}/{len(whole)}",
                "word_edits_per_100_words": round(100 * edits / max(1, words), 1),
            },
            "incremental_quick_every_500ms_cpu_ms_per_speech_s_p50": pct(inc_cpu, 50),
        },
        "seconds": {
            "corpus": round(t1 - t0, 1),
            "line_and_vad": round(t2 - t1, 1),
            "simulate": round(t3 - t2, 1),
            "total": round(time.perf_counter() - t0, 1),
        },
    }
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()

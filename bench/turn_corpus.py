"""The labelled turn-taking corpus: labels in ``tests/data/turn_corpus.json``, audio built here.

Each utterance is synthesised ONCE, whole, by Piper (en_US-joe-medium, no sampling
noise, the item's ``length_scale``), so its fragments keep the intonation of one
sentence — not the sentence-final fall every separately synthesised fragment gets.
Where the script has a ``|`` with a pause length, the builder finds that word
boundary with Whisper word timestamps (faster-whisper ``word_timestamps=True`` on the
bundled tiny.en), then picks the cut among the quietest 10 ms local minima within
±200 ms of it (tiny.en's word edges are often 100–200 ms off), checking each by
transcribing the audio before it: the first whose last recognised word is the
script's word before the boundary is taken (``verified``; if none is, the quietest,
unverified). Then it inserts that much silence there. Then lead silence, tail
silence and, for some items, white noise at ``snr_db``.

Alignment: the script's words and Whisper's words are matched with difflib after
spelling digits out ("447" → four four seven); a boundary whose neighbours did not
match is interpolated between the nearest matched ones. ``cut_db`` (level at the
cut relative to the utterance's loudest 10 ms) says how clean each cut is.

Audio is cached under ``.cache/turn_corpus/`` at the repository root (git-ignored),
one ``.npz`` per item keyed by a hash of the item, the builder version and the
Piper/Whisper model files; a second build reads the cache. Building all ~200 takes
a few minutes on 2 cores (the bench reports it).

    python bench/turn_corpus.py            # build (or check) the cache, one JSON line
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "tests" / "data" / "turn_corpus.json"
CACHE = ROOT / ".cache" / "turn_corpus"
RATE = 16_000
LEAD_MS = 600.0
TAIL_MS = 2_000.0
FLOOR_DB = -50.0  # dBFS of a 10 ms window below which it is not speech
SEARCH_MS = 200.0  # Whisper's word edges are this far off at worst, measured
MAX_TRIES = 4
BUILDER_VERSION = 5

_DIGIT_NAMES = "zero one two three four five six seven eight nine".split()  # noqa: SIM905
_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class Item:
    id: str
    kind: str  # pause | finished | question | short
    category: str
    agent: str | None
    text: str  # with "|" at the candidate pause points
    pauses_ms: tuple[float | None, ...]
    length_scale: float
    snr_db: float | None
    split: str  # tune | held

    @property
    def spoken(self) -> str:
        return " ".join(self.text.replace("|", " ").split())

    @property
    def boundaries(self) -> list[int]:
        """For each ``|``: how many script words come before it."""
        out, n = [], 0
        for part in self.text.split("|")[:-1]:
            n += len(_WORD.findall(part.lower()))
            out.append(n)
        return out


@dataclass(frozen=True)
class Rendered:
    item: Item
    pcm: bytes  # PCM16 mono 16 kHz: lead, speech with pauses, tail (noise if snr_db)
    speech_start_ms: float
    speech_end_ms: float
    pauses: tuple[tuple[float, float], ...]  # inserted silences (start_ms, end_ms)
    cut_db: tuple[float, ...]  # level at each cut relative to the loudest 10 ms
    verified: tuple[bool, ...] = ()  # Whisper heard the right last word before each cut


def load_items(path: Path = LABELS) -> list[Item]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return [
        Item(
            id=d["id"],
            kind=d["kind"],
            category=d["category"],
            agent=d["agent"],
            text=d["text"],
            pauses_ms=tuple(d["pauses_ms"]),
            length_scale=float(d["length_scale"]),
            snr_db=d["snr_db"],
            split=d["split"],
        )
        for d in doc["items"]
    ]


def _levels_db(audio: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """dBFS of each 10 ms window."""
    w = RATE // 100
    n = len(audio) // w
    frames = audio[: n * w].reshape(n, w) / 32768.0
    return np.asarray(10 * np.log10(np.mean(frames**2, axis=1) + 1e-12))


def _tokens(word: str) -> list[str]:
    """A recognised word as spoken tokens: digits spelled out one by one."""
    out: list[str] = []
    for tok in _WORD.findall(word.lower()):
        if tok.isdigit():
            out.extend(_DIGIT_NAMES[int(c)] for c in tok)
        else:
            out.extend(re.findall(r"[a-z']+|\d", tok))
    return out


def _script_words(item: Item) -> list[str]:
    return ["zero" if w in {"oh", "o"} else w for w in _WORD.findall(item.spoken.lower())]


class Builder:
    """Renders items with Piper and Whisper; one per process (models load once)."""

    def __init__(self, cache: Path | None = CACHE) -> None:
        from parley.providers.piper import PiperTTS
        from parley.providers.quick_whisper import QuickWhisperSTT
        from parley.providers.whisper import WhisperSTT

        self._cache = cache
        self._tts: dict[float, Any] = {}
        self._tts_cls = PiperTTS
        self._stt = WhisperSTT()
        self._quick = QuickWhisperSTT()  # the same model, ~3x faster on short audio
        self.synthesised = 0
        self.cached = 0

    def _voice(self, length_scale: float) -> Any:
        if length_scale not in self._tts:
            self._tts[length_scale] = self._tts_cls(
                length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0
            )
        return self._tts[length_scale]

    def _key(self, item: Item) -> str:
        from parley.providers.piper import bundled_voice_path
        from parley.providers.whisper import bundled_model_path

        blob = json.dumps(
            [asdict(item), BUILDER_VERSION, str(bundled_voice_path()), str(bundled_model_path())]
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def render(self, item: Item) -> Rendered:
        path = None if self._cache is None else self._cache / f"{item.id}-{self._key(item)}.npz"
        if path is not None and path.is_file():
            with np.load(path) as z:
                self.cached += 1
                return Rendered(
                    item,
                    z["pcm"].tobytes(),
                    float(z["start"]),
                    float(z["end"]),
                    tuple((float(a), float(b)) for a, b in z["pauses"]),
                    tuple(float(x) for x in z["cut_db"]),
                    tuple(bool(x) for x in z["verified"]),
                )
        out = self._build(item)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(
                tmp,
                pcm=np.frombuffer(out.pcm, "<i2"),
                start=out.speech_start_ms,
                end=out.speech_end_ms,
                pauses=np.array(out.pauses, dtype=np.float64).reshape(-1, 2),
                cut_db=np.array(out.cut_db, dtype=np.float64),
                verified=np.array(out.verified, dtype=bool),
            )
            tmp.replace(path)
        return out

    def word_times(self, audio: npt.NDArray[np.float64]) -> list[tuple[str, float, float]]:
        """(token, start_s, end_s) from Whisper's word timestamps, digits spelled out."""
        model = self._stt._model()
        segments, _ = model.transcribe(
            (audio / 32768.0).astype(np.float32),
            language="en",
            beam_size=1,
            temperature=0.0,
            word_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        out: list[tuple[str, float, float]] = []
        for seg in segments:
            for w in seg.words or []:
                toks = _tokens(w.word)
                step = (w.end - w.start) / max(1, len(toks))
                out.extend(
                    (t, w.start + k * step, w.start + (k + 1) * step) for k, t in enumerate(toks)
                )
        return out

    def _build(self, item: Item) -> Rendered:
        voice = self._voice(item.length_scale)
        raw = np.frombuffer(voice.synthesize_blocking(item.spoken), "<i2")
        audio = np.asarray(soxr.resample(raw, voice.sample_rate, RATE), np.float64)
        self.synthesised += 1
        db = _levels_db(audio)
        loud = np.flatnonzero(db > FLOOR_DB)
        w = RATE // 100
        audio = audio[loud[0] * w : (loud[-1] + 1) * w]  # Piper's lead-in and tail off
        cuts: list[tuple[int, float]] = []  # (sample index, pause ms)
        cut_db: list[float] = []
        verified: list[bool] = []
        wanted = [(b, ms) for b, ms in zip(item.boundaries, item.pauses_ms, strict=True) if ms]
        if wanted:
            times = self._boundary_times(item, audio, [b for b, _ in wanted])
            script = _script_words(item)
            db = _levels_db(audio)
            peak = float(db.max())
            for (b, ms), t in zip(wanted, times, strict=True):
                k, ok = self._cut_at(audio, db, int(t * 100), script[b - 1])
                cuts.append((k * w + w // 2, float(ms)))
                cut_db.append(round(float(db[k]) - peak, 1))
                verified.append(ok)
        parts: list[npt.NDArray[np.float64]] = [np.zeros(int(LEAD_MS * RATE / 1000))]
        pauses: list[tuple[float, float]] = []
        pos, prev = len(parts[0]), 0
        for at, ms in sorted(cuts):
            parts.append(audio[prev:at])
            pos += at - prev
            gap = int(ms * RATE / 1000)
            pauses.append((pos * 1000 / RATE, (pos + gap) * 1000 / RATE))
            parts.append(np.zeros(gap))
            pos += gap
            prev = at
        parts.append(audio[prev:])
        pos += len(audio) - prev
        end_ms = pos * 1000 / RATE
        parts.append(np.zeros(int(TAIL_MS * RATE / 1000)))
        out = np.concatenate(parts)
        if item.snr_db is not None:
            rng = np.random.default_rng(int(self._key(item), 16) % 2**32)
            rms = float(np.sqrt(np.mean(audio**2)))
            out = out + rng.normal(0.0, rms / 10 ** (item.snr_db / 20), len(out))
        pcm = out.round().clip(-32768, 32767).astype("<i2").tobytes()
        return Rendered(item, pcm, LEAD_MS, end_ms, tuple(pauses), tuple(cut_db), tuple(verified))

    def _cut_at(
        self, audio: npt.NDArray[np.float64], db: npt.NDArray[np.float64], centre: int, last: str
    ) -> tuple[int, bool]:
        """The 10 ms window to cut at near ``centre``: the quietest local minima within
        ±SEARCH_MS first, each checked by transcribing the audio before it — the cut is
        taken where Whisper's last word is the script's word before the boundary."""
        reach = int(SEARCH_MS / 10)
        lo, hi = max(1, centre - reach), min(len(db) - 1, centre + reach + 1)
        minima = [k for k in range(lo, hi) if db[k] <= db[k - 1] and db[k] <= db[k + 1]]
        # Quietest first; a small pull toward Whisper's estimate breaks near-ties.
        ranked = sorted(minima or [centre], key=lambda k: float(db[k]) + 0.02 * abs(k - centre))
        w = RATE // 100
        for k in ranked[:MAX_TRIES]:
            heard = _tokens(self._transcribe(audio[: k * w + w // 2]))
            if heard and (heard[-1] == last or (len(last) == 1 and heard[-1].endswith(last))):
                return k, True
        return ranked[0], False

    def _transcribe(self, audio: npt.NDArray[np.float64]) -> str:
        pcm = audio.round().clip(-32768, 32767).astype("<i2").tobytes()
        return self._quick.transcribe_blocking(pcm).transcript.text

    def _boundary_times(
        self, item: Item, audio: npt.NDArray[np.float64], boundaries: list[int]
    ) -> list[float]:
        """Seconds into ``audio`` of the gap before script word ``b``, for each ``b``."""
        script = _script_words(item)
        heard = self.word_times(audio)
        matcher = difflib.SequenceMatcher(a=script, b=[t for t, _, _ in heard], autojunk=False)
        pos: dict[int, int] = {}  # script index → heard index
        for block in matcher.get_matching_blocks():
            for k in range(block.size):
                pos[block.a + k] = block.b + k
        duration = len(audio) / RATE

        def start_of(i: int) -> float | None:
            return heard[pos[i]][1] if i in pos else None

        def end_of(i: int) -> float | None:
            return heard[pos[i]][2] if i in pos else None

        out = []
        for b in boundaries:
            left, right = end_of(b - 1), start_of(b)
            if left is not None and right is not None:
                out.append((left + right) / 2)
            elif left is not None or right is not None:
                out.append(left if left is not None else right)  # type: ignore[arg-type]
            else:  # interpolate between the nearest matched words on either side
                before = max((i for i in pos if i < b), default=None)
                after = min((i for i in pos if i >= b), default=None)
                t0 = end_of(before) if before is not None else 0.0
                t1 = start_of(after) if after is not None else duration
                i0 = before + 1 if before is not None else 0
                i1 = after if after is not None else len(script)
                frac = (b - i0) / max(1, i1 - i0)
                out.append(float(t0) + frac * (float(t1) - float(t0)))  # type: ignore[arg-type]
        return out


def build_all(items: list[Item] | None = None, cache: Path | None = CACHE) -> list[Rendered]:
    builder = Builder(cache)
    return [builder.render(i) for i in items or load_items()]


def main() -> None:
    t0 = time.perf_counter()
    builder = Builder()
    items = load_items()
    rendered = [builder.render(i) for i in items]
    cuts = [c for r in rendered for c in r.cut_db]
    out = {
        "bench": "turn_corpus",
        "utterances": len(rendered),
        "by_kind": {k: sum(i.kind == k for i in items) for k in sorted({i.kind for i in items})},
        "held_out": sum(i.split == "held" for i in items),
        "pauses": sum(len(r.pauses) for r in rendered),
        "pause_ms_range": [
            min(b - a for r in rendered for a, b in r.pauses),
            max(b - a for r in rendered for a, b in r.pauses),
        ],
        "cut_db_p50_max": [float(np.median(cuts)), float(max(cuts))] if cuts else None,
        "cuts_verified": sum(v for r in rendered for v in r.verified),
        "audio_s": round(sum(len(r.pcm) for r in rendered) / 2 / RATE, 1),
        "synthesised": builder.synthesised,
        "from_cache": builder.cached,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()

"""Added delay, filter quality and CPU cost of each soxr quality through StreamResampler.

For every ordered pair of 8, 16, 24 and 48 kHz and every quality it feeds 2 s of noise in
20 ms chunks and reports, as one JSON line:

- ``delay_ms``: steady-state output deficit (expected minus produced output, averaged
  over the second second) — the latency the resampler adds. ``aligned_lag`` checks that
  the stream output starts time-aligned (cross-correlation lag against the same stream's
  input, 0 = no hidden extra delay), so the deficit is the whole delay;
- ``tail_ok``: whether ``flush()`` returns the tail (total output within 1 sample of
  ``in_len * ratio``);
- ``alias_db`` (downsampling only): output level of a tone between the two Nyquist
  frequencies, which should be filtered out (0 dB = folded back unfiltered);
  ``pass3k_db``/``pass_db``: gain of a 3 kHz / 3.4 kHz tone (3.4 kHz is the top of the
  telephone band), ideally 0;
- ``cpu_us``: best-of-5 mean µs per 20 ms mono chunk through ``StreamResampler.process``.

Run: ``python bench/resampler_delay.py``
"""

from __future__ import annotations

import itertools
import json
import time

import numpy as np

from parley.audio import StreamResampler

RATES = (8000, 16000, 24000, 48000)
QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")


def _chunks(signal: np.ndarray, rate: int) -> list[bytes]:
    n = rate // 50
    return [signal[i : i + n].tobytes() for i in range(0, len(signal), n)]


def _delay_ms(in_rate: int, out_rate: int, quality: str) -> tuple[float, bool, int]:
    rng = np.random.default_rng(1)
    signal = (rng.standard_normal(in_rate * 2) * 4000).astype(np.int16)
    r = StreamResampler(in_rate, out_rate, quality=quality)  # type: ignore[arg-type]
    fed = produced = 0
    deficits = []
    out = []
    for chunk in _chunks(signal, in_rate):
        y = r.process(chunk)
        out.append(y)
        fed += len(chunk) // 2
        produced += len(y) // 2
        if fed > in_rate:
            deficits.append(fed * out_rate / in_rate - produced)
    tail = r.flush()
    out.append(tail)
    total = produced + len(tail) // 2
    tail_ok = abs(total - len(signal) * out_rate / in_rate) <= 1
    # Alignment: resample the stream output back with an offline call and find the lag
    # against the input; 0 means the stream added no delay beyond what it withholds.
    y_all = np.frombuffer(b"".join(out), dtype=np.int16).astype(np.float64)
    back = np.interp(np.arange(len(signal)) * out_rate / in_rate, np.arange(len(y_all)), y_all)
    x = signal.astype(np.float64)
    lags = range(-8, 9)
    scores = [float(np.dot(x[50 + lag : -50 + lag], back[50:-50])) for lag in lags]
    lag = list(lags)[int(np.argmax(scores))]
    return float(np.mean(deficits)) * 1000 / out_rate, tail_ok, lag


def _tone_db(in_rate: int, out_rate: int, quality: str, freq: float) -> float:
    t = np.arange(in_rate) / in_rate
    x = (np.sin(2 * np.pi * freq * t) * 10000).astype(np.int16)
    r = StreamResampler(in_rate, out_rate, quality=quality)  # type: ignore[arg-type]
    y = np.frombuffer(b"".join(r.process(c) for c in _chunks(x, in_rate)), dtype=np.int16)
    y = y[len(y) // 4 :].astype(np.float64)  # skip the start-up transient
    rms_in = 10000 / np.sqrt(2)
    rms_out = max(float(np.sqrt(np.mean(y * y))), 1e-3)
    return round(float(20 * np.log10(rms_out / rms_in)), 1)


def _cpu_us(in_rate: int, out_rate: int, quality: str) -> float:
    rng = np.random.default_rng(2)
    frames = _chunks((rng.standard_normal(in_rate) * 3000).astype(np.int16), in_rate)
    r = StreamResampler(in_rate, out_rate, quality=quality)  # type: ignore[arg-type]
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        for _ in range(40):
            for f in frames:
                r.process(f)
        best = min(best, (time.perf_counter_ns() - start) / (40 * len(frames)) / 1000)
    return round(best, 2)


def main() -> None:
    results = []
    for in_rate, out_rate in itertools.permutations(RATES, 2):
        for quality in QUALITIES:
            delay, tail_ok, lag = _delay_ms(in_rate, out_rate, quality)
            row: dict[str, object] = {
                "in": in_rate,
                "out": out_rate,
                "quality": quality,
                "delay_ms": round(delay, 2),
                "aligned_lag": lag,
                "tail_ok": tail_ok,
                "pass3k_db": _tone_db(in_rate, out_rate, quality, 3000.0),
                "pass_db": _tone_db(in_rate, out_rate, quality, 3400.0),
                "cpu_us": _cpu_us(in_rate, out_rate, quality),
            }
            if out_rate < in_rate:
                # A tone 30 % of the way from the output's Nyquist to the input's.
                alias_freq = out_rate / 2 + 0.3 * (in_rate - out_rate) / 2
                row["alias_db"] = _tone_db(in_rate, out_rate, quality, alias_freq)
            results.append(row)
    print(json.dumps({"bench": "resampler_delay", "chunk_ms": 20, "results": results}))


if __name__ == "__main__":
    main()

"""An energy VAD with an adaptive noise floor: no model, a few microseconds a frame.

Algorithm, per frame of PCM16:

1. ``level`` = RMS energy in dBFS (full scale = 0 dB; digital silence = -100 dB).
2. ``probability`` = logistic((level - floor - margin_db) / slope_db): 0.5 exactly
   ``margin_db`` above the noise floor, saturating within a few ``slope_db`` either side.
3. The noise floor follows the level asymmetrically: it falls quickly toward a
   quieter frame (time constant ``fall_s``) and rises slowly toward a louder one
   (``rise_s``), so pauses between words pull it down at once while a few seconds
   of speech (with its dips between syllables) barely lift it, yet a noise that
   stays (a fan, a car) is absorbed: with the defaults a 30 dB step stops
   counting as speech after about three seconds. It never drops below
   ``min_floor_db``, so near-silent input cannot make a faint hiss count as
   speech. The first frame seeds it.

Suitable where CPU matters more than robustness; Silero is far better in noise.
"""

from __future__ import annotations

import math

import numpy as np

from parley.errors import LocalProtocolError

__all__ = ["EnergyStream", "EnergyVAD"]

_SILENCE_DB = -100.0


class EnergyStream:
    """One call's noise floor."""

    __slots__ = (
        "_fall",
        "_floor",
        "_frame_bytes",
        "_margin",
        "_min_floor",
        "_rise",
        "_slope",
    )

    def __init__(
        self,
        frame_bytes: int,
        frame_s: float,
        margin_db: float,
        slope_db: float,
        rise_s: float,
        fall_s: float,
        min_floor_db: float,
    ) -> None:
        self._frame_bytes = frame_bytes
        self._margin = margin_db
        self._slope = slope_db
        # Per-frame smoothing coefficients of a one-pole filter with those time constants.
        self._rise = 1.0 - math.exp(-frame_s / rise_s)
        self._fall = 1.0 - math.exp(-frame_s / fall_s)
        self._min_floor = min_floor_db
        self._floor: float | None = None

    @property
    def frame_bytes(self) -> int:
        return self._frame_bytes

    @property
    def noise_floor_db(self) -> float | None:
        return self._floor

    def probability(self, frame: bytes) -> float:
        if len(frame) != self._frame_bytes:
            raise LocalProtocolError(
                f"energy VAD stream expects {self._frame_bytes} bytes per frame, got {len(frame)}",
                code="bad_frame_size",
            )
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
        power = float(np.dot(samples, samples)) / (len(samples) * 32768.0 * 32768.0)
        level = 10.0 * math.log10(power) if power > 1e-10 else _SILENCE_DB
        floor = self._floor if self._floor is not None else max(level, self._min_floor)
        x = (level - floor - self._margin) / self._slope
        prob = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))
        coef = self._rise if level > floor else self._fall
        self._floor = max(self._min_floor, floor + (level - floor) * coef)
        return prob

    def reset(self) -> None:
        self._floor = None


class EnergyVAD:
    """Energy VAD; frames of ``frame_ms`` (default 32 ms: Silero's frame size at 16 kHz)."""

    def __init__(
        self,
        sample_rate: int = 16000,
        frame_ms: int = 32,
        *,
        margin_db: float = 12.0,
        slope_db: float = 2.0,
        rise_s: float = 3.0,
        fall_s: float = 0.1,
        min_floor_db: float = -60.0,
    ) -> None:
        if sample_rate <= 0 or sample_rate * frame_ms % 1000:
            raise ValueError(f"{frame_ms} ms is not a whole number of samples at {sample_rate} Hz")
        if not 5 <= frame_ms <= 100:
            raise ValueError(f"frame_ms must be 5..100, not {frame_ms}")
        if slope_db <= 0 or rise_s <= 0 or fall_s <= 0:
            raise ValueError("slope_db, rise_s and fall_s must be positive")
        self._sample_rate = sample_rate
        self._frame_ms = frame_ms
        self._params = (margin_db, slope_db, rise_s, fall_s, min_floor_db)

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def frame_bytes(self) -> int:
        return self._sample_rate * self._frame_ms // 1000 * 2

    def stream(self) -> EnergyStream:
        return EnergyStream(self.frame_bytes, self._frame_ms / 1000.0, *self._params)

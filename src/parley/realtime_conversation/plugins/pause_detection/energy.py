"""``EnergyPauseDetector``: energy-based detection with an adaptive threshold, as
Parley's energy VAD (:class:`parley.providers.energy_vad.EnergyVAD`: the level in
dBFS against a noise floor that follows the input) and turn detector.

``margin_db`` is how far above the noise floor a frame must be to count as speech;
``min_speech_frames``/``min_pause_frames`` count 32 ms frames (``None``: Parley's
tuned defaults). No model, a few microseconds a frame; Silero and WebRTC are far
better in noise.
"""

from __future__ import annotations

from parley.errors import ConfigError
from parley.providers.energy_vad import EnergyVAD
from parley.providers.seams import VAD
from parley.realtime_conversation.plugins.pause_detection.frames import turn_config_from_frames
from parley.turns import TurnConfig

__all__ = ["EnergyPauseDetector"]


class EnergyPauseDetector:
    """Energy VAD with an adaptive noise floor (see the module docstring)."""

    sample_rate = 16000

    def __init__(
        self,
        margin_db: float = 12.0,
        min_speech_frames: int | None = None,
        min_pause_frames: int | None = None,
        *,
        frame_ms: int = 32,
    ) -> None:
        if not margin_db > 0:
            raise ConfigError(f"must be positive, not {margin_db}", field="margin_db")
        try:
            self._vad = EnergyVAD(self.sample_rate, frame_ms, margin_db=margin_db)
        except ValueError as exc:
            raise ConfigError(str(exc), field="frame_ms") from exc
        self.margin_db = margin_db
        self.frame_ms = frame_ms
        self._turn = turn_config_from_frames(frame_ms, min_speech_frames, min_pause_frames)

    @property
    def vad(self) -> VAD:
        return self._vad

    def turn_config(self) -> TurnConfig:
        return self._turn

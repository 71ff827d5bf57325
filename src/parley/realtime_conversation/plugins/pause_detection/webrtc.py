"""``WebRTCPauseDetector``: the document's WebRTC VAD, as Parley's WebRTC VAD and
turn detector.

The VAD is :class:`parley.providers.webrtc_vad.WebRTCVAD` (``webrtcvad-wheels``,
16 kHz, 30 ms frames); where a pause ends the user's turn is Parley's
:class:`~parley.turns.TurnDetector` (hysteresis, speculative STT, transcript-aware
endpointing). ``min_speech_frames`` frames of speech start a turn and
``min_pause_frames`` frames of silence end it (``None``: Parley's tuned defaults).
"""

from __future__ import annotations

from parley.errors import ConfigError
from parley.providers.seams import VAD
from parley.providers.webrtc_vad import WebRTCVAD
from parley.realtime_conversation.plugins.pause_detection.frames import turn_config_from_frames
from parley.turns import TurnConfig

__all__ = ["WebRTCPauseDetector"]


class WebRTCPauseDetector:
    """WebRTC VAD with ``aggressiveness`` 0 (keeps most speech) to 3 (rejects most noise)."""

    sample_rate = 16000

    def __init__(
        self,
        aggressiveness: int = 2,
        min_speech_frames: int | None = None,
        min_pause_frames: int | None = None,
        *,
        frame_ms: int = 30,
    ) -> None:
        if aggressiveness not in (0, 1, 2, 3):
            raise ConfigError(
                f"must be 0, 1, 2 or 3 (WebRTC VAD's modes), not {aggressiveness!r}",
                field="aggressiveness",
            )
        if frame_ms not in (10, 20, 30):
            raise ConfigError(
                f"WebRTC VAD frames are 10, 20 or 30 ms, not {frame_ms}", field="frame_ms"
            )
        self.aggressiveness = aggressiveness
        self.frame_ms = frame_ms
        self._vad = WebRTCVAD(aggressiveness, self.sample_rate, frame_ms)  # type: ignore[arg-type]
        self._turn = turn_config_from_frames(frame_ms, min_speech_frames, min_pause_frames)

    @property
    def vad(self) -> VAD:
        return self._vad

    def turn_config(self) -> TurnConfig:
        return self._turn

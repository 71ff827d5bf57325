"""WebRTC's GMM voice-activity detector (``webrtcvad-wheels``): 0 or 1 per frame.

The detector is tiny and has no model file, so each call's stream owns its own
native ``Vad`` instance (that instance holds the adaptive state).
"""

from __future__ import annotations

from typing import Literal

import webrtcvad

from parley.errors import LocalProtocolError

__all__ = ["WebRTCStream", "WebRTCVAD"]

_RATES = (8000, 16000, 32000, 48000)
_FRAME_MS = (10, 20, 30)


class WebRTCStream:
    """One call's WebRTC VAD state."""

    __slots__ = ("_aggressiveness", "_frame_bytes", "_sample_rate", "_vad")

    def __init__(self, aggressiveness: int, sample_rate: int, frame_ms: int) -> None:
        self._aggressiveness = aggressiveness
        self._sample_rate = sample_rate
        self._frame_bytes = sample_rate * frame_ms // 1000 * 2
        self._vad = webrtcvad.Vad(aggressiveness)

    @property
    def frame_bytes(self) -> int:
        return self._frame_bytes

    def probability(self, frame: bytes) -> float:
        """1.0 if the frame is speech, else 0.0 (the detector is binary)."""
        if len(frame) != self._frame_bytes:
            raise LocalProtocolError(
                f"WebRTC VAD stream expects {self._frame_bytes} bytes per frame, got {len(frame)}",
                code="bad_frame_size",
            )
        return 1.0 if self._vad.is_speech(frame, self._sample_rate) else 0.0

    def reset(self) -> None:
        self._vad = webrtcvad.Vad(self._aggressiveness)


class WebRTCVAD:
    """WebRTC VAD; ``aggressiveness`` 0 (keeps most speech) to 3 (rejects most noise)."""

    def __init__(
        self,
        aggressiveness: Literal[0, 1, 2, 3] = 2,
        sample_rate: int = 16000,
        frame_ms: Literal[10, 20, 30] = 30,
    ) -> None:
        if aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"aggressiveness must be 0..3, not {aggressiveness}")
        if sample_rate not in _RATES:
            raise ValueError(f"WebRTC VAD runs at {_RATES} Hz, not {sample_rate}")
        if frame_ms not in _FRAME_MS:
            raise ValueError(f"WebRTC VAD frames are 10, 20 or 30 ms, not {frame_ms}")
        self._aggressiveness = aggressiveness
        self._sample_rate = sample_rate
        self._frame_ms = frame_ms

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def frame_bytes(self) -> int:
        return self._sample_rate * self._frame_ms // 1000 * 2

    def stream(self) -> WebRTCStream:
        return WebRTCStream(self._aggressiveness, self._sample_rate, self._frame_ms)

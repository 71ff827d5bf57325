"""A client-side energy VAD: is the person at the microphone talking? (sans-I/O)

Deliberately simple, because it runs on the user's machine next to a microphone
whose level the user can see and tune: a frame is *loud* when its RMS reaches
``threshold`` (a fraction of full scale; 0.02 ≈ -34 dBFS). Speech starts after
``start_ms`` of consecutive loud frames (so a click does not start a turn) and
ends after ``end_ms`` of consecutive quiet ones (so a pause between words does
not end it). ``prefix_ms`` of audio from before the onset is kept and handed out
with the start, so the first syllable is not lost.

Parley's server-side turn taking (``parley.turns`` on Silero probabilities) is the
better detector; this one exists so a client can gate and commit turns itself
(manual ``input_audio_buffer.commit``) and notice barge-in locally without a model.

``push(pcm)`` takes PCM16 mono of any length and returns what happened, in order:
:class:`VoiceStarted`, :class:`VoiceAudio` (the speech, prefix included, frame by
frame while it lasts) and :class:`VoiceStopped`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

from parley.audio import FrameChunker
from parley.errors import ConfigError

__all__ = [
    "ClientVAD",
    "VADEvent",
    "VADSettings",
    "VoiceAudio",
    "VoiceStarted",
    "VoiceStopped",
    "rms",
]


@dataclass(frozen=True, slots=True)
class VADSettings:
    """Energy VAD settings (durations in milliseconds of audio)."""

    threshold: float = 0.02  # RMS as a fraction of full scale at which a frame is loud
    start_ms: float = 100.0  # loud this long → speech started
    end_ms: float = 700.0  # quiet this long → speech stopped
    prefix_ms: float = 300.0  # audio kept from before the onset
    frame_ms: int = 20

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError("must be in (0, 1)", field="vad_threshold")
        for name in ("start_ms", "end_ms", "prefix_ms"):
            if not getattr(self, name) >= 0.0:  # also rejects NaN
                raise ConfigError("must be ≥ 0", field=f"vad_{name}")
        if not 5 <= self.frame_ms <= 100:
            raise ConfigError("must be 5..100", field="vad_frame_ms")


@dataclass(frozen=True, slots=True)
class VoiceStarted:
    audio_ms: float  # position of the first loud frame in the audio pushed so far


@dataclass(frozen=True, slots=True)
class VoiceAudio:
    pcm: bytes  # speech (and its prefix padding), in order


@dataclass(frozen=True, slots=True)
class VoiceStopped:
    audio_ms: float  # end of the last loud frame
    speech_ms: float  # first loud frame → end of the last loud frame


VADEvent: TypeAlias = VoiceStarted | VoiceAudio | VoiceStopped


def rms(pcm: bytes) -> float:
    """Root mean square of PCM16 as a fraction of full scale (0..1)."""
    if len(pcm) < 2:
        return 0.0
    samples = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2).astype(np.float32)
    return float(np.sqrt(np.mean(samples * samples))) / 32768.0


def _frames(ms: float, frame_ms: int) -> int:
    return int(-(-ms // frame_ms))  # ceil: "at least this long"


class ClientVAD:
    """Energy VAD state for one audio stream (see the module docstring)."""

    def __init__(self, settings: VADSettings | None = None, sample_rate: int = 24000) -> None:
        self.settings = s = settings or VADSettings()
        if sample_rate <= 0 or sample_rate * s.frame_ms % 1000:
            raise ConfigError(
                f"{s.frame_ms} ms is not a whole number of samples at {sample_rate} Hz",
                field="sample_rate",
            )
        self._chunker = FrameChunker(sample_rate * s.frame_ms // 1000 * 2)
        self._start_frames = max(1, _frames(s.start_ms, s.frame_ms))
        self._end_frames = max(1, _frames(s.end_ms, s.frame_ms))
        # The onset run itself plus the prefix before it.
        self._ring: deque[bytes] = deque(
            maxlen=self._start_frames + _frames(s.prefix_ms, s.frame_ms)
        )
        self._frame_index = 0
        self._loud_run = 0
        self._quiet_run = 0
        self._speaking = False
        self._speech_start = 0
        self._last_loud = 0

    @property
    def speaking(self) -> bool:
        return self._speaking

    def push(self, pcm: bytes) -> list[VADEvent]:
        out: list[VADEvent] = []
        for frame in self._chunker.push(pcm):
            self._frame(frame, out)
        return out

    def end(self) -> list[VADEvent]:
        """The stream is over: a speech still going stops at its last loud frame."""
        if not self._speaking:
            return []
        return [self._stop()]

    def reset(self) -> None:
        self._ring.clear()
        self._loud_run = self._quiet_run = 0
        self._speaking = False

    def _ms(self, frames: int) -> float:
        return float(frames * self.settings.frame_ms)

    def _stop(self) -> VoiceStopped:
        self._speaking = False
        self._ring.clear()
        self._loud_run = self._quiet_run = 0
        end = self._last_loud + 1
        return VoiceStopped(self._ms(end), self._ms(end - self._speech_start))

    def _frame(self, frame: bytes, out: list[VADEvent]) -> None:
        index = self._frame_index
        self._frame_index += 1
        loud = rms(frame) >= self.settings.threshold
        if self._speaking:
            out.append(VoiceAudio(frame))
            if loud:
                self._quiet_run = 0
                self._last_loud = index
            else:
                self._quiet_run += 1
                if self._quiet_run >= self._end_frames:
                    out.append(self._stop())
            return
        self._ring.append(frame)
        if not loud:
            self._loud_run = 0
            return
        self._loud_run += 1
        if self._loud_run >= self._start_frames:
            self._speaking = True
            self._quiet_run = 0
            self._speech_start = index - self._loud_run + 1
            self._last_loud = index
            out.append(VoiceStarted(self._ms(self._speech_start)))
            out.append(VoiceAudio(b"".join(self._ring)))
            self._ring.clear()

"""Turn detection: a sans-I/O state machine over per-frame VAD probabilities.

One :class:`TurnDetector` per call. The engine pushes every VAD frame (PCM16 mono
bytes plus the speech probability the VAD gave it) and gets back at most one
:data:`TurnSignal` per frame::

    IDLE ──speech ≥ min_speech_ms──▶ SpeechStarted
    SPEAKING ──silence ≥ speculative_silence_ms──▶ SpeechPaused(audio so far)
    PAUSED ──speech again──▶ SpeechResumed
    SPEAKING/PAUSED ──silence ≥ end_of_turn_silence_ms──▶ TurnEnded(utterance)
    any ──utterance ≥ max_utterance_ms──▶ TurnEnded(reason="max_utterance")

Hysteresis: speech starts (or resumes) when the probability reaches ``threshold``
and a silence starts only when it falls below the lower ``stop_threshold``, so a
probability wobbling around one value does not toggle the state. A burst shorter
than ``min_speech_ms`` (a cough, a click, a breath) is not a turn; its frames stay
in the prefix ring buffer so a real start right after it still gets its padding.

Positions (``audio_ms``, ``at_ms``) are milliseconds of input audio since the
detector was created, counted from the frames pushed, never from a clock:
``audio_ms`` is where the acoustic event happened (onset, start of the silence,
end of speech) and ``at_ms`` is where the detector was when it could say so, so
``at_ms - audio_ms`` of a :class:`TurnEnded` is the end-of-turn wait.

``SpeechPaused.audio`` is what the engine should transcribe speculatively.
If the turn then ends with no :class:`SpeechResumed` in between,
``TurnEnded.audio`` is byte-identical to it (the trailing silence kept in both is
the speculative silence), so the speculative transcript can be used as is.

The wait can change per utterance: :meth:`TurnDetector.set_end_of_turn_silence`
(used by the engine's transcript-aware endpointing, :mod:`parley.endpointing`)
shortens or lengthens it until speech starts or resumes, and ends the turn at
once if the silence so far already reaches the new wait.

Memory is bounded: the utterance buffer never exceeds prefix padding +
``max_utterance_ms`` + ``end_of_turn_silence_ms`` of audio.

Tuning (``bench/turn_tuning.py``): 24 scripts (phone numbers, addresses, lists,
dates, spelled codes) spoken by Piper (en_US-joe-medium, 16 kHz) as fragments
joined by 300–900 ms pauses, each rendered clean and with white noise at 30 and
20 dB SNR (72 utterances, 219 pauses, 36 of them with a 32–96 ms burst of speech
in the leading silence), scored by Silero v5 in 32 ms frames. A false cut-off
is a TurnEnded at a pause that was not the end; the delay runs from the true end
of speech to TurnEnded. One run (Piper's synthesis noise moves these by a frame
or so from run to run), thresholds 0.5/0.35::

    end_of_turn  utterances cut  pauses cut 500–600 / 600–700 / 700–800 / 800–900   delay p50 / max
      448 ms          94 %         98 % / 100 % / 100 % / 100 %                      535 / 542 ms
      544 ms          83 %         27 % /  94 % / 100 % / 100 %                      623 / 638 ms
      640 ms          69 %          0 % /  22 % / 100 % / 100 %                      708 / 734 ms
      736 ms          47 %          0 % /   0 % /  24 % /  97 %                      804 / 830 ms
      832 ms          17 %          0 % /   0 % /   0 % /  34 %                      897 / 949 ms
      928 ms           0 %          0 % /   0 % /   0 % /   0 %                      992 / 1045 ms

The wait decides everything: a pause is cut if and only if it is longer than
about ``end_of_turn_silence_ms``, and the delay is that wait plus ~70 ms of
Silero's tail (its probability stays high for two or three frames after speech).
The thresholds moved the delay by under 20 ms and the cut-offs by a few
utterances; ``min_speech_ms`` only matters for blips (of the 36 bursts, 160 ms
started 2 turns, 96 ms about 10, 64 ms about 19). So no wait is both safe for
900 ms pauses (928 ms, ~1 s delay) and within a 600 ms voice-to-voice budget.
The defaults take 640 ms: the shortest wait that never cut a pause under 600 ms
(ordinary hesitation), p50 delay ~710 ms, and they cut ~20 % of 600–700 ms pauses
and all longer ones. ``speculative_silence_ms`` = 640 − 450 ms (Whisper tiny.en
on 2 cores, DESIGN.md §6) ≈ 160 ms, so speculative STT has ~480 ms (p50) before
the turn ends; it costs ~2 wasted speculative runs per turn on this list-heavy
data. ``SpeechStarted.gap_ms`` lets the engine merge a turn that follows soon
after a cut into it. For dictation-heavy flows (phone numbers, card numbers) use
``TurnConfig(end_of_turn_silence_ms=928)``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Literal, TypeAlias

from parley.errors import ConfigError

__all__ = [
    "SpeechPaused",
    "SpeechResumed",
    "SpeechStarted",
    "TurnConfig",
    "TurnDetector",
    "TurnEnded",
    "TurnSignal",
]


@dataclass(frozen=True, slots=True)
class TurnConfig:
    """Turn-taking settings; all durations in milliseconds of input audio.

    Durations are applied at frame granularity: a 500 ms silence with 32 ms frames
    is reached after 16 frames (512 ms).
    """

    threshold: float = 0.5  # probability at which speech starts or resumes
    stop_threshold: float = 0.35  # probability below which a silence starts (≤ threshold)
    min_speech_ms: float = 160.0  # shorter bursts are not turns
    end_of_turn_silence_ms: float = 640.0
    speculative_silence_ms: float = 160.0  # first short silence → SpeechPaused
    prefix_padding_ms: float = 320.0  # audio kept from before the onset
    max_utterance_ms: float = 30_000.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError("must be in (0, 1]", field="threshold")
        if not 0.0 <= self.stop_threshold <= self.threshold:
            raise ConfigError("must be in [0, threshold]", field="stop_threshold")
        for name in ("min_speech_ms", "prefix_padding_ms", "speculative_silence_ms"):
            if not getattr(self, name) >= 0.0:  # also rejects NaN
                raise ConfigError("must be ≥ 0", field=name)
        if not self.end_of_turn_silence_ms > self.speculative_silence_ms:
            raise ConfigError(
                "must be longer than speculative_silence_ms", field="end_of_turn_silence_ms"
            )
        if not self.max_utterance_ms > self.min_speech_ms:
            raise ConfigError("must be longer than min_speech_ms", field="max_utterance_ms")


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Speech persisted for ``min_speech_ms``; ``audio_ms`` is its onset.

    ``gap_ms`` is the silence since the previous turn's speech ended (``inf`` for the
    first turn): a short gap means the user probably went on after a pause the
    detector took for the end, and the engine may merge this turn into the last.
    """

    audio_ms: float
    at_ms: float = 0.0  # stream position when it was confirmed
    gap_ms: float = math.inf


@dataclass(frozen=True, slots=True)
class SpeechPaused:
    """The first short silence of an utterance: ``audio`` is the utterance so far
    (prefix padding, speech, ``speculative_silence_ms`` of silence) for speculative STT.
    ``audio_ms`` is where the speech stopped."""

    audio_ms: float
    audio: bytes
    at_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class SpeechResumed:
    """Speech came back after a :class:`SpeechPaused`; any speculative work is stale."""

    audio_ms: float
    at_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """The user's turn is over.

    ``audio`` is the whole utterance: prefix padding, speech and at most
    ``speculative_silence_ms`` of trailing silence. ``audio_ms`` is where speech
    ended, ``speech_ms`` the span from onset to that end, ``at_ms`` where the
    detector decided. ``wait_ms`` is the end-of-turn silence that was in force
    (the config's, or what :meth:`TurnDetector.set_end_of_turn_silence` set).
    """

    audio_ms: float
    audio: bytes
    speech_ms: float
    at_ms: float = 0.0
    reason: Literal["silence", "max_utterance", "flush"] = "silence"
    wait_ms: float = 0.0


TurnSignal: TypeAlias = SpeechStarted | SpeechPaused | SpeechResumed | TurnEnded


class _State(Enum):
    IDLE = "idle"
    PENDING = "pending"  # above threshold, not yet min_speech_ms long
    SPEAKING = "speaking"


class TurnDetector:
    """Per-call turn state over fixed-size PCM16 mono frames at ``sample_rate``."""

    def __init__(self, config: TurnConfig, sample_rate: int, frame_bytes: int) -> None:
        if sample_rate <= 0:
            raise ConfigError("must be positive", field="sample_rate")
        if frame_bytes <= 0 or frame_bytes % 2:
            raise ConfigError("must be a positive even number (PCM16)", field="frame_bytes")
        self.config = config
        self.sample_rate = sample_rate
        self.frame_bytes = frame_bytes
        self._n = frame_bytes // 2  # samples per frame

        # Durations converted once to whole frames (the detector only sees frames).
        self._min_speech = self._frames(config.min_speech_ms)
        self._speculative = max(1, self._frames(config.speculative_silence_ms))
        self._end_of_turn = max(self._speculative + 1, self._frames(config.end_of_turn_silence_ms))
        self._wait = self._end_of_turn  # this utterance's wait (see set_end_of_turn_silence)
        self._max_utterance = self._frames(config.max_utterance_ms)

        self._ring: deque[bytes] = deque(maxlen=self._frames(config.prefix_padding_ms))
        self._pos = 0  # frames pushed since creation
        self._state = _State.IDLE
        self._candidate: list[bytes] = []
        self._utterance: list[bytes] = []
        self._utt_start = 0  # frame index of _utterance[0]
        self._onset = 0  # frame index where speech started
        self._speech_end = 0  # frame index just after the last speech frame
        self._silent = False
        self._paused = False
        self._last_end: int | None = None  # frame index where the previous turn's speech ended

    def _frames(self, ms: float) -> int:
        return math.ceil(ms * self.sample_rate / (1000 * self._n) - 1e-9)

    def _ms(self, frame_index: int) -> float:
        return frame_index * self._n * 1000 / self.sample_rate

    @property
    def in_turn(self) -> bool:
        """True between :class:`SpeechStarted` and :class:`TurnEnded`."""
        return self._state is _State.SPEAKING

    @property
    def position_ms(self) -> float:
        """Milliseconds of input audio pushed so far."""
        return self._ms(self._pos)

    @property
    def end_of_turn_silence_ms(self) -> float:
        """The silence that ends the current utterance (the config's unless changed)."""
        return self._ms(self._wait)

    def set_end_of_turn_silence(self, ms: float | None) -> TurnEnded | None:
        """Change the silence that ends the current utterance; ``None`` restores the
        config's. Meant for a transcript-aware policy (:mod:`parley.endpointing`): it
        applies until speech starts or resumes, then the config's wait is back.

        If the utterance is in a silence already at least that long, the turn ends
        now and the :class:`TurnEnded` is returned (as ``push`` would have).
        """
        if ms is None:
            self._wait = self._end_of_turn
        else:
            if not ms > 0.0:  # also rejects NaN
                raise ValueError(f"end-of-turn silence must be > 0 ms, not {ms!r}")
            self._wait = max(1, self._frames(ms))
        if (
            self._state is _State.SPEAKING
            and self._silent
            and self._pos - self._speech_end >= self._wait
        ):
            return self._end("silence")
        return None

    def reset(self) -> None:
        """Drop any utterance in progress and the prefix padding.

        The stream position keeps counting: the input audio goes on.
        """
        self._ring.clear()
        self._candidate.clear()
        self._utterance.clear()
        self._state = _State.IDLE
        self._silent = False
        self._paused = False
        self._wait = self._end_of_turn

    def push(self, frame: bytes, probability: float) -> TurnSignal | None:
        """Consume one VAD frame and its speech probability."""
        if len(frame) != self.frame_bytes:
            raise ValueError(f"frame is {len(frame)} bytes, expected {self.frame_bytes}")
        if not 0.0 <= probability <= 1.0:  # also rejects NaN
            raise ValueError(f"probability {probability!r} is not in [0, 1]")
        index = self._pos
        self._pos += 1
        cfg = self.config

        if self._state is _State.IDLE:
            if probability >= cfg.threshold:
                self._state = _State.PENDING
                self._candidate.append(frame)
                self._onset = index
                return self._maybe_start()
            self._ring.append(frame)
            return None

        if self._state is _State.PENDING:
            if probability >= cfg.stop_threshold:
                self._candidate.append(frame)
                return self._maybe_start()
            # A blip: its frames become prefix padding for a later real start.
            self._ring.extend(self._candidate)
            self._ring.append(frame)
            self._candidate.clear()
            self._state = _State.IDLE
            return None

        # SPEAKING
        self._utterance.append(frame)
        signal: TurnSignal | None = None
        if not self._silent:
            if probability >= cfg.stop_threshold:
                self._speech_end = self._pos
            else:
                self._silent = True
        elif probability >= cfg.threshold:
            self._silent = False
            self._speech_end = self._pos
            self._wait = self._end_of_turn
            if self._paused:
                self._paused = False
                signal = SpeechResumed(self._ms(index), self._ms(self._pos))

        if self._pos - self._onset >= self._max_utterance:
            return self._end("max_utterance")
        if self._silent:
            silence = self._pos - self._speech_end
            if silence >= self._wait:
                return self._end("silence")
            if silence >= self._speculative and not self._paused:
                self._paused = True
                return SpeechPaused(
                    self._ms(self._speech_end), b"".join(self._utterance), self._ms(self._pos)
                )
        return signal

    def flush(self) -> TurnEnded | None:
        """End the stream: close the turn in progress, if any (``reason="flush"``)."""
        if self._state is not _State.SPEAKING:
            self.reset()
            return None
        return self._end("flush")

    def _maybe_start(self) -> SpeechStarted | None:
        if len(self._candidate) < self._min_speech:
            return None
        self._utterance = [*self._ring, *self._candidate]
        self._utt_start = self._onset - len(self._ring)
        self._ring.clear()
        self._candidate.clear()
        self._state = _State.SPEAKING
        self._speech_end = self._pos
        self._silent = False
        self._paused = False
        self._wait = self._end_of_turn
        gap = math.inf if self._last_end is None else self._ms(self._onset - self._last_end)
        return SpeechStarted(self._ms(self._onset), self._ms(self._pos), gap)

    def _end(self, reason: Literal["silence", "max_utterance", "flush"]) -> TurnEnded:
        # Keep exactly the trailing silence SpeechPaused carried, so both audios match.
        keep = self._speech_end - self._utt_start + self._speculative if self._silent else None
        kept, dropped = self._utterance[:keep], self._utterance[len(self._utterance[:keep]) :]
        ended = TurnEnded(
            audio_ms=self._ms(self._speech_end),
            audio=b"".join(kept),
            speech_ms=self._ms(self._speech_end - self._onset),
            at_ms=self._ms(self._pos),
            reason=reason,
            wait_ms=self._ms(self._wait),
        )
        self._last_end = self._speech_end
        self._utterance = []
        self._ring.clear()
        # Silence not in the turn may pad the next one; nothing is in two turns.
        self._ring.extend(dropped)
        self._state = _State.IDLE
        self._silent = False
        self._paused = False
        self._wait = self._end_of_turn
        return ended

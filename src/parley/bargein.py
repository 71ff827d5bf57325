"""Barge-in that knows a backchannel: pause at the onset, then stop or resume.

Sans-I/O, one :class:`BargeIn` per call, fed the same VAD frames and probabilities
as the :class:`~parley.turns.TurnDetector` while the agent's reply is playing. A
caller who talks over the agent must be heard within ~150 ms; a cough, a knock,
breathing, line noise or a "mm-hmm" must not stop the agent. Telling them apart
takes longer than 150 ms, so the policy answers in two steps, as typed decisions
the engine acts on::

    agent talking ──speech ≥ onset_ms──▶ PauseOutput      (stop sending audio now,
                                                          keep the reply's position)
    paused ──speech goes on ≥ commit_ms──▶ StopOutput     (a barge-in: cancel the reply)
    paused ──burst over (silence ≥ end_silence_ms)──▶ TranscribeBurst(audio, seq)
    on_transcript(seq, text, no_speech_prob):
        noise (no words, Whisper says no speech) ──▶ ResumeOutput(reason="noise")
        a backchannel ("mm-hmm", "yeah", "okay", "right", …) ──▶ ResumeOutput("backchannel")
        anything else ("wait", "no, the other one") ──▶ StopOutput
    paused ≥ max_pause_ms with no answer ──▶ StopOutput if the caller is still talking
                                             or said ≥ long_burst_ms of speech,
                                             else ResumeOutput(reason="timeout")

What an engine does with them (the cascade's speech front end,
:mod:`parley.engines.speech`, does the part marked there):

- ``PauseOutput`` — stop feeding reply audio to the transport and clear what the
  transport buffered (Twilio ``clear``), remembering the played position: to the
  caller the agent stops here, ``onset_ms`` + the VAD's lag after the onset.
- ``ResumeOutput`` — send the reply again from the paused position (re-synthesis not
  needed: the engine keeps the unsent PCM), and drop the burst as a turn:
  ``TurnDetector.reset()``, so a backchannel is never answered as a new turn.
- ``StopOutput`` — today's barge-in (cancel LLM/TTS, ``Interrupted`` with the heard
  text); the TurnDetector goes on and the caller's words become the next turn.
- ``TranscribeBurst`` — transcribe ``audio`` off the loop (``run_blocking``,
  :class:`~parley.providers.quick_whisper.QuickWhisperSTT` gives ``no_speech_prob``)
  and call :meth:`BargeIn.on_transcript` with the same ``seq`` (and its
  ``no_speech_prob`` / ``avg_logprob``); a stale ``seq`` (the caller spoke again
  meanwhile) is ignored.

Positions are ms of input audio (frames pushed), like the TurnDetector's.
Measured by ``bench/bargein.py`` (see there).
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Literal, TypeAlias

from parley.errors import ConfigError

__all__ = [
    "BACKCHANNELS",
    "INTERRUPTIONS",
    "BargeIn",
    "BargeInConfig",
    "BargeInDecision",
    "BurstKind",
    "PauseOutput",
    "ResumeOutput",
    "StopOutput",
    "TranscribeBurst",
    "classify_burst",
]

BurstKind: TypeAlias = Literal["noise", "backchannel", "speech"]

#: Words and phrases that acknowledge without taking the turn (lower case, no
#: punctuation). A burst whose transcript is made only of these is a backchannel.
BACKCHANNELS = frozenset(
    """
    mm mhm mmhmm mm-hmm mmhm hmm hm uh-huh uhhuh uh huh um uh ah oh aha ooh
    yeah yes yep yup ya yah okay ok k right alright sure cool great good fine
    nice wow really true exactly totally gotcha indeed
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
_PHRASES = frozenset(
    {
        "i see",
        "got it",
        "all right",
        "of course",
        "that's right",
        "makes sense",
        "make sense",
        "uh huh",
        "oh ok",
    }
)
#: Words that open an interruption: a short burst holding one is a barge-in even
#: when Whisper is unsure of it.
INTERRUPTIONS = frozenset(
    """
    no not nope stop wait hold hang sorry excuse pardon actually what hello hey but
    cancel sec second moment minute listen
    """.split()  # noqa: SIM905
)
_WORD = re.compile(r"[a-z']+(?:-[a-z']+)*")
# What Whisper writes for sounds that are not words.
_NON_SPEECH = re.compile(r"^\W*([\[(][^\])]*[\])]\W*)*$")


def classify_burst(
    text: str,
    no_speech_prob: float = 0.0,
    avg_logprob: float | None = None,
    *,
    no_speech: float = 0.6,
    unsure_logprob: float = -0.9,
) -> BurstKind:
    """What a short burst of caller sound was, from its transcript.

    No words, or Whisper sure it was not speech: noise. Only acknowledgement words:
    a backchannel. A word that opens an interruption ("no", "wait", "sorry", …):
    speech. Up to three other words decoded with an average log-probability below
    ``unsure_logprob``, or nothing but spelled letters ("M. H. N."): a mumble — what
    tiny.en makes of a hummed "mm-hmm" ("in a month", "and make them", "here" at
    -1.0 to -1.4, where its real words decode at -0.2 to -0.85) — counted as a
    backchannel. Anything else: speech.
    """
    if no_speech_prob >= no_speech or _NON_SPEECH.match(text.strip()):
        return "noise"
    ws = _WORD.findall(text.lower())
    if not ws:
        return "noise"
    if len(ws) > 4:
        return "speech"
    if _only_backchannels(ws):
        return "backchannel"
    if any(w in INTERRUPTIONS for w in ws):
        return "speech"
    if len(ws) <= 3 and avg_logprob is not None and avg_logprob < unsure_logprob:
        return "backchannel"
    if all(len(w) == 1 and w not in {"i", "a"} for w in ws):
        return "backchannel"
    return "speech"


def _only_backchannels(ws: list[str]) -> bool:
    k = 0
    while k < len(ws):  # greedy: two-word phrases first
        if k + 1 < len(ws) and f"{ws[k]} {ws[k + 1]}" in _PHRASES:
            k += 2
        elif ws[k] in BACKCHANNELS:
            k += 1
        else:
            return False
    return True


@dataclass(frozen=True, slots=True)
class BargeInConfig:
    """Barge-in timing, ms of input audio; probabilities as the TurnDetector's."""

    threshold: float = 0.5
    stop_threshold: float = 0.35
    onset_ms: float = 64.0  # speech this long while the agent talks → PauseOutput
    # Speech since the onset this long → StopOutput. 800 ms stopped on a doubled
    # backchannel ("Okay, okay." runs ~900 ms); the reply is paused anyway meanwhile.
    commit_ms: float = 1_000.0
    end_silence_ms: float = 160.0  # a burst is over after this much silence
    max_pause_ms: float = 1_500.0  # never hold the reply paused longer than this
    long_burst_ms: float = 480.0  # at that timeout, this much speech means a barge-in
    prefix_ms: float = 160.0  # audio before the onset given to TranscribeBurst
    no_speech: float = 0.6  # Whisper no_speech_prob at or above which a burst is noise
    unsure_logprob: float = -0.9  # a short decode less sure than this is a mumble

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError("must be in (0, 1]", field="threshold")
        if not 0.0 <= self.stop_threshold <= self.threshold:
            raise ConfigError("must be in [0, threshold]", field="stop_threshold")
        for name in ("onset_ms", "end_silence_ms", "prefix_ms"):
            if not getattr(self, name) >= 0.0:
                raise ConfigError("must be ≥ 0", field=name)
        if not self.commit_ms > self.onset_ms:
            raise ConfigError("must be longer than onset_ms", field="commit_ms")
        if not self.max_pause_ms > self.end_silence_ms:
            raise ConfigError("must be longer than end_silence_ms", field="max_pause_ms")


@dataclass(frozen=True, slots=True)
class PauseOutput:
    """Stop the agent's audio now; ``onset_ms`` is where the caller's sound began."""

    at_ms: float
    onset_ms: float


@dataclass(frozen=True, slots=True)
class ResumeOutput:
    """Not a barge-in: play on from the paused position and drop the burst as a turn."""

    at_ms: float
    reason: Literal["noise", "backchannel", "timeout"]
    text: str = ""


@dataclass(frozen=True, slots=True)
class StopOutput:
    """A barge-in: cancel the reply. ``reason`` says which rule decided."""

    at_ms: float
    reason: Literal["commit", "words", "timeout"]
    text: str = ""


@dataclass(frozen=True, slots=True)
class TranscribeBurst:
    """Transcribe ``audio`` (PCM16, the burst with a little lead) and answer with ``seq``."""

    at_ms: float
    audio: bytes
    seq: int


BargeInDecision: TypeAlias = PauseOutput | ResumeOutput | StopOutput | TranscribeBurst


class _State(Enum):
    LISTENING = "listening"  # the agent talks, the caller is quiet
    ONSET = "onset"  # caller sound, not yet onset_ms long
    PAUSED = "paused"  # output paused, caller still making sound
    JUDGING = "judging"  # output paused, burst over, transcript awaited
    STOPPED = "stopped"  # a barge-in was decided; nothing more until reset()


class BargeIn:
    """Per-call barge-in policy over PCM16 mono frames at ``sample_rate``."""

    def __init__(self, config: BargeInConfig, sample_rate: int, frame_bytes: int) -> None:
        if sample_rate <= 0 or frame_bytes <= 0 or frame_bytes % 2:
            raise ConfigError("needs a positive rate and an even frame size", field="frame_bytes")
        self.config = config
        self._rate = sample_rate
        self._n = frame_bytes // 2
        self.frame_bytes = frame_bytes
        self._onset = max(1, self._frames(config.onset_ms))
        self._commit = self._frames(config.commit_ms)
        self._end_silence = max(1, self._frames(config.end_silence_ms))
        self._max_pause = self._frames(config.max_pause_ms)
        self._long_burst = self._frames(config.long_burst_ms)
        self._ring: deque[bytes] = deque(maxlen=max(1, self._frames(config.prefix_ms)))
        self._pos = 0
        self._seq = 0
        self._reset_burst()

    def _frames(self, ms: float) -> int:
        return math.ceil(ms * self._rate / (1000 * self._n) - 1e-9)

    def _ms(self, frames: int) -> float:
        return frames * self._n * 1000 / self._rate

    def _reset_burst(self) -> None:
        self._state = _State.LISTENING
        self._burst: list[bytes] = []
        self._start = 0  # frame index of the burst's onset
        self._speech = 0  # speech frames since the onset
        self._silence = 0  # consecutive silent frames
        self._paused_at = 0

    @property
    def paused(self) -> bool:
        """The policy holds the agent's output paused (a decision is pending)."""
        return self._state in (_State.PAUSED, _State.JUDGING)

    @property
    def deciding(self) -> bool:
        """Caller sound is being judged (from the first loud frame to the decision)."""
        return self._state in (_State.ONSET, _State.PAUSED, _State.JUDGING)

    @property
    def position_ms(self) -> float:
        return self._ms(self._pos)

    def reset(self) -> None:
        """The reply ended or was stopped: forget any burst (the position goes on)."""
        self._seq += 1  # a transcript still on its way is stale now
        self._reset_burst()
        self._ring.clear()

    def push(self, frame: bytes, probability: float) -> BargeInDecision | None:
        """One VAD frame heard while the agent's reply is playing."""
        if len(frame) != self.frame_bytes:
            raise ValueError(f"frame is {len(frame)} bytes, expected {self.frame_bytes}")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability {probability!r} is not in [0, 1]")
        index = self._pos
        self._pos += 1
        cfg = self.config
        state = self._state
        if state is _State.STOPPED:
            return None
        if state is _State.LISTENING:
            if probability >= cfg.threshold:
                self._state = _State.ONSET
                self._start = index
                self._burst = [*self._ring, frame]
                self._speech = 1
                return self._maybe_pause()
            self._ring.append(frame)
            return None
        self._burst.append(frame)
        speaking = probability >= (cfg.threshold if self._silence else cfg.stop_threshold)
        if state is _State.ONSET:
            if speaking:
                self._speech += 1
                return self._maybe_pause()
            recent = self._burst
            self._reset_burst()  # a blip shorter than onset_ms: not even a pause
            self._ring.extend(recent)  # the ring keeps only its last prefix_ms
            return None
        if speaking:
            self._speech += 1
            self._silence = 0
            if state is _State.JUDGING:
                self._state = _State.PAUSED  # the caller went on: the burst grows
                self._seq += 1
        else:
            self._silence += 1
        if self._speech >= self._commit:
            return self._stop("commit")
        if self._pos - self._paused_at >= self._max_pause:
            # Undecided for max_pause_ms: still talking, or talked at length (words
            # with gaps between them, whose transcript is late) is a barge-in.
            talking = self._state is _State.PAUSED and self._silence < self._end_silence
            if talking or self._speech >= self._long_burst:
                return self._stop("timeout")
            self._reset_burst()
            return ResumeOutput(self._ms(self._pos), "timeout")
        if self._state is _State.PAUSED and self._silence >= self._end_silence:
            self._state = _State.JUDGING
            self._seq += 1
            return TranscribeBurst(self._ms(self._pos), b"".join(self._burst), self._seq)
        return None

    def on_transcript(
        self, seq: int, text: str, no_speech_prob: float = 0.0, avg_logprob: float | None = None
    ) -> ResumeOutput | StopOutput | None:
        """The answer to a :class:`TranscribeBurst`; ``None`` if it is stale."""
        if seq != self._seq or self._state is not _State.JUDGING:
            return None
        cfg = self.config
        kind = classify_burst(
            text,
            no_speech_prob,
            avg_logprob,
            no_speech=cfg.no_speech,
            unsure_logprob=cfg.unsure_logprob,
        )
        if kind == "speech":
            return self._stop("words", text)
        self._reset_burst()
        return ResumeOutput(self._ms(self._pos), kind, text)

    def _maybe_pause(self) -> PauseOutput | None:
        if self._speech < self._onset:
            return None
        self._state = _State.PAUSED
        self._paused_at = self._pos
        return PauseOutput(self._ms(self._pos), self._ms(self._start))

    def _stop(self, reason: Literal["commit", "words", "timeout"], text: str = "") -> StopOutput:
        self._state = _State.STOPPED
        self._seq += 1
        return StopOutput(self._ms(self._pos), reason, text)

"""The local Realtime server's speech input: PCM in, turn signals and transcripts out.

:class:`SpeechInput` runs one session's caller audio through the shared VAD model
(off the event loop), a :class:`~parley.turns.TurnDetector` and speculative STT:
at the first short silence (``SpeechPaused``) the utterance so far is transcribed
already, and if the turn ends with no speech in between that transcript is the
turn's (``TurnEnded.audio`` is then byte-identical to it). It knows nothing of the
Realtime protocol: the session maps :class:`SpeechBegan`/:class:`SpeechEnded` onto
``input_audio_buffer.speech_started``/``speech_stopped`` and commits.

The boundary is deliberately small (``configure``, ``push``, ``reset``,
``utterance``, ``close``) so that a shared speech front end can take its place
behind it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from parley.errors import ParleyError
from parley.providers.models import run_blocking
from parley.providers.seams import STT, VAD, Transcript, VADStream
from parley.turns import (
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnConfig,
    TurnDetector,
    TurnEnded,
    TurnSignal,
)

__all__ = ["InputSignal", "SpeechBegan", "SpeechEnded", "SpeechInput", "Utterance"]

_Result = Transcript | ParleyError


class Utterance:
    """One user turn's audio (PCM16 mono at the input rate) and its transcription,
    already running (speculatively, or since the turn was committed)."""

    __slots__ = ("_input", "_task", "audio")

    def __init__(self, speech: SpeechInput, audio: bytes, task: asyncio.Task[_Result]) -> None:
        self._input = speech
        self.audio = audio
        self._task = task

    async def transcript(self) -> _Result:
        """The words, or the STT's error (a failed transcription is data, not a crash)."""
        try:
            return await self._task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not self._task.cancelled() or (current is not None and current.cancelling()):
                raise
            # The transcription was dropped after the hand-over: do it again.
            return await self._input.transcribe(self.audio)


@dataclass(frozen=True, slots=True)
class SpeechBegan:
    """Speech started; ``audio_start_ms`` includes the prefix padding (session time)."""

    audio_start_ms: float


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """The turn ended at ``audio_end_ms`` (session time); ``utterance`` is what was said."""

    audio_end_ms: float
    utterance: Utterance


InputSignal = SpeechBegan | SpeechEnded


def _score(stream: VADStream, frames: list[bytes]) -> list[float]:
    # Runs in the model executor: one call per push, never one per frame.
    return [stream.probability(f) for f in frames]


class SpeechInput:
    """Turn detection and transcription for one session (see the module docstring).

    ``push`` takes PCM16 mono at ``rate`` (the VAD's and the STT's rate). Without a
    turn configuration (``configure(None)``: the client commits by hand) audio is
    not scored at all.
    """

    def __init__(self, vad: VAD, stt: STT) -> None:
        self._vad_model = vad
        self._stt = stt
        self.rate = vad.sample_rate
        self._vad: VADStream | None = None
        self._config: TurnConfig | None = None
        self._detector: TurnDetector | None = None
        self._offset_ms = 0.0  # session time when the current detector started
        self._pending = b""  # less than one VAD frame
        self._speculation: tuple[bytes, asyncio.Task[_Result]] | None = None
        self._tasks: set[asyncio.Task[_Result]] = set()

    @property
    def position_ms(self) -> float:
        """Session time of the audio scored so far."""
        det = self._detector
        return self._offset_ms + (det.position_ms if det is not None else 0.0)

    @property
    def detecting(self) -> bool:
        return self._config is not None

    def configure(self, config: TurnConfig | None) -> None:
        """New turn-detection settings (``None``: off). A turn in progress is dropped;
        the detector is rebuilt at the next push, once the VAD stream exists."""
        self._offset_ms = self.position_ms
        self._config = config
        self._detector = None
        self._pending = b""
        self._drop_speculation()

    def reset(self) -> None:
        """Forget the turn in progress (``input_audio_buffer.clear``, a manual commit)."""
        if self._detector is not None:
            self._detector.reset()
        self._pending = b""
        self._drop_speculation()

    async def push(self, pcm: bytes) -> list[InputSignal]:
        """Score ``pcm`` and return what happened in it, in order."""
        config = self._config
        if config is None or not pcm:
            return []
        vad = self._vad
        if vad is None:  # the first stream may load the model: off the event loop
            vad = self._vad = await run_blocking(self._vad_model.stream)
        det = self._detector
        if det is None:
            det = self._detector = TurnDetector(config, self.rate, vad.frame_bytes)
        size = det.frame_bytes
        buf = self._pending + pcm
        n = len(buf) // size * size
        frames = [buf[i : i + size] for i in range(0, n, size)]
        self._pending = buf[n:]
        if not frames:
            return []
        probs = await run_blocking(_score, vad, frames)
        signals: list[InputSignal] = []
        for frame, prob in zip(frames, probs, strict=True):
            signal = det.push(frame, prob)
            if signal is not None:
                out = self._on_signal(det, signal)
                if out is not None:
                    signals.append(out)
        return signals

    def _on_signal(self, det: TurnDetector, signal: TurnSignal) -> InputSignal | None:
        off = self._offset_ms
        if isinstance(signal, SpeechStarted):
            self._drop_speculation()
            start = max(0.0, signal.audio_ms - det.config.prefix_padding_ms) + off
            return SpeechBegan(start)
        if isinstance(signal, SpeechPaused):
            self._drop_speculation()
            self._speculation = (signal.audio, self._spawn(signal.audio))
            return None
        if isinstance(signal, SpeechResumed):
            self._drop_speculation()
            return None
        if isinstance(signal, TurnEnded):
            spec, self._speculation = self._speculation, None
            if spec is not None and spec[0] == signal.audio:
                task = spec[1]  # nothing was said since: the speculation is the turn's
            else:
                if spec is not None:
                    spec[1].cancel()
                task = self._spawn(signal.audio)
            return SpeechEnded(signal.audio_ms + off, Utterance(self, signal.audio, task))
        return None

    def utterance(self, audio: bytes) -> Utterance:
        """A turn the client committed by hand: its transcription starts now."""
        return Utterance(self, audio, self._spawn(audio))

    async def transcribe(self, audio: bytes) -> _Result:
        try:
            return await self._stt.transcribe(audio)
        except ParleyError as exc:
            return exc

    def close(self) -> None:
        """Stop every transcription in flight (the session is over)."""
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, audio: bytes) -> asyncio.Task[_Result]:
        task = asyncio.create_task(self.transcribe(audio))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _drop_speculation(self) -> None:
        if self._speculation is not None:
            self._speculation[1].cancel()
            self._speculation = None

"""The local Realtime server's speech input: the shared speech front end, in the
session's terms.

:class:`SpeechInput` is a thin adapter over
:class:`~parley.engines.speech.SpeechFrontEnd` — the same VAD → turn detection →
speculative STT the cascade engine hears with (one executor call per append, the
speculative transcript reused when the turn ends with no new speech). It knows
nothing of the Realtime protocol: the session maps :class:`SpeechBegan` /
:class:`SpeechEnded` onto ``input_audio_buffer.speech_started`` / ``speech_stopped``
and commits; times are session milliseconds (they go on across reconfigurations).
The end-of-turn model (``configure``'s ``endpointing``) may end a turn when a
speculative transcript comes in with no new audio: ``on_transcript`` then asks the
session to :meth:`SpeechInput.poll`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from parley.endpointing import EndpointConfig
from parley.engines.speech import (
    SpeechFrontEnd,
    SpeechOutput,
    SpeechStart,
    Transcription,
    UserTurn,
)
from parley.errors import ParleyError
from parley.providers.seams import STT, VAD, Transcript
from parley.turns import TurnConfig

__all__ = ["InputSignal", "SpeechBegan", "SpeechEnded", "SpeechInput", "Utterance"]

_Result = Transcript | ParleyError


class Utterance:
    """One user turn's audio (PCM16 mono at the input rate) and its transcription,
    already running (speculatively, or since the turn was committed)."""

    __slots__ = ("_input", "_task", "audio")

    def __init__(
        self, speech: SpeechInput, audio: bytes, task: asyncio.Future[Transcription]
    ) -> None:
        self._input = speech
        self.audio = audio
        self._task = task

    async def transcript(self) -> _Result:
        """The words, or the STT's error (a failed transcription is data, not a crash)."""
        try:
            return (await self._task).result
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not self._task.cancelled() or (current is not None and current.cancelling()):
                raise
            # The transcription was dropped after the hand-over: do it again.
            return (await self._input.front.transcribe(self.audio)).result


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


class SpeechInput:
    """Turn detection and transcription for one session (see the module docstring).

    ``push`` takes PCM16 mono at ``rate`` (the VAD's and the STT's rate). Without a
    turn configuration (``configure(None)``: the client commits by hand) no turn is
    detected; the audio still counts towards the session's position.
    """

    def __init__(
        self, vad: VAD, stt: STT, *, on_transcript: Callable[[], None] | None = None
    ) -> None:
        self.front = SpeechFrontEnd(vad, stt, None, on_transcript=on_transcript)
        self.rate = vad.sample_rate

    @property
    def position_ms(self) -> float:
        """Session time of the audio heard so far."""
        return self.front.position_ms

    @property
    def detecting(self) -> bool:
        return self.front.turn_config is not None

    def configure(
        self, config: TurnConfig | None, endpointing: EndpointConfig | None = None
    ) -> None:
        """New turn-detection settings (``None``: off) and end-of-turn policy (``None``:
        the acoustic wait alone); a turn in progress is dropped."""
        self.front.reconfigure(config, endpointing or EndpointConfig(mode="acoustic"))

    def reset(self) -> None:
        """Forget the turn in progress (``input_audio_buffer.clear``, a manual commit)."""
        self.front.reset()

    async def push(self, pcm: bytes) -> list[InputSignal]:
        """Hear ``pcm`` and return what happened in it, in order."""
        if not pcm:
            return []
        return self._signals(await self.front.push([(pcm, time.monotonic())]))

    def poll(self) -> list[InputSignal]:
        """A speculative transcript is in: the turn may end now, with no new audio."""
        return self._signals(self.front.poll())

    def _signals(self, outputs: list[SpeechOutput]) -> list[InputSignal]:
        signals: list[InputSignal] = []
        for out in outputs:
            if isinstance(out, SpeechStart):
                signals.append(SpeechBegan(out.start_ms))
            elif isinstance(out, UserTurn):
                signals.append(
                    SpeechEnded(out.audio_ms, Utterance(self, out.audio, out.transcript))
                )
        return signals

    def utterance(self, audio: bytes) -> Utterance:
        """A turn the client committed by hand: its transcription starts now."""
        return Utterance(self, audio, self.front.transcribe(audio))

    async def close(self) -> None:
        """Stop every transcription in flight (the session is over)."""
        await self.front.aclose()

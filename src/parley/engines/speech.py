"""The speech front end: caller audio in, user turns (with their transcripts) out.

One :class:`SpeechFrontEnd` per call, shared by the cascade engine and the local
Realtime server. It does the part of "hearing" that both need:

1. **VAD** — all complete frames of a received batch are scored in *one*
   executor call (:func:`~parley.providers.models.run_blocking`), never one task
   or one call per frame;
2. **turn detection** — each frame and its probability go through a
   :class:`~parley.turns.TurnDetector`;
3. **speculative STT** — at the first short silence
   (:class:`~parley.turns.SpeechPaused`) the utterance so far is transcribed; if
   the turn then ends with no new speech, :class:`UserTurn` hands out that
   transcript (usually already in), otherwise the STT starts at the end of turn;
4. **endpointing** — with an :class:`~parley.endpointing.EndpointConfig`, the
   speculative transcript sets how much silence ends *this* turn
   (:meth:`EndpointPolicy.decide <parley.endpointing.EndpointPolicy.decide>`, given
   what the agent last said, :attr:`SpeechFrontEnd.agent_text`, and the flow phase's
   :attr:`SpeechFrontEnd.phase`): the front end looks at it before each frame and in
   :meth:`SpeechFrontEnd.poll`, which its owner calls when ``on_transcript`` says one
   is in (the turn may end then without any new audio). A phase policy puts the
   end-of-turn model in charge while it is set, whatever the mode: only the model
   can wait for "the ten digits of a phone number".

5. **barge-in** — with a :class:`~parley.bargein.BargeInConfig`, while
   ``agent_speaking()`` says a reply is under way, every frame also goes to a
   :class:`~parley.bargein.BargeIn`: caller sound is judged before it counts. While
   it is judged, the turn detector's outputs are held back; a burst judged a
   backchannel or noise (:class:`BargeInResume`) is dropped with them and the
   detector reset, so it never becomes a turn; a barge-in (:class:`BargeInStop`)
   releases them after it. The burst's transcript runs like a speculation (its
   arrival wakes ``on_transcript``). The seam's :class:`Transcript` carries words
   only, so the burst is judged by its words (``classify_burst`` without Whisper's
   no-speech and log-probability figures).

The VAD may run at a lower rate than the STT (a phone call: Silero at the line's
8 kHz, Whisper at 16 kHz): the front end then upsamples each utterance once, when
it goes to the STT, instead of the transport resampling every 20 ms frame; the
outputs' ``audio`` stays at the VAD's rate.

It is an asyncio shell only where it has to be (the executor call, the STT
tasks); what comes out are typed, frozen outputs (:data:`SpeechOutput`) returned
from :meth:`~SpeechFrontEnd.push`, :meth:`~SpeechFrontEnd.poll` and
:meth:`~SpeechFrontEnd.flush`, in the order they happened. Positions are
milliseconds of input audio since the front end was created (``position_ms``): a
:meth:`~SpeechFrontEnd.reconfigure` (the Realtime ``server_vad`` parameters) builds
a new detector but the positions go on, and audio pushed while turn detection is
off (``turn=None``) still counts. Wall times (``speech_end_t``) come from the
arrival times given with each chunk, so the end-of-speech time a latency metric
starts from is when that audio reached the server, not when a backlog was scored.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from parley.audio.resample import resample_once
from parley.bargein import (
    BargeIn,
    BargeInConfig,
    BargeInDecision,
    PauseOutput,
    ResumeOutput,
    StopOutput,
)
from parley.endpointing import EndOfTurnInput, EndpointConfig, EndpointPolicy, PhasePolicy
from parley.errors import ParleyError
from parley.providers.models import run_blocking
from parley.providers.seams import STT, VAD, Transcript, VADStream
from parley.tasks import cancel_and_wait
from parley.turns import (
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnConfig,
    TurnDetector,
    TurnEnded,
    TurnSignal,
)

__all__ = [
    "BargeInPause",
    "BargeInResume",
    "BargeInStop",
    "SpeechFrontEnd",
    "SpeechOutput",
    "SpeechPause",
    "SpeechResume",
    "SpeechStart",
    "Transcription",
    "UserTurn",
]


@dataclass(frozen=True, slots=True)
class Transcription:
    """What the STT made of an utterance: the transcript or the error it raised
    (an error is a value here: the turn that uses it reports it), and how long the
    STT took in ms."""

    result: Transcript | ParleyError
    stt_ms: float


@dataclass(frozen=True, slots=True)
class SpeechStart:
    """The user started speaking. ``audio_ms`` is the onset; ``start_ms`` is where
    the turn's audio begins (onset minus the prefix padding, never below the start
    of the current detector); ``gap_ms`` the silence since the previous turn's end."""

    audio_ms: float
    start_ms: float
    gap_ms: float


@dataclass(frozen=True, slots=True)
class SpeechPause:
    """The first short silence of an utterance; ``speculating``: an STT run started."""

    audio_ms: float
    speculating: bool


@dataclass(frozen=True, slots=True)
class SpeechResume:
    """Speech came back after a :class:`SpeechPause`; the speculation was dropped."""

    audio_ms: float


@dataclass(frozen=True, slots=True)
class UserTurn:
    """The user's turn is over.

    ``audio`` is the utterance (prefix padding, speech, the short trailing silence);
    ``audio_ms`` is where speech ended and ``speech_end_t`` the monotonic time that
    audio arrived. ``transcript`` resolves to its :class:`Transcription` (it never
    raises but ``CancelledError``); ``speculative_hit`` says it is the speculative
    run's. ``figures`` are the numbers a turn's metrics report:
    ``end_of_turn_wait_ms``, ``speculative_stt_runs`` and, when a transcript was
    judged, ``endpoint_verdict`` (1 complete, 0 unsure, -1 incomplete).
    """

    audio_ms: float
    audio: bytes
    speech_ms: float
    reason: Literal["silence", "max_utterance", "flush"]
    speech_end_t: float
    transcript: asyncio.Future[Transcription]
    speculative_hit: bool
    figures: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BargeInPause:
    """Caller sound while the agent talks (``onset_ms``): it is being judged."""

    audio_ms: float
    onset_ms: float


@dataclass(frozen=True, slots=True)
class BargeInResume:
    """The sound was a backchannel or noise: the reply goes on, no turn is taken."""

    audio_ms: float
    reason: Literal["noise", "backchannel", "timeout"]
    text: str


@dataclass(frozen=True, slots=True)
class BargeInStop:
    """A barge-in: stop the reply. The caller's speech outputs follow."""

    audio_ms: float
    reason: Literal["commit", "words", "timeout"]
    text: str


SpeechOutput: TypeAlias = (
    SpeechStart | SpeechPause | SpeechResume | UserTurn | BargeInPause | BargeInResume | BargeInStop
)

_VERDICT_CODE = {"complete": 1.0, "unsure": 0.0, "incomplete": -1.0}


@dataclass(slots=True)
class _Speculation:
    audio: bytes
    task: asyncio.Task[Transcription]
    judged: bool = False  # the endpointing policy has seen its transcript


class SpeechFrontEnd:
    """VAD → turn detector → speculative STT → endpointing for one call.

    ``turn=None`` turns detection off (audio is only counted). ``endpointing=None``
    (or ``mode="acoustic"``) keeps the detector's acoustic wait. ``on_transcript``
    is called (from a done callback: it must not block) when a speculative
    transcript is in and the owner should call :meth:`poll`.
    """

    def __init__(
        self,
        vad: VAD,
        stt: STT,
        turn: TurnConfig | None,
        *,
        speculative_stt: bool = True,
        endpointing: EndpointConfig | None = None,
        on_transcript: Callable[[], None] | None = None,
        barge_in: BargeInConfig | None = None,
        agent_speaking: Callable[[], bool] | None = None,
    ) -> None:
        self._vad, self._stt = vad, stt
        self._rate = vad.sample_rate
        self._turn = turn
        self._speculative = speculative_stt
        self._endpoint = EndpointPolicy(endpointing or EndpointConfig(mode="acoustic"))
        self._on_transcript = on_transcript
        self._stream: VADStream | None = None
        self._detector: TurnDetector | None = None
        self._offset_ms = 0.0  # position where the current detector started
        self._pending = b""  # a partial frame, completed by the next chunk
        # Recent frame end positions → arrival times, to date the end of speech.
        self._arrivals: deque[tuple[float, float]] = deque(maxlen=512)
        self._speculation: _Speculation | None = None
        self._spec_runs = 0  # speculative STT runs in the current utterance
        self._verdict: float | None = None  # the current pause's judgement (code)
        self._tasks: set[asyncio.Task[Transcription]] = set()
        self._epoch = 0  # bumped by reset/reconfigure: frames scored before are stale
        self._phase: PhasePolicy | None = None
        self._barge_config = barge_in
        self._barge: BargeIn | None = None
        self._agent_speaking = agent_speaking
        self._barge_live = False  # the policy is hearing (a reply was under way)
        self._held: list[SpeechOutput] = []  # the detector's outputs while a burst is judged
        self._burst: tuple[int, asyncio.Task[Transcription]] | None = None
        #: What the caller last heard the agent say (the dialogue context of the model).
        self.agent_text: str | None = None

    # -- state -------------------------------------------------------------------------

    @property
    def turn_config(self) -> TurnConfig | None:
        return self._turn

    @property
    def position_ms(self) -> float:
        """Milliseconds of input audio taken in so far (whole frames)."""
        det = self._detector
        return self._offset_ms + (det.position_ms if det is not None else 0.0)

    @property
    def phase(self) -> PhasePolicy | None:
        """The flow phase's turn-taking policy (``None``: the configured one)."""
        return self._phase

    @phase.setter
    def phase(self, policy: PhasePolicy | None) -> None:
        # PhasePolicy() overrides nothing: a phase without ``turn_taking``.
        self._phase = None if policy is None or policy == PhasePolicy() else policy

    @property
    def in_turn(self) -> bool:
        """True between :class:`SpeechStart` and :class:`UserTurn`."""
        return self._detector is not None and self._detector.in_turn

    # -- control -----------------------------------------------------------------------

    async def start(self) -> None:
        """Make the VAD stream now (it may load the model: off the event loop).
        Optional: the first :meth:`push` does it otherwise."""
        if self._stream is None:
            self._stream = await run_blocking(self._vad.stream)
        if self._detector is None and self._turn is not None:
            self._detector = TurnDetector(self._turn, self._rate, self._stream.frame_bytes)
        if self._barge is None and self._barge_config is not None:
            self._barge = BargeIn(self._barge_config, self._rate, self._stream.frame_bytes)

    def reconfigure(
        self, turn: TurnConfig | None, endpointing: EndpointConfig | None = None
    ) -> None:
        """New turn-taking settings from here on (``None``: detection off) and, if
        given, a new endpointing policy. The utterance in progress and any speculation
        are dropped; positions go on."""
        self._offset_ms = self.position_ms
        self._turn = turn
        if endpointing is not None:
            self._endpoint = EndpointPolicy(endpointing)
        self._detector = None
        if turn is not None and self._stream is not None:
            self._detector = TurnDetector(turn, self._rate, self._stream.frame_bytes)
        self._pending = b""
        self._epoch += 1
        self._forget_utterance()

    def reset(self) -> None:
        """Drop the utterance in progress, the prefix padding and any speculation
        (the Realtime ``input_audio_buffer.clear`` / a manual commit)."""
        if self._detector is not None:
            self._detector.reset()
        self._pending = b""
        self._epoch += 1
        self._forget_utterance()

    def flush(self) -> UserTurn | None:
        """End the turn in progress now (``reason="flush"``), if there is one."""
        det = self._detector
        if det is None:
            return None
        ended = det.flush()
        if ended is None:
            self._forget_utterance()
            return None
        return self._turn_ended(ended)

    def transcribe(self, audio: bytes) -> asyncio.Task[Transcription]:
        """Transcribe ``audio`` (at the VAD's rate) in a task this front end tracks
        (a manual commit)."""
        task = asyncio.get_running_loop().create_task(self._transcribe(audio))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        """Cancel every STT task it started (handed out or not) and wait for them."""
        self._speculation = None
        for task in list(self._tasks):
            await cancel_and_wait(task)

    # -- audio -------------------------------------------------------------------------

    async def push(self, batch: Sequence[tuple[bytes, float]]) -> list[SpeechOutput]:
        """Take chunks of PCM16 mono at the VAD's rate, each with its arrival time
        (``time.monotonic()``), and return what happened, in order. All complete
        frames of the batch are scored in one executor call."""
        if self._turn is None:
            self._offset_ms += sum(len(pcm) for pcm, _t in batch) / 2 / self._rate * 1000
            return []
        if self._detector is None:
            await self.start()
            if self._detector is None:  # reconfigured to None while the model loaded
                return []
        det, stream = self._detector, self._stream
        assert stream is not None
        size = det.frame_bytes
        frames: list[bytes] = []
        times: list[float] = []
        buf = self._pending
        for pcm, t in batch:
            buf += pcm
            n = len(buf) // size * size
            frames.extend(buf[i : i + size] for i in range(0, n, size))
            times.extend([t] * (n // size))
            buf = buf[n:]
        self._pending = buf
        out: list[SpeechOutput] = []
        if not frames:
            return out
        epoch = self._epoch
        probs = await run_blocking(_score, stream, frames)
        if epoch != self._epoch:
            return out  # reset or reconfigured while the frames were scored: stale
        offset = self._offset_ms
        barge = self._hearing_barge_in()
        for frame, prob, t in zip(frames, probs, times, strict=True):
            spec = self._speculation
            if spec is not None and not spec.judged and spec.task.done():
                self._judge(self._sink(out))
            if barge is not None:
                self._judge_burst(out)
                if (decision := barge.push(frame, prob)) is not None:
                    self._on_barge_in(decision, out)
            signal = det.push(frame, prob)
            self._arrivals.append((offset + det.position_ms, t))
            if signal is not None:
                self._on_signal(signal, self._sink(out))
        return out

    def poll(self) -> list[SpeechOutput]:
        """Judge a speculative transcript that is in; the turn may end here and now."""
        out: list[SpeechOutput] = []
        self._judge(self._sink(out))
        self._judge_burst(out)
        return out

    # -- internals ---------------------------------------------------------------------

    def _on_signal(self, signal: TurnSignal, out: list[SpeechOutput]) -> None:
        off = self._offset_ms
        if isinstance(signal, SpeechStarted):
            self._forget_utterance()
            prefix = self._turn.prefix_padding_ms if self._turn is not None else 0.0
            start = max(0.0, signal.audio_ms - prefix) + off
            out.append(SpeechStart(signal.audio_ms + off, start, signal.gap_ms))
        elif isinstance(signal, SpeechPaused):
            self._drop_speculation()
            if self._speculative:
                task = self.transcribe(signal.audio)
                self._speculation = _Speculation(signal.audio, task)
                self._spec_runs += 1
                if self._judging and self._on_transcript is not None:
                    wake = self._on_transcript
                    task.add_done_callback(lambda _t: wake())
            out.append(SpeechPause(signal.audio_ms + off, self._speculative))
            if self._phase is not None and self._detector is not None:
                # Until the transcript is in: the phase's curve's acoustic wait.
                pending = self._endpoint.model.pending_for(self._phase)
                if (ended := self._detector.set_end_of_turn_silence(pending)) is not None:
                    out.append(self._turn_ended(ended))
        elif isinstance(signal, SpeechResumed):
            self._drop_speculation()
            self._verdict = None
            out.append(SpeechResume(signal.audio_ms + off))
        else:
            out.append(self._turn_ended(signal))

    def _turn_ended(self, ended: TurnEnded) -> UserTurn:
        figures = {
            "end_of_turn_wait_ms": ended.wait_ms,
            "speculative_stt_runs": float(self._spec_runs),
        }
        if self._verdict is not None:
            figures["endpoint_verdict"] = self._verdict
        spec, self._speculation = self._speculation, None
        self._spec_runs, self._verdict = 0, None
        hit = spec is not None and spec.audio == ended.audio
        if spec is not None and not hit:
            spec.task.cancel()
        task = spec.task if spec is not None and hit else self.transcribe(ended.audio)
        end_ms = ended.audio_ms + self._offset_ms
        return UserTurn(
            audio_ms=end_ms,
            audio=ended.audio,
            speech_ms=ended.speech_ms,
            reason=ended.reason,
            speech_end_t=self._arrival(end_ms),
            transcript=task,
            speculative_hit=hit,
            figures=figures,
        )

    def _judge(self, out: list[SpeechOutput]) -> None:
        spec, det = self._speculation, self._detector
        if spec is None or spec.judged or not spec.task.done() or det is None:
            return
        spec.judged = True
        if spec.task.cancelled() or not self._judging:
            return
        result = spec.task.result().result
        if isinstance(result, ParleyError):
            return  # keep the acoustic wait; the turn reports the error
        inp = EndOfTurnInput(result.text, last_agent_text=self.agent_text, phase=self._phase)
        decision = self._endpoint.decide(inp)
        if decision is None:  # the rule is unsure and keeps the acoustic wait
            self._verdict = _VERDICT_CODE[self._endpoint.wait_ms(result.text)[0]]
            return
        self._verdict = _VERDICT_CODE[decision.verdict]
        ended = det.set_end_of_turn_silence(decision.wait_ms)
        if ended is not None:
            out.append(self._turn_ended(ended))

    # -- barge-in (see the module docstring, 5.) ----------------------------------------

    def _hearing_barge_in(self) -> BargeIn | None:
        """The barge-in policy if it hears this batch: a reply is under way, or a
        burst heard during one is still being judged."""
        barge = self._barge
        if barge is None or self._agent_speaking is None:
            return None
        speaking = self._agent_speaking()
        if speaking and not self._barge_live:
            barge.reset()  # a new reply: forget the last one's decision
        self._barge_live = speaking or barge.deciding
        return barge if self._barge_live else None

    def _sink(self, out: list[SpeechOutput]) -> list[SpeechOutput]:
        """Where the detector's outputs go: held back while a burst is judged."""
        barge = self._barge
        return self._held if barge is not None and barge.deciding else out

    def _on_barge_in(self, decision: BargeInDecision, out: list[SpeechOutput]) -> None:
        off = self._offset_ms
        if isinstance(decision, PauseOutput):
            out.append(BargeInPause(decision.at_ms + off, decision.onset_ms + off))
        elif isinstance(decision, StopOutput):
            self._drop_burst()
            out.append(BargeInStop(decision.at_ms + off, decision.reason, decision.text))
            out.extend(self._held)
            self._held.clear()
        elif isinstance(decision, ResumeOutput):
            self._drop_burst()
            for held in self._held:
                if isinstance(held, UserTurn):
                    held.transcript.cancel()
            self._held.clear()
            if self._detector is not None:
                self._detector.reset()  # the burst is no turn
            self._forget_utterance()
            out.append(BargeInResume(decision.at_ms + off, decision.reason, decision.text))
        else:  # TranscribeBurst
            self._drop_burst()
            task = self.transcribe(decision.audio)
            self._burst = (decision.seq, task)
            if self._on_transcript is not None:
                wake = self._on_transcript
                task.add_done_callback(lambda _t: wake())

    def _judge_burst(self, out: list[SpeechOutput]) -> None:
        burst, barge = self._burst, self._barge
        if burst is None or barge is None or not burst[1].done():
            return
        self._burst = None
        seq, task = burst
        if task.cancelled():
            return
        result = task.result().result
        # An STT failure: the caller said something nobody heard; count it as words.
        text = result.text if isinstance(result, Transcript) else "unheard words"
        decision = barge.on_transcript(seq, text)
        if decision is not None:
            self._on_barge_in(decision, out)

    def _drop_burst(self) -> None:
        if self._burst is not None:
            self._burst[1].cancel()
            self._burst = None

    @property
    def _judging(self) -> bool:
        """A speculative transcript may change the wait (a phase policy always may)."""
        return self._endpoint.enabled or self._phase is not None

    def _arrival(self, audio_ms: float) -> float:
        """Wall time at which input position ``audio_ms`` reached us."""
        for end_ms, t in self._arrivals:
            if end_ms >= audio_ms:
                return t
        return time.monotonic()

    def _drop_speculation(self) -> None:
        if self._speculation is not None:
            self._speculation.task.cancel()
            self._speculation = None

    def _forget_utterance(self) -> None:
        self._drop_speculation()
        self._spec_runs, self._verdict = 0, None

    async def _transcribe(self, audio: bytes) -> Transcription:
        t0 = time.monotonic()
        if self._rate != self._stt.sample_rate:
            audio = resample_once(audio, self._rate, self._stt.sample_rate)
        try:
            result: Transcript | ParleyError = await self._stt.transcribe(audio)
        except ParleyError as exc:  # a value: the turn that uses it reports it
            result = exc
        return Transcription(result, (time.monotonic() - t0) * 1000)


def _score(stream: VADStream, frames: list[bytes]) -> list[float]:
    # Runs in the model executor: one call per received batch, not per frame.
    return [stream.probability(f) for f in frames]

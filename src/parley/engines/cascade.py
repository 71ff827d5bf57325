"""The cascade engine: VAD → turn detection → STT → LLM → TTS, overlapped.

Per received chunk of input audio, all complete VAD frames are scored in one
executor call (never one task per frame), then pushed through the
:class:`~parley.turns.TurnDetector`. At the first short silence
(:class:`~parley.turns.SpeechPaused`) the utterance so far is transcribed
speculatively; if the turn then ends with no new speech, that transcript is used
as is, so most of Whisper's time hides inside the end-of-turn wait. With
transcript-aware endpointing (:mod:`parley.endpointing`, on by default) that
transcript also sets how long the silence must last: a finished-sounding
sentence ends the turn as soon as the transcript is in (after at least
``complete_wait_ms`` of silence), a trailing "my number is five five…" waits
``incomplete_wait_ms``. The LLM is
streamed, its text cut into clauses, and each clause synthesised the moment it
exists, so the first audio leaves after the first clause, not the whole answer.

Barge-in: user speech while a reply is being made or played cancels the LLM and
TTS work at once and emits :class:`~parley.events.Interrupted` with the text the
caller actually heard (the transport's playback reports mapped through the
clause timings); the history keeps only that text.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from parley.audio.format import AudioFormat
from parley.endpointing import EndpointConfig, EndpointPolicy
from parley.engines.playback import estimated_played_ms, still_playing
from parley.engines.seams import EngineStats, ToolRunner
from parley.engines.text_hooks import HeldSplitter, TextHook
from parley.errors import AuthError, ConfigError, ParleyError, ProviderError, RateLimited
from parley.events import (
    AudioDelta,
    ContextInjected,
    ErrorEvent,
    Event,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    Role,
    TextDelta,
    ToolCall,
    TranscriptFinal,
    TurnMetrics,
    UserSpeechStarted,
    UserSpeechStopped,
)
from parley.providers.models import run_blocking
from parley.providers.seams import LLM, STT, TTS, VAD, Message, Transcript, VADStream
from parley.providers.sentences import SentenceSplitter
from parley.turns import (
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnConfig,
    TurnDetector,
    TurnEnded,
    TurnSignal,
)

__all__ = ["CascadeConfig", "CascadeEngine"]

_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class CascadeConfig:
    """Settings of one cascade engine (one call)."""

    instructions: str = ""
    turn: TurnConfig = field(default_factory=TurnConfig)
    speculative_stt: bool = True  # transcribe at the first short silence
    # What the speculative transcript does to the end-of-turn wait (needs speculative_stt).
    endpointing: EndpointConfig = field(default_factory=EndpointConfig)
    # The first clause may be this short ("You said:"), so audio starts after a few
    # words; later clauses are whole sentences (see parley.providers.sentences).
    first_clause_chars: int = 8
    max_tool_rounds: int = 4  # LLM → tools → LLM rounds before giving up on text
    max_history: int = 200  # messages kept (oldest dropped first)
    input_queue_chunks: int = 200  # ≈ 4 s of 20 ms chunks; beyond that audio is dropped
    event_queue_size: int = 256
    clause_queue_size: int = 16


@dataclass(slots=True)
class _Text:
    text: str


class _Close:
    pass


class _Wake:
    """A speculative transcript is in: look at it even if no audio arrives."""


_CLOSE = _Close()
_WAKE = _Wake()
_END = object()


@dataclass(slots=True)
class _Segment:
    """One clause's span in the reply audio (ms since the reply's first sample)."""

    text: str
    start_ms: float
    end_ms: float


@dataclass(slots=True)
class _Response:
    """Book-keeping of one reply: its tasks, its audio timeline, its metrics."""

    id: str
    turn_index: int
    speech_end_t: float | None  # wall time the user stopped speaking (None for text input)
    turn_end_t: float  # wall time the turn was confirmed
    task: asyncio.Task[None] | None = None
    started: bool = False  # ResponseStarted emitted
    superseded: bool = False  # new user speech during STT: keep the words, skip the reply
    generating: bool = True
    segments: list[_Segment] = field(default_factory=list)
    audio_ms: float = 0.0
    played_ms: float | None = None  # last playback report
    first_audio_t: float | None = None
    spoken: str = ""  # all text handed to TTS, clauses joined by one space
    final_offset: int = 0  # len(spoken) before the last LLM round (after tool calls)
    history_index: int | None = None  # where the final assistant message sits
    metrics_sent: bool = False
    stt_ms: float | None = None
    stt_wait_ms: float | None = None
    speculative_hit: bool = False
    extra: dict[str, float] = field(default_factory=dict)  # endpointing figures
    llm_first_token_ms: float | None = None
    tts_first_byte_ms: float | None = None

    def estimated_played_ms(self, now: float) -> float:
        return estimated_played_ms(self.audio_ms, self.played_ms, self.first_audio_t, now)

    def playing(self, now: float) -> bool:
        return still_playing(
            self.generating, self.audio_ms, self.played_ms, self.first_audio_t, now
        )

    def played_text(self, played_ms: float) -> str:
        heard: list[str] = []
        for seg in self.segments:
            if played_ms >= seg.end_ms:
                heard.append(seg.text)
                continue
            if played_ms > seg.start_ms and seg.end_ms > seg.start_ms:
                cut = int(len(seg.text) * (played_ms - seg.start_ms) / (seg.end_ms - seg.start_ms))
                part = seg.text[:cut]
                # A word cut in the middle was not heard: keep whole words only.
                rest = seg.text[cut : cut + 1]
                if rest and not rest.isspace() and not part[-1:].isspace():
                    part = part.rsplit(None, 1)[0] if " " in part.strip() else ""
                heard.append(part)
            break
        return " ".join(" ".join(heard).split())


@dataclass(slots=True)
class _Speculation:
    audio: bytes
    task: asyncio.Task[tuple[Transcript | ParleyError, float]]
    judged: bool = False  # the endpointing policy has seen its transcript


_VERDICT_CODE = {"complete": 1.0, "unsure": 0.0, "incomplete": -1.0}


class CascadeEngine:
    """One call through a cascade of shared providers (see the module docstring)."""

    def __init__(
        self,
        vad: VAD,
        stt: STT,
        llm: LLM,
        tts: TTS,
        config: CascadeConfig | None = None,
        *,
        tools: ToolRunner | None = None,
    ) -> None:
        self.config = config or CascadeConfig()
        if stt.sample_rate != vad.sample_rate:
            raise ConfigError(
                f"STT rate {stt.sample_rate} Hz differs from VAD rate {vad.sample_rate} Hz",
                field="stt",
            )
        self._vad, self._stt, self._llm, self._tts = vad, stt, llm, tts
        self._tools = tools
        self._request_hook: TextHook | None = None
        self._response_hook: TextHook | None = None
        self._instructions = self.config.instructions
        self._context: dict[str, tuple[object, float, bool]] = {}  # key → data, t, announced
        self._history: list[Message] = []
        self._in_q: asyncio.Queue[tuple[bytes, float] | _Text | _Close | _Wake] = asyncio.Queue(
            self.config.input_queue_chunks
        )
        self._out_q: asyncio.Queue[object] = asyncio.Queue(self.config.event_queue_size)
        self._vad_stream: VADStream | None = None
        self._detector: TurnDetector | None = None
        self._pending = b""
        # Recent frame end positions → arrival times, to date the end of speech.
        self._arrivals: deque[tuple[float, float]] = deque(maxlen=512)
        self._speculation: _Speculation | None = None
        self._endpoint = EndpointPolicy(self.config.endpointing)
        self._spec_runs = 0  # speculative STT runs started in the current utterance
        self._verdict: float | None = None  # the current pause's judgement (code)
        self._response: _Response | None = None
        self._responses: dict[str, _Response] = {}
        self._turns = 0
        self._tg: asyncio.TaskGroup | None = None
        self._closed = False
        self.dropped_audio_chunks = 0

    # -- the Engine seam ---------------------------------------------------------------

    @property
    def input_format(self) -> AudioFormat:
        return AudioFormat("pcm16", self._vad.sample_rate, 1)

    def stats(self) -> EngineStats:
        depths = {"audio_in": self._in_q.qsize(), "events_out": self._out_q.qsize()}
        return EngineStats("cascade", depths, self.dropped_audio_chunks)

    @property
    def history(self) -> Sequence[Message]:
        """The conversation as the LLM will see it next (heard text only)."""
        return tuple(self._history)

    async def send_audio(self, pcm: bytes) -> None:
        if self._closed:
            return
        try:
            self._in_q.put_nowait((pcm, time.monotonic()))
        except asyncio.QueueFull:
            self.dropped_audio_chunks += 1  # audio is dropped, never queued without bound

    async def send_text(self, text: str) -> None:
        if not self._closed:
            await self._in_q.put(_Text(text))

    async def report_playback(self, response_id: str, played_ms: float) -> None:
        rec = self._responses.get(response_id)
        if rec is not None and (rec.played_ms is None or played_ms > rec.played_ms):
            rec.played_ms = played_ms

    async def inject_context(self, key: str, data: object) -> None:
        self._context[key] = (data, time.monotonic(), False)

    async def update(
        self, *, instructions: str | None = None, tools: ToolRunner | None = None
    ) -> None:
        if instructions is not None:
            self._instructions = instructions
        if tools is not None:
            self._tools = tools

    def set_text_hooks(
        self, *, request: TextHook | None = None, response: TextHook | None = None
    ) -> None:
        """Middleware (:mod:`parley.engines.text_hooks`): ``request`` transforms the
        user's text before the LLM (the transcript keeps the words heard; ``""`` skips
        the reply); ``response`` transforms each whole sentence of the reply before
        TTS, so speech, ``TextDelta``, transcript and history carry its output."""
        self._request_hook = request
        self._response_hook = response

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            # Back-pressure would be wrong here: make room for the close marker.
            while self._in_q.full():
                self._in_q.get_nowait()
            self._in_q.put_nowait(_CLOSE)

    async def events(self) -> AsyncIterator[Event]:
        while True:
            item = await self._out_q.get()
            if item is _END:
                return
            yield item  # type: ignore[misc]

    async def run(self) -> None:
        try:
            stream = await run_blocking(self._vad.stream)  # may load the model: off the loop
            self._vad_stream = stream
            self._detector = TurnDetector(
                self.config.turn, self._vad.sample_rate, stream.frame_bytes
            )
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                await self._input_loop()
                self._cancel_all()
        finally:
            self._closed = True
            self._tg = None
            while self._out_q.full():  # the consumer is gone or slow: the end wins
                self._out_q.get_nowait()
            self._out_q.put_nowait(_END)

    # -- input -------------------------------------------------------------------------

    async def _emit(self, event: Event) -> None:
        await self._out_q.put(event)

    async def _input_loop(self) -> None:
        while True:
            item = await self._in_q.get()
            if isinstance(item, _Close):
                return
            if isinstance(item, _Text):
                await self._on_text(item.text)
                continue
            if isinstance(item, _Wake):
                await self._judge_speculation()
                continue
            # Take every chunk already waiting: one executor call scores them all.
            chunks = [item]
            follow: _Text | _Close | None = None
            while not self._in_q.empty():
                nxt = self._in_q.get_nowait()
                if isinstance(nxt, tuple):
                    chunks.append(nxt)
                elif isinstance(nxt, _Wake):
                    continue  # _on_audio looks at the speculation before every frame
                else:
                    follow = nxt
                    break
            await self._on_audio(chunks)
            if isinstance(follow, _Close):
                return
            if isinstance(follow, _Text):
                await self._on_text(follow.text)

    async def _on_audio(self, chunks: list[tuple[bytes, float]]) -> None:
        assert self._vad_stream is not None and self._detector is not None
        size = self._vad_stream.frame_bytes
        frames: list[bytes] = []
        times: list[float] = []
        buf = self._pending
        for pcm, t in chunks:
            buf += pcm
            while len(buf) >= size:
                frames.append(buf[:size])
                times.append(t)
                buf = buf[size:]
        self._pending = buf
        if not frames:
            return
        probs = await run_blocking(_score, self._vad_stream, frames)
        det = self._detector
        for frame, prob, t in zip(frames, probs, times, strict=True):
            spec = self._speculation
            if spec is not None and not spec.judged and spec.task.done():
                await self._judge_speculation()
            signal = det.push(frame, prob)
            self._arrivals.append((det.position_ms, t))
            if signal is not None:
                await self._on_signal(signal)

    def _arrival(self, audio_ms: float) -> float:
        """Wall time at which input position ``audio_ms`` reached the engine."""
        for end_ms, t in self._arrivals:
            if end_ms >= audio_ms:
                return t
        return time.monotonic()

    async def _on_signal(self, signal: TurnSignal) -> None:
        if isinstance(signal, SpeechStarted):
            self._drop_speculation()
            await self._barge_in()
            await self._emit(UserSpeechStarted(signal.audio_ms))
            self._spec_runs = 0
            self._verdict = None
        elif isinstance(signal, SpeechPaused):
            if self.config.speculative_stt:
                self._drop_speculation()
                task = self._spawn(self._transcribe(signal.audio))
                self._speculation = _Speculation(signal.audio, task)
                self._spec_runs += 1
                if self._endpoint.enabled:
                    task.add_done_callback(self._wake)
        elif isinstance(signal, SpeechResumed):
            self._drop_speculation()
            self._verdict = None
        elif isinstance(signal, TurnEnded):
            await self._emit(UserSpeechStopped(signal.audio_ms))
            extra = {
                "end_of_turn_wait_ms": signal.wait_ms,
                "speculative_stt_runs": float(self._spec_runs),
            }
            if self._verdict is not None:
                extra["endpoint_verdict"] = self._verdict
            self._verdict = None
            self._spec_runs = 0
            spec, self._speculation = self._speculation, None
            hit = spec is not None and spec.audio == signal.audio
            if spec is not None and not hit:
                spec.task.cancel()
            stt = (
                spec.task
                if spec is not None and hit
                else self._spawn(self._transcribe(signal.audio))
            )
            self._start_response(self._arrival(signal.audio_ms), stt, speculative=hit)
            assert self._response is not None
            self._response.extra.update(extra)

    def _wake(self, _task: object) -> None:
        # A done callback: runs on the loop, may not await. If the queue is full,
        # audio is waiting and _on_audio will look at the transcript anyway.
        with contextlib.suppress(asyncio.QueueFull):
            self._in_q.put_nowait(_WAKE)

    async def _judge_speculation(self) -> None:
        """Let the endpointing policy set this pause's wait from the speculative
        transcript; the turn may end here and now."""
        spec, det = self._speculation, self._detector
        if spec is None or spec.judged or not spec.task.done() or det is None:
            return
        spec.judged = True
        if spec.task.cancelled() or not self._endpoint.enabled:
            return
        result, _ms = spec.task.result()
        if isinstance(result, ParleyError):
            return  # keep the acoustic wait; the turn reports the error
        verdict, wait = self._endpoint.wait_ms(result.text)
        self._verdict = _VERDICT_CODE[verdict]
        signal = det.set_end_of_turn_silence(wait)
        if signal is not None:
            await self._on_signal(signal)

    async def _on_text(self, text: str) -> None:
        await self._barge_in()
        fut: asyncio.Future[tuple[Transcript | ParleyError, float]] = (
            asyncio.get_running_loop().create_future()
        )
        fut.set_result((Transcript(text=text), 0.0))
        self._start_response(None, fut, speculative=False)

    def _spawn(self, coro: object) -> asyncio.Task[tuple[Transcript | ParleyError, float]]:
        assert self._tg is not None
        return self._tg.create_task(coro)  # type: ignore[arg-type]

    async def _transcribe(self, audio: bytes) -> tuple[Transcript | ParleyError, float]:
        t0 = time.monotonic()
        try:
            result: Transcript | ParleyError = await self._stt.transcribe(audio)
        except ParleyError as exc:  # reported by the turn that uses it, if any
            result = exc
        return result, (time.monotonic() - t0) * 1000

    def _drop_speculation(self) -> None:
        if self._speculation is not None:
            self._speculation.task.cancel()
            self._speculation = None

    def _cancel_all(self) -> None:
        self._drop_speculation()
        for rec in self._responses.values():
            if rec.task is not None:
                rec.task.cancel()

    # -- barge-in ----------------------------------------------------------------------

    async def _barge_in(self) -> None:
        rec = self._response
        now = time.monotonic()
        if rec is None or (not rec.playing(now) and (rec.task is None or rec.task.done())):
            return
        if not rec.started:
            rec.superseded = True  # still transcribing: keep the user's words, skip the reply
            return
        was_generating = rec.generating
        if rec.task is not None and not rec.task.done():
            rec.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rec.task
        rec.generating = False
        played_ms = rec.estimated_played_ms(now)
        played = rec.played_text(played_ms)
        await self._emit(Interrupted(rec.id, played, played_ms))
        if was_generating:
            await self._emit(ResponseDone(rec.id, "cancelled", played))
            if played:
                self._remember(Message(Role.ASSISTANT, played))
        elif rec.history_index is not None:
            final = played[rec.final_offset :].strip() if len(played) > rec.final_offset else ""
            self._history[rec.history_index] = Message(Role.ASSISTANT, final)
        await self._send_metrics(rec)
        self._response = None

    # -- the reply ---------------------------------------------------------------------

    def _start_response(
        self,
        speech_end_t: float | None,
        stt: asyncio.Future[tuple[Transcript | ParleyError, float]],
        *,
        speculative: bool,
    ) -> None:
        assert self._tg is not None
        self._turns += 1
        rec = _Response(
            id=f"resp_{next(_ids)}",
            turn_index=self._turns,
            speech_end_t=speech_end_t,
            turn_end_t=time.monotonic(),
            speculative_hit=speculative,
        )
        # Keep only the replies the transport may still report on.
        for old in [k for k, r in self._responses.items() if r is not self._response]:
            del self._responses[old]
        self._responses[rec.id] = rec
        self._response = rec
        rec.task = self._tg.create_task(self._respond(rec, stt))

    async def _respond(
        self, rec: _Response, stt: asyncio.Future[tuple[Transcript | ParleyError, float]]
    ) -> None:
        result, stt_ms = await stt
        rec.stt_ms = stt_ms if stt_ms else None
        rec.stt_wait_ms = (time.monotonic() - rec.turn_end_t) * 1000
        if isinstance(result, ParleyError):
            await self._emit(_error_event(result))
            await self._emit(TranscriptFinal(Role.USER, ""))
            rec.generating = False
            return
        text = result.text.strip()
        await self._emit(TranscriptFinal(Role.USER, text))
        if text and self._request_hook is not None:
            try:
                text = (await self._request_hook(text)).strip()
            except ParleyError as refused:  # AuthError …: no reply, the call goes on
                await self._emit(_error_event(refused))
                text = ""
        if not text:
            rec.generating = False
            return
        self._remember(Message(Role.USER, text))
        if rec.superseded:
            rec.generating = False
            return
        rec.started = True
        await self._emit(ResponseStarted(rec.id))
        errors: list[BaseException] = []
        try:
            await self._generate(rec)
        except* ParleyError as group:
            errors.extend(group.exceptions)
        rec.generating = False
        if errors:  # this reply failed; the call goes on
            for exc in errors:
                await self._emit(_error_event(exc))
            await self._emit(ResponseDone(rec.id, "failed", rec.spoken))
            return
        if rec.spoken[rec.final_offset :].strip():
            rec.history_index = len(self._history)
            self._remember(Message(Role.ASSISTANT, rec.spoken[rec.final_offset :].strip()))
        await self._emit(ResponseDone(rec.id, "completed", rec.spoken))
        await self._send_metrics(rec)

    async def _generate(self, rec: _Response) -> None:
        clauses: asyncio.Queue[str | None] = asyncio.Queue(self.config.clause_queue_size)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._speak(rec, clauses))
            await self._think(rec, clauses)

    async def _think(self, rec: _Response, clauses: asyncio.Queue[str | None]) -> None:
        first = self.config.first_clause_chars
        transform = self._response_hook
        # With response middleware, pieces never end inside a number (text_hooks).
        splitter = (
            SentenceSplitter(first_clause_chars=first)
            if transform is None
            else HeldSplitter(first_clause_chars=first)
        )
        tools = self._tools
        for round_index in range(self.config.max_tool_rounds + 1):
            messages = await self._messages()
            specs = tuple(tools.specs) if tools is not None else ()
            if round_index == self.config.max_tool_rounds:
                specs = ()  # last round: no more tools, the model must answer
            calls: list[ToolCall] = []
            text = ""
            t0 = time.monotonic()
            async for chunk in self._llm.stream(messages, specs):
                if isinstance(chunk, ToolCall):
                    calls.append(chunk)
                    continue
                if not chunk:
                    continue
                if rec.llm_first_token_ms is None:
                    rec.llm_first_token_ms = (time.monotonic() - t0) * 1000
                text += chunk
                if transform is None:  # else TextDelta carries the transformed sentences
                    await self._emit(TextDelta(rec.id, chunk))
                for clause in splitter.push(chunk):
                    await self._say(rec, clauses, clause)
            if not calls or tools is None:
                break
            for clause in splitter.flush():
                await self._say(rec, clauses, clause)
            self._remember(Message(Role.ASSISTANT, text, tool_calls=tuple(calls)))
            for call in calls:
                await self._emit(call)
                result = await tools.run(call)
                await self._emit(result)
                self._remember(
                    Message(Role.TOOL, result.output, tool_call_id=call.call_id, name=call.name)
                )
            rec.final_offset = len(rec.spoken)
        for clause in splitter.flush():
            await self._say(rec, clauses, clause)
        await clauses.put(None)

    async def _say(self, rec: _Response, clauses: asyncio.Queue[str | None], clause: str) -> None:
        text = _clean(clause)
        transform = self._response_hook
        if text and transform is not None:
            # A ParleyError here fails this reply (ResponseDone "failed"): unfiltered
            # text is never spoken.
            text = _clean(await transform(text))
            if text:
                await self._emit(TextDelta(rec.id, f" {text}" if rec.spoken else text))
        if text:
            rec.spoken = f"{rec.spoken} {text}" if rec.spoken else text
            await clauses.put(text)

    async def _speak(self, rec: _Response, clauses: asyncio.Queue[str | None]) -> None:
        rate = self._tts.sample_rate
        while (clause := await clauses.get()) is not None:
            seg = _Segment(clause, rec.audio_ms, rec.audio_ms)
            rec.segments.append(seg)
            t0 = time.monotonic()
            first = True
            async for pcm in self._tts.synthesize(seg.text):
                if not pcm:
                    continue
                now = time.monotonic()
                if rec.first_audio_t is None:
                    rec.first_audio_t = now
                    rec.tts_first_byte_ms = (now - t0) * 1000
                rec.audio_ms += len(pcm) / 2 / rate * 1000
                seg.end_ms = rec.audio_ms
                await self._emit(AudioDelta(rec.id, pcm, rate, text=seg.text if first else ""))
                first = False
                if not rec.metrics_sent:
                    await self._send_metrics(rec)

    async def _send_metrics(self, rec: _Response) -> None:
        if rec.metrics_sent:
            return
        rec.metrics_sent = True
        v2v = eot = None
        if rec.speech_end_t is not None:
            eot = (rec.turn_end_t - rec.speech_end_t) * 1000
            if rec.first_audio_t is not None:
                v2v = (rec.first_audio_t - rec.speech_end_t) * 1000
        extra: dict[str, float] = {"speculative_stt_hit": float(rec.speculative_hit)}
        extra.update(rec.extra)
        if rec.stt_wait_ms is not None:
            extra["stt_wait_ms"] = rec.stt_wait_ms
        await self._emit(
            TurnMetrics(
                turn_index=rec.turn_index,
                voice_to_voice_ms=v2v,
                end_of_turn_ms=eot,
                stt_ms=rec.stt_ms,
                llm_first_token_ms=rec.llm_first_token_ms,
                tts_first_byte_ms=rec.tts_first_byte_ms,
                extra=extra,
            )
        )

    # -- history and context -----------------------------------------------------------

    def _remember(self, message: Message) -> None:
        self._history.append(message)
        excess = len(self._history) - self.config.max_history
        if excess > 0:
            del self._history[:excess]
            rec = self._response
            if rec is not None and rec.history_index is not None:
                rec.history_index = (
                    rec.history_index - excess if rec.history_index >= excess else None
                )

    async def _messages(self) -> list[Message]:
        system = self._instructions
        if self._context:
            now = time.monotonic()
            parts = []
            for key, (data, t, announced) in self._context.items():
                parts.append(f"[{key}]\n{_render(data)}")
                if not announced:
                    self._context[key] = (data, t, True)
                    await self._emit(ContextInjected(key, "inject_context", (now - t) * 1000))
            system = f"{system}\n\nContext:\n" + "\n".join(parts) if system else "\n".join(parts)
        head = [Message(Role.SYSTEM, system)] if system else []
        return head + self._history


def _score(stream: VADStream, frames: list[bytes]) -> list[float]:
    # Runs in the model executor: one call per received batch, not per frame.
    return [stream.probability(f) for f in frames]


def _render(data: object) -> str:
    if isinstance(data, str):
        return data
    try:
        return json.dumps(data, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(data)


def _error_event(exc: BaseException) -> ErrorEvent:
    if isinstance(exc, AuthError):
        code = "auth_error"
    elif isinstance(exc, RateLimited):
        code = "rate_limited"
    elif isinstance(exc, ProviderError):
        code = "provider_error"
    else:
        code = getattr(exc, "code", "error")
    return ErrorEvent(code, str(exc), fatal=False)


def _clean(text: str) -> str:
    return " ".join(text.split())

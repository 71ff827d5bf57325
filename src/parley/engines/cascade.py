"""The cascade engine: VAD → turn detection → STT → LLM → TTS, overlapped.

Hearing is the shared speech front end (:mod:`parley.engines.speech`): per
received batch of input audio one executor call scores the VAD frames, the
:class:`~parley.turns.TurnDetector` finds the turns, the utterance is transcribed
speculatively at the first short silence, and with transcript-aware endpointing
(:mod:`parley.endpointing`, on by default) that transcript also sets how long the
silence must last. The engine's input is PCM16 at the VAD's rate, which may be
below the STT's (the factory gives a phone call an 8 kHz VAD: no per-frame
resampling; each utterance is upsampled once for the STT). The LLM is streamed,
its text cut into clauses, and each clause synthesised the moment it exists, so
the first audio leaves after the first clause, not the whole answer.

Barge-in: user speech while a reply is being made or played cancels the LLM and
TTS work at once (with ``CascadeConfig.barge_in``, only once the speech front end
has judged it a barge-in: a backchannel, a cough or line noise leaves the reply
alone and is not answered as a turn — but until the transports can pause a reply
and resume it, the reply plays on while the sound is judged, so a real barge-in
stops it ~0.8–1.1 s after its onset instead of ~0.2 s: off by default) and emits
:class:`~parley.events.Interrupted` with the text the caller actually heard (the
transport's playback reports mapped through the clause timings); the history
keeps only that text. :meth:`CascadeEngine.cancel_response` does the same on
request, without ``Interrupted``.

No silent failure: when the STT, the LLM (before or during its stream), the TTS or
a text hook fails in a turn, the engine emits one non-fatal
:class:`~parley.events.ErrorEvent` per failure (:func:`~parley.engines.reply.failure_event`)
and the caller hears ``CascadeConfig.apology_text`` in the same reply:
``ResponseStarted`` (unless the reply had started) → ``AudioDelta``… →
``ResponseDone(status="failed", text=<what the reply said, ending with the apology>)``.
The apology is spoken by the engine's TTS, or by ``apology_tts`` when the TTS is
what failed (with neither, the events come without audio). A reply the model
answers with no text at all is treated the same way (``ErrorEvent("empty_reply")``):
on a phone line silence is the worst answer. The call goes on.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from parley.audio.format import AudioFormat
from parley.endpointing import PhasePolicy
from parley.engines.cascade_config import DEFAULT_APOLOGY, CascadeConfig
from parley.engines.outbox import EventOutbox
from parley.engines.reply import ReplyRecord, Segment, Stage, failure_event
from parley.engines.seams import CallEngine, EngineStats, ToolRunner
from parley.engines.speech import (
    BargeInStop,
    SpeechFrontEnd,
    SpeechOutput,
    SpeechStart,
    Transcription,
    UserTurn,
)
from parley.engines.text_hooks import HeldSplitter, TextHook
from parley.errors import ParleyError
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
    UserSpeechStarted,
    UserSpeechStopped,
)
from parley.providers.seams import LLM, STT, TTS, VAD, Message, ToolSpec, Transcript
from parley.providers.sentences import SentenceSplitter
from parley.tasks import cancel_and_wait

__all__ = ["DEFAULT_APOLOGY", "CascadeConfig", "CascadeEngine"]

_ids = itertools.count(1)


@dataclass(slots=True)
class _Text:
    text: str
    greeting: bool = False  # the assistant's to say (greet), not the user's


class _Close:
    pass


class _Wake:
    """A speculative transcript is in: look at it even if no audio arrives."""


class _Recorded(ParleyError):
    """A failure already in ``ReplyRecord.failures``: stop the reply, report nothing more."""


_CLOSE = _Close()
_WAKE = _Wake()


class CascadeEngine:
    """One call through a cascade of shared providers (see the module docstring).

    ``apology_tts`` speaks the apology when ``tts`` is what failed (for a hosted
    TTS, the local Piper); without it such a failure is reported without audio.
    """

    def __init__(
        self,
        vad: VAD,
        stt: STT,
        llm: LLM,
        tts: TTS,
        config: CascadeConfig | None = None,
        *,
        tools: ToolRunner | None = None,
        apology_tts: TTS | None = None,
    ) -> None:
        self.config = cfg = config or CascadeConfig()
        self._vad, self._llm, self._tts = vad, llm, tts
        self._apology_tts = apology_tts
        self._tools = tools
        self._request_hook: TextHook | None = None
        self._response_hook: TextHook | None = None
        self._instructions = cfg.instructions
        self._context: dict[str, tuple[object, float, bool]] = {}  # key → data, t, announced
        self._history: list[Message] = []
        self._in_q: asyncio.Queue[tuple[bytes, float] | _Text | _Close | _Wake] = asyncio.Queue(
            cfg.input_queue_chunks
        )
        self._out_q: EventOutbox[Event] = EventOutbox(cfg.event_queue_size)
        self._speech = SpeechFrontEnd(
            vad,
            stt,
            cfg.turn,
            speculative_stt=cfg.speculative_stt,
            endpointing=cfg.endpointing,
            on_transcript=self._wake,
            barge_in=cfg.barge_in,
            agent_speaking=self._agent_speaking,
        )
        self._response: ReplyRecord | None = None
        self._responses: dict[str, ReplyRecord] = {}
        self._turns = 0
        self._tg: asyncio.TaskGroup | None = None
        self._closed = False
        self.dropped_audio_chunks = 0

    # -- the Engine seam and its capabilities ------------------------------------------

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

    def seed_history(self, messages: Sequence[Message]) -> None:
        """Start from a conversation under way (:class:`~parley.engines.seams.HistorySeedable`):
        the next LLM request carries ``messages`` after the system prompt, trimmed to
        the newest ``max_history``."""
        self._history = list(messages)
        self._trim()
        if self._response is not None:
            self._response.history_index = None  # it pointed into the old list

    async def cancel_response(self, response_id: str) -> None:
        """Stop reply ``response_id`` now (:class:`~parley.engines.seams.Cancellable`):
        its LLM and TTS work is cancelled, ``ResponseDone(status="cancelled")`` carries
        the text the caller heard so far, and the history keeps only that. Nothing
        happens for a reply that is unknown, not started or already done."""
        rec = self._responses.get(response_id)
        if rec is not None and rec.started and rec.generating:
            await self._stop(rec, interrupted=False)

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

    async def greet(self, text: str) -> None:
        if not self._closed and text.strip():
            await self._in_q.put(_Text(text, greeting=True))

    async def report_playback(self, response_id: str, played_ms: float) -> None:
        rec = self._responses.get(response_id)
        if rec is not None and (rec.played_ms is None or played_ms > rec.played_ms):
            rec.played_ms = played_ms

    async def inject_context(self, key: str, data: object) -> None:
        self._context[key] = (data, time.monotonic(), False)

    async def update(
        self,
        *,
        instructions: str | None = None,
        tools: ToolRunner | None = None,
        turn_taking: PhasePolicy | None = None,
    ) -> None:
        if instructions is not None:
            self._instructions = instructions
        if tools is not None:
            self._tools = tools
        if turn_taking is not None:
            self._speech.phase = turn_taking

    def set_text_hooks(
        self, *, request: TextHook | None = None, response: TextHook | None = None
    ) -> None:
        """Middleware (:mod:`parley.engines.text_hooks`): ``request`` transforms the
        user's text before the LLM (the transcript keeps the words heard; ``""`` skips
        the reply); ``response`` transforms each whole sentence of the reply before
        TTS, so speech, ``TextDelta``, transcript and history carry its output. A hook
        that raises a ``ParleyError`` fails the reply (the caller hears the apology)."""
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
        async for event in self._out_q:
            yield event

    async def run(self) -> None:
        try:
            await self._speech.start()  # may load the VAD model: off the loop
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                await self._input_loop()
                for rec in self._responses.values():
                    if rec.task is not None:
                        rec.task.cancel()  # the task group waits for them
        finally:
            self._closed = True
            self._tg = None
            await self._speech.aclose()
            self._out_q.end()

    # -- input -------------------------------------------------------------------------

    async def _emit(self, event: Event) -> None:
        await self._out_q.put(event)

    async def _input_loop(self) -> None:
        while True:
            item = await self._in_q.get()
            if isinstance(item, _Close):
                return
            if isinstance(item, _Text):
                await self._on_text(item)
                continue
            if isinstance(item, _Wake):
                await self._on_speech(self._speech.poll())
                continue
            # Take every chunk already waiting: one executor call scores them all.
            chunks = [item]
            follow: _Text | _Close | None = None
            while not self._in_q.empty():
                nxt = self._in_q.get_nowait()
                if isinstance(nxt, tuple):
                    chunks.append(nxt)
                elif isinstance(nxt, _Wake):
                    continue  # push looks at the speculation before every frame
                else:
                    follow = nxt
                    break
            await self._on_speech(await self._speech.push(chunks))
            if isinstance(follow, _Close):
                return
            if isinstance(follow, _Text):
                await self._on_text(follow)

    async def _on_speech(self, outputs: list[SpeechOutput]) -> None:
        for out in outputs:
            if isinstance(out, BargeInStop):
                await self._barge_in()
            elif isinstance(out, SpeechStart):
                await self._barge_in()  # with barge_in set, only when no reply was under way
                await self._emit(UserSpeechStarted(out.audio_ms))
            elif isinstance(out, UserTurn):
                await self._emit(UserSpeechStopped(out.audio_ms))
                rec = self._start_response(
                    out.speech_end_t, out.transcript, speculative=out.speculative_hit
                )
                rec.extra.update(out.figures)

    def _wake(self) -> None:
        # Called from a done callback: may not await. If the queue is full, audio is
        # waiting and push looks at the transcript anyway.
        if not self._in_q.full():
            self._in_q.put_nowait(_WAKE)

    async def _on_text(self, item: _Text) -> None:
        await self._barge_in()
        fut: asyncio.Future[Transcription] = asyncio.get_running_loop().create_future()
        fut.set_result(Transcription(Transcript(text=item.text), 0.0))
        self._start_response(
            None, fut, speculative=False, script=item.text if item.greeting else None
        )

    # -- barge-in and cancel -----------------------------------------------------------

    def _agent_speaking(self) -> bool:
        rec = self._response
        if rec is None or not rec.started or rec.stopping:
            return False
        return rec.playing(time.monotonic()) or (rec.task is not None and not rec.task.done())

    async def _barge_in(self) -> None:
        rec = self._response
        now = time.monotonic()
        if rec is None or (not rec.playing(now) and (rec.task is None or rec.task.done())):
            return
        if not rec.started:
            rec.superseded = True  # still transcribing: keep the user's words, skip the reply
            return
        await self._stop(rec, interrupted=True)

    async def _stop(self, rec: ReplyRecord, *, interrupted: bool) -> None:
        """Cut ``rec`` off: its work is cancelled, the history keeps what was heard."""
        if rec.stopping:
            return
        rec.stopping = True
        now = time.monotonic()
        was_generating = rec.generating
        await cancel_and_wait(rec.task)
        rec.generating = False
        played_ms = rec.estimated_played_ms(now)
        played = rec.played_text(played_ms)
        self._speech.agent_text = played  # what the caller heard is what they answer
        if interrupted:
            await self._emit(Interrupted(rec.id, played, played_ms))
        if was_generating:
            await self._emit(ResponseDone(rec.id, "cancelled", played))
            if played:
                self._remember(Message(Role.ASSISTANT, played))
        elif rec.history_index is not None:
            final = played[rec.final_offset :].strip() if len(played) > rec.final_offset else ""
            self._history[rec.history_index] = Message(Role.ASSISTANT, final)
        await self._send_metrics(rec)
        if self._response is rec:
            self._response = None

    # -- the reply ---------------------------------------------------------------------

    def _start_response(
        self,
        speech_end_t: float | None,
        stt: asyncio.Future[Transcription],
        *,
        speculative: bool,
        script: str | None = None,
    ) -> ReplyRecord:
        """``script``: the text to say (a greeting) instead of answering ``stt``."""
        assert self._tg is not None
        self._turns += 1
        rec = ReplyRecord(
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
        work = self._respond(rec, stt) if script is None else self._recite(rec, script)
        rec.task = self._tg.create_task(work)
        return rec

    async def _recite(self, rec: ReplyRecord, text: str) -> None:
        """A greeting: ``text`` is the reply (no STT, no LLM; response middleware runs)."""
        rec.started = True
        await self._emit(ResponseStarted(rec.id))
        await self._generate(rec, script=text)
        await self._complete(rec)

    async def _respond(self, rec: ReplyRecord, stt: asyncio.Future[Transcription]) -> None:
        heard = await stt
        rec.stt_ms = heard.stt_ms if heard.stt_ms else None
        rec.stt_wait_ms = (time.monotonic() - rec.turn_end_t) * 1000
        if isinstance(heard.result, ParleyError):
            await self._emit(TranscriptFinal(Role.USER, ""))
            self._record_failure(rec, heard.result, "stt")
            await self._fail(rec)
            return
        text = heard.result.text.strip()
        await self._emit(TranscriptFinal(Role.USER, text))
        if text and self._request_hook is not None:
            try:
                text = (await self._request_hook(text)).strip()
            except ParleyError as refused:  # AuthError, a strict middleware …
                self._record_failure(rec, refused, "middleware")
                await self._fail(rec)
                return
        if not text:
            rec.generating = False
            return
        self._remember(Message(Role.USER, text))
        if rec.superseded:
            rec.generating = False
            return
        rec.started = True
        await self._emit(ResponseStarted(rec.id))
        await self._generate(rec)
        await self._complete(rec)

    async def _complete(self, rec: ReplyRecord) -> None:
        if not rec.failures and not rec.spoken.strip():
            rec.failures.append(
                ErrorEvent("empty_reply", "LLM failed: the reply had no text", fatal=False)
            )
        if rec.failures:
            await self._fail(rec)
            return
        rec.generating = False
        if rec.spoken[rec.final_offset :].strip():
            rec.history_index = len(self._history)
            self._remember(Message(Role.ASSISTANT, rec.spoken[rec.final_offset :].strip()))
        self._speech.agent_text = rec.spoken
        await self._emit(ResponseDone(rec.id, "completed", rec.spoken))
        await self._send_metrics(rec)

    @staticmethod
    def _record_failure(rec: ReplyRecord, exc: BaseException, stage: Stage) -> None:
        rec.failures.append(failure_event(exc, stage))
        rec.tts_failed = rec.tts_failed or stage == "tts"

    async def _fail(self, rec: ReplyRecord) -> None:
        """Report ``rec``'s failures and end it with the spoken apology."""
        for event in rec.failures:
            await self._emit(event)
        rec.extra["reply_failed"] = 1.0
        if rec.superseded:  # the caller is already speaking again: no apology over them
            rec.generating = False
            return
        if not rec.started:
            rec.started = True
            await self._emit(ResponseStarted(rec.id))
        rec.spoken = rec.spoken[: rec.voiced_chars].strip()  # text that was never voiced goes
        rec.final_offset = min(rec.final_offset, len(rec.spoken))
        apology = self.config.apology_text.strip()
        if apology:
            await self._emit(TextDelta(rec.id, f" {apology}" if rec.spoken else apology))
            rec.spoken = f"{rec.spoken} {apology}" if rec.spoken else apology
            voices = [self._tts] if not rec.tts_failed else []
            voices += [self._apology_tts] if self._apology_tts is not None else []
            for tts in voices:
                try:
                    await self._synthesise(rec, tts, Segment(apology, 0.0, 0.0, len(rec.spoken)))
                    break
                except ParleyError as exc:
                    await self._emit(failure_event(exc, "tts"))
        rec.generating = False
        final = rec.spoken[rec.final_offset :].strip()
        if final:
            rec.history_index = len(self._history)
            self._remember(Message(Role.ASSISTANT, final))
        await self._emit(ResponseDone(rec.id, "failed", rec.spoken))
        await self._send_metrics(rec)

    async def _generate(self, rec: ReplyRecord, script: str | None = None) -> None:
        clauses: asyncio.Queue[Segment | None] = asyncio.Queue(self.config.clause_queue_size)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._speak(rec, clauses))
                if script is None:
                    await self._think(rec, clauses)
                else:
                    await self._script(rec, clauses, script)
        except* ParleyError:
            pass  # recorded in rec.failures where it was raised

    def _splitter(self) -> SentenceSplitter | HeldSplitter:
        first = self.config.first_clause_chars
        # With response middleware, pieces never end inside a number (text_hooks).
        if self._response_hook is None:
            return SentenceSplitter(first_clause_chars=first)
        return HeldSplitter(first_clause_chars=first)

    async def _script(
        self, rec: ReplyRecord, clauses: asyncio.Queue[Segment | None], text: str
    ) -> None:
        splitter = self._splitter()
        if self._response_hook is None:  # else _say shows the transformed text
            await self._emit(TextDelta(rec.id, text))
        for clause in [*splitter.push(text), *splitter.flush()]:
            await self._say(rec, clauses, clause)
        await clauses.put(None)

    async def _think(self, rec: ReplyRecord, clauses: asyncio.Queue[Segment | None]) -> None:
        splitter = self._splitter()
        tools = self._tools
        for round_index in range(self.config.max_tool_rounds + 1):
            messages = await self._messages()
            specs = tuple(tools.specs) if tools is not None else ()
            if round_index == self.config.max_tool_rounds:
                specs = ()  # last round: no more tools, the model must answer
            try:
                text, calls = await self._stream_llm(rec, clauses, splitter, messages, specs)
            except _Recorded:
                raise
            except ParleyError as exc:
                # The clauses already queued are still spoken; the rest is the apology.
                self._record_failure(rec, exc, "llm")
                await clauses.put(None)
                return
            if not calls or tools is None:
                break
            for clause in splitter.flush():
                await self._say(rec, clauses, clause)
            # What the model said before the call is heard before the tool runs (a slow
            # tool must not hold it back; a reply that ends at the call has it all).
            await clauses.join()
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

    async def _stream_llm(
        self,
        rec: ReplyRecord,
        clauses: asyncio.Queue[Segment | None],
        splitter: SentenceSplitter | HeldSplitter,
        messages: list[Message],
        specs: tuple[ToolSpec, ...],
    ) -> tuple[str, list[ToolCall]]:
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
            if self._response_hook is None:  # else TextDelta carries the transformed text
                await self._emit(TextDelta(rec.id, chunk))
            for clause in splitter.push(chunk):
                await self._say(rec, clauses, clause)
        return text, calls

    async def _say(
        self, rec: ReplyRecord, clauses: asyncio.Queue[Segment | None], clause: str
    ) -> None:
        text = _clean(clause)
        transform = self._response_hook
        if text and transform is not None:
            # A ParleyError here fails this reply: unfiltered text is never spoken.
            try:
                text = _clean(await transform(text))
            except ParleyError as exc:
                self._record_failure(rec, exc, "middleware")
                raise _Recorded from exc
            if text:
                await self._emit(TextDelta(rec.id, f" {text}" if rec.spoken else text))
        if text:
            rec.spoken = f"{rec.spoken} {text}" if rec.spoken else text
            await clauses.put(Segment(text, 0.0, 0.0, len(rec.spoken)))

    async def _speak(self, rec: ReplyRecord, clauses: asyncio.Queue[Segment | None]) -> None:
        while (seg := await clauses.get()) is not None:
            try:
                await self._synthesise(rec, self._tts, seg)
            except ParleyError as exc:
                self._record_failure(rec, exc, "tts")
                raise
            finally:
                clauses.task_done()

    async def _synthesise(self, rec: ReplyRecord, tts: TTS, seg: Segment) -> None:
        rate = tts.sample_rate
        seg.start_ms = seg.end_ms = rec.audio_ms
        rec.segments.append(seg)
        t0 = time.monotonic()
        first = True
        async for pcm in tts.synthesize(seg.text):
            if not pcm:
                continue
            now = time.monotonic()
            if rec.first_audio_t is None:
                rec.first_audio_t = now
                rec.tts_first_byte_ms = (now - t0) * 1000
            rec.audio_ms += len(pcm) / 2 / rate * 1000
            seg.end_ms = rec.audio_ms
            rec.voiced_chars = seg.end_char
            await self._emit(AudioDelta(rec.id, pcm, rate, text=seg.text if first else ""))
            first = False
            if not rec.metrics_sent:
                await self._send_metrics(rec)

    async def _send_metrics(self, rec: ReplyRecord) -> None:
        if not rec.metrics_sent:
            rec.metrics_sent = True
            await self._emit(rec.metrics())

    # -- history and context -----------------------------------------------------------

    def _remember(self, message: Message) -> None:
        self._history.append(message)
        excess = self._trim()
        rec = self._response
        if excess and rec is not None and rec.history_index is not None:
            rec.history_index = rec.history_index - excess if rec.history_index >= excess else None

    def _trim(self) -> int:
        """Keep the newest ``max_history`` messages; returns how many were dropped."""
        excess = max(0, len(self._history) - self.config.max_history)
        # A tool result whose call was dropped is refused by the APIs: drop it too.
        while excess < len(self._history) and self._history[excess].role is Role.TOOL:
            excess += 1
        if excess:
            del self._history[:excess]
        return excess

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


def _render(data: object) -> str:
    if isinstance(data, str):
        return data
    try:
        return json.dumps(data, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(data)


def _clean(text: str) -> str:
    return " ".join(text.split())


if TYPE_CHECKING:  # mypy proves the cascade has every capability a call needs

    def _is_call_engine(engine: CascadeEngine) -> CallEngine:
        return engine

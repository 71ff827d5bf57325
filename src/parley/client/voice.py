"""``VoiceClient``: talk to a Realtime endpoint from a local program (the seeds' VoiceChatEngine).

    async with VoiceClient(VoiceEngineConfig(mode="big")) as client:
        client.on_text_response = lambda text: print(text, end="")
        client.start_listening()          # microphone → VAD → the server
        await asyncio.sleep(60)

(``mode="big"`` with no ``url`` runs the local lane, :mod:`parley.client.lane`: Parley's
Realtime server in this process on the configured engine. Without a microphone and a
speaker given, the devices come from ``PARLEY_MICROPHONE`` / ``PARLEY_SPEAKER``, else the
sound card: :mod:`parley.client.devices`.)

The protocol session is :class:`~parley.engines.realtime.RealtimeEngine` — the same
code the server uses to reach OpenAI: connect with retries and backoff, the GA
``session.update``, reconnect and re-seed if the socket drops, usage, barge-in
truncation, tool calls. This module adds what a local program needs around it:
devices (:mod:`parley.client.devices`), resampling between the device rate and the
24 kHz wire, a client-side VAD (:mod:`parley.client.vad`), a playback jitter
buffer, callbacks, latency metrics and a cost estimate.

The settings (modes, turn detection, latency profiles) are in
:mod:`parley.client.voice_config`; the metrics types in :mod:`parley.client.voice_metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from parley.audio import FrameChunker, StreamResampler
from parley.engines.realtime import RealtimeEngine
from parley.errors import ConfigError, ParleyError
from parley.events import (
    AudioDelta,
    ErrorEvent,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    Role,
    TextDelta,
    ToolCall,
    ToolResult,
    TranscriptDelta,
    TranscriptFinal,
    Usage,
    UserSpeechStarted,
    UserSpeechStopped,
)
from parley.metrics.pricing import cost_usd, prices_for
from parley.providers.seams import ToolSpec
from parley.tasks import cancel_and_wait

from .devices import AudioSink, AudioSource, microphone_from_env, speaker_from_env
from .vad import ClientVAD, VoiceAudio, VoiceStarted, VoiceStopped
from .voice_config import (
    BIG_URL,
    FAST_URL,
    LATENCY_PROFILES,
    WIRE_SAMPLE_RATE,
    LatencyMode,
    LatencyProfile,
    Mode,
    TurnMode,
    VoiceEngineConfig,
)
from .voice_metrics import (
    ResponseInfo,
    TurnLatency,
    VoiceMetrics,
    conversation_cost,
    realtime_plan,
)

if TYPE_CHECKING:
    from parley.metrics.cost import CostBreakdown, CostPlan

    from .lane import LocalLane

__all__ = [
    "BIG_URL",
    "FAST_URL",
    "LATENCY_PROFILES",
    "WIRE_SAMPLE_RATE",
    "LatencyMode",
    "LatencyProfile",
    "Mode",
    "ResponseInfo",
    "TurnLatency",
    "TurnMode",
    "VoiceClient",
    "VoiceEngineConfig",
    "VoiceMetrics",
]

log = logging.getLogger(__name__)

Callback = Callable[..., Any]


class _ToolBridge:
    """``ToolRunner`` over the client's ``on_function_call`` callback."""

    def __init__(self, client: VoiceClient) -> None:
        self._client = client

    @property
    def specs(self) -> Sequence[ToolSpec]:
        return self._client.config.tools

    async def run(self, call: ToolCall) -> ToolResult:
        handler = self._client.on_function_call
        if handler is None:
            return ToolResult(call.call_id, call.name, "no function handler is set", True)
        try:
            args = json.loads(call.arguments) if call.arguments.strip() else {}
        except json.JSONDecodeError as exc:
            return ToolResult(call.call_id, call.name, f"arguments are not JSON: {exc}", True)
        try:
            result = handler(call.name, args)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:  # user code: the model gets the failure as data
            log.exception("on_function_call failed for %s", call.name)
            return ToolResult(call.call_id, call.name, f"{type(exc).__name__}: {exc}", True)
        output = result if isinstance(result, str) else json.dumps(result, default=str)
        return ToolResult(call.call_id, call.name, output)


@dataclass(slots=True)
class _Reply:
    """One reply as the client plays it."""

    id: str
    resampler: StreamResampler | None
    held: list[bytes] = field(default_factory=list)  # jitter buffer
    held_ms: float = 0.0
    started_playing: bool = False
    mark_ms: float = 0.0  # speaker's played+queued position when this reply began
    written_ms: float = 0.0
    received_ms: float = 0.0
    first_audio_t: float | None = None
    latency: TurnLatency | None = None


class VoiceClient:
    """A voice conversation with a Realtime endpoint (see the module docstring).

    Callbacks (plain functions or coroutine functions; set them as attributes):

    - ``on_audio_response(pcm: bytes)``: reply audio, PCM16 mono at ``config.sample_rate``;
    - ``on_text_response(text: str)``: reply text as it streams (the spoken reply's
      transcript, or text replies);
    - ``on_transcript(role: str, text: str)``: final transcripts, ``"user"`` and
      ``"assistant"``;
    - ``on_response_done(info: ResponseInfo)``;
    - ``on_error(error: ErrorEvent)``: bad frames, upstream errors, reconnects;
    - ``on_function_call(name: str, arguments: dict) -> str | JSON-able``: runs a tool
      from ``config.tools``; the result goes back as ``function_call_output`` and a
      new ``response.create``.

    A callback that raises is logged and reported to ``on_error``; the client goes on.
    """

    def __init__(
        self,
        config: VoiceEngineConfig | None = None,
        *,
        microphone: AudioSource | None = None,
        speaker: AudioSink | None = None,
    ) -> None:
        self.config = cfg = config or VoiceEngineConfig()
        self.on_audio_response: Callback | None = None
        self.on_text_response: Callback | None = None
        self.on_transcript: Callback | None = None
        self.on_response_done: Callback | None = None
        self.on_error: Callback | None = None
        self.on_function_call: Callback | None = None
        self._microphone = microphone
        self._speaker = speaker
        self._engine: RealtimeEngine | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._mic_task: asyncio.Task[None] | None = None
        profile = cfg.latency
        self._vad = ClientVAD(cfg.vad_settings, WIRE_SAMPLE_RATE)
        self._client_turns = cfg.resolved_turn_detection == "client"
        self._up: StreamResampler | None = None
        self._up_rate = 0
        self._append = FrameChunker(WIRE_SAMPLE_RATE * profile.chunk_ms // 1000 * 2)
        self._wire_ms = 0.0  # audio pushed through the VAD
        self._reply: _Reply | None = None
        self._replies: dict[str, _Reply] = {}
        # Candidate "end of the user's turn" moments (monotonic s), per kind.
        self._marks: dict[str, float] = {}
        # Counters.
        self._turns: list[TurnLatency] = []
        self._responses = 0
        self._interruptions = 0
        self._errors = 0
        self._function_calls = 0
        self._sent_ms = 0.0
        self._received_ms = 0.0
        self._last_usage = Usage()
        self._reply_chars = 0
        self._speaker_error: ConfigError | None = None
        self._speaker_reported = False
        self._lane_served, self._lane_switches = "realtime", 0  # of lanes already stopped
        self._lane_plan: CostPlan | None = None
        self._mic_chunks = 0
        self._mic_first_t = self._mic_last_t = 0.0
        self._connected_t: float | None = None
        self._uptime_s = 0.0  # of the sessions already ended
        self.lane: LocalLane | None = None  # big mode without a url: the local end

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._run_task is not None and not self._run_task.done()

    @property
    def listening(self) -> bool:
        return self._mic_task is not None and not self._mic_task.done()

    @property
    def speaker(self) -> AudioSink:
        if self._speaker is None:
            self._speaker = speaker_from_env(
                self.config.sample_rate, block_ms=self.config.latency.chunk_ms
            )
        return self._speaker

    async def connect(self, retry_count: int = 3) -> None:
        """Open the session: up to ``1 + retry_count`` attempts with exponential backoff
        and jitter. Raises ``ProviderError`` (unreachable), ``AuthError`` (key refused)."""
        if self._engine is not None:
            raise ConfigError("already connected; disconnect() first", field="connect")
        if retry_count < 0:
            raise ConfigError("must be ≥ 0", field="retry_count")
        url = self.config.resolved_url
        if url is None:
            from .lane import LocalLane  # the server side: loaded only for the local lane

            self.lane = LocalLane(language=self.config.language)
            url = await self.lane.start()
        cfg = self.config.realtime_config(connect_attempts=retry_count + 1, url=url)
        tools = _ToolBridge(self) if self.config.tools else None
        engine = RealtimeEngine(cfg, tools=tools)
        run = asyncio.create_task(engine.run(), name="voice-client-engine")
        opened = asyncio.create_task(engine.opened.wait())
        try:
            await asyncio.wait({run, opened}, return_when=asyncio.FIRST_COMPLETED)
            if run.done():
                run.result()  # raises the engine's ProviderError / AuthError
                raise ConfigError("the session ended while connecting", field="connect")
        except BaseException:  # failed or cancelled while connecting: leave nothing running
            run.cancel()
            await self._stop_lane()
            raise
        finally:
            opened.cancel()
        self._engine, self._run_task = engine, run
        self._connected_t = time.monotonic()
        self._tasks = [
            asyncio.create_task(self._dispatch(engine), name="voice-client-events"),
            asyncio.create_task(self._report_playback(engine), name="voice-client-playback"),
        ]

    async def disconnect(self) -> None:
        """Stop listening, close the session, stop playback and close the devices."""
        await self.stop_listening()
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.close()
        run, self._run_task = self._run_task, None
        if run is not None:
            with contextlib.suppress(ParleyError):
                await run
        for task in self._tasks:
            if task.get_name() == "voice-client-events":
                await task  # the dispatcher ends by itself once the engine has
            else:
                await cancel_and_wait(task)
        self._tasks = []
        if self._speaker is not None:
            await self._speaker.close()
        await self._stop_lane()
        if self._connected_t is not None:
            self._uptime_s += time.monotonic() - self._connected_t
            self._connected_t = None

    async def _stop_lane(self) -> None:
        lane, self.lane = self.lane, None
        if lane is not None:
            self._lane_switches += lane.switches
            self._lane_served, self._lane_plan = lane.serving, lane.cost_plan()
            await lane.stop()

    def _serving(self) -> str:
        return self.lane.serving if self.lane is not None else self._lane_served

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    # -- input -------------------------------------------------------------------------

    def start_listening(self) -> None:
        """Stream the microphone (default: the sound card via ``sounddevice``) through
        the client VAD to the server, until :meth:`stop_listening` or the source ends."""
        self._require()
        if self.listening:
            return
        if self._microphone is None:
            self._microphone = microphone_from_env(
                self.config.sample_rate, block_ms=self.config.latency.chunk_ms
            )
        self._mic_task = asyncio.create_task(
            self._listen(self._microphone), name="voice-client-microphone"
        )

    async def stop_listening(self) -> None:
        """Stop the microphone; a turn in progress ends here (committed in client mode)."""
        task, self._mic_task = self._mic_task, None
        if task is None:
            return
        await cancel_and_wait(task)
        if self._microphone is not None:
            await self._microphone.close()
        if self._engine is not None:
            await self._end_of_input()

    async def wait_until_listened(self) -> None:
        """For finite sources (a WAV file): wait until the whole source has been sent."""
        task = self._mic_task
        if task is not None:
            await asyncio.shield(task)

    async def send_audio(self, pcm: bytes) -> None:
        """Audio as if from the microphone: PCM16 mono at ``config.sample_rate``."""
        self._require()
        await self._feed(pcm, self.config.sample_rate)

    async def send_text(self, text: str) -> None:
        """A typed user message (``conversation.item.create`` + ``response.create``);
        a reply still playing is interrupted first."""
        engine = self._require()
        self._marks["text"] = time.monotonic()
        self._stop_playback()
        await self._report_now(engine)
        await engine.send_text(text)

    async def interrupt(self) -> None:
        """Stop the reply: local playback stops, the server gets ``response.cancel``
        and ``conversation.item.truncate`` at the milliseconds actually heard."""
        engine = self._require()
        await self._report_now(engine)
        self._stop_playback()
        await engine.interrupt()

    # -- results -----------------------------------------------------------------------

    def get_usage(self) -> Usage:
        """Tokens of every ``response.done`` so far, summed."""
        return self._engine.usage if self._engine is not None else self._last_usage

    def estimate_cost(self, model: str | None = None) -> float | None:
        """USD for the usage so far at ``model``'s prices (default ``price_model`` or the
        session model); ``None`` for a model the price table does not know."""
        name = model or self.config.price_model or self.config.resolved_model
        prices = prices_for(name)
        return None if prices is None else cost_usd(self.get_usage(), prices)

    def cost_breakdown(self) -> CostBreakdown:
        """What the conversation has cost so far, per part (``.total`` is the sum): the
        Realtime tokens at the model's prices; on the local lane, its engines' prices
        (local models cost nothing). A part with no known price is in ``unpriced``."""
        metrics = self.get_metrics()
        plan = self.lane.cost_plan() if self.lane is not None else self._lane_plan
        if plan is None:
            plan = realtime_plan(self.config.price_model or self.config.resolved_model)
        serving = self._serving()
        return conversation_cost(plan, serving, self.get_usage(), metrics, self._reply_chars)

    def get_metrics(self) -> VoiceMetrics:
        now = time.monotonic()
        uptime = self._uptime_s + (now - self._connected_t if self._connected_t else 0.0)
        return VoiceMetrics(
            turns=tuple(self._turns),
            responses=self._responses,
            interruptions=self._interruptions,
            errors=self._errors,
            function_calls=self._function_calls,
            audio_sent_ms=self._sent_ms,
            audio_received_ms=self._received_ms,
            reconnects=self._engine.reconnects if self._engine is not None else 0,
            chunks_captured=self._mic_chunks,
            capture_s=self._mic_last_t - self._mic_first_t,
            uptime_s=uptime,
            serving=self._serving(),
            switches=self._lane_switches + (self.lane.switches if self.lane is not None else 0),
        )

    # -- internals: input --------------------------------------------------------------

    def _require(self) -> RealtimeEngine:
        if self._engine is None:
            raise ConfigError("not connected; await connect() first", field="connect")
        return self._engine

    async def _listen(self, source: AudioSource) -> None:
        try:
            async for chunk in source.chunks():
                self._mic_last_t = time.monotonic()
                if not self._mic_chunks:
                    self._mic_first_t = self._mic_last_t
                self._mic_chunks += 1
                await self._feed(chunk, source.sample_rate)
        except ConfigError as exc:  # no microphone: say so; the session goes on
            await self._device_failed(exc)
            return
        await self._end_of_input()

    async def _feed(self, pcm: bytes, rate: int) -> None:
        if rate != WIRE_SAMPLE_RATE:
            if self._up is None or self._up_rate != rate:
                self._up = StreamResampler(
                    rate, WIRE_SAMPLE_RATE, quality=self.config.latency.resampler
                )
                self._up_rate = rate
            pcm = self._up.process(pcm)
        if not pcm:
            return
        self._wire_ms += len(pcm) / 2 / WIRE_SAMPLE_RATE * 1000
        events = self._vad.push(pcm)
        if not self._client_turns:
            await self._upload(pcm)
        for ev in events:
            await self._on_vad(ev)

    async def _end_of_input(self) -> None:
        for ev in self._vad.end():
            await self._on_vad(ev)
        if not self._client_turns:
            await self._upload_rest()

    async def _on_vad(self, ev: VoiceStarted | VoiceAudio | VoiceStopped) -> None:
        if isinstance(ev, VoiceAudio):
            if self._client_turns:
                await self._upload(ev.pcm)
        elif isinstance(ev, VoiceStarted):
            if self._client_turns and self._playing():
                await self.interrupt()  # local barge-in: the server's VAD is off
        else:
            # Backdate to the end of the last loud frame: that is when the user stopped.
            ended = time.monotonic() - (self._wire_ms - ev.audio_ms) / 1000
            self._mark_local_end(ended)
            if self._client_turns and self._engine is not None:
                await self._upload_rest()
                await self._engine.commit()

    async def _upload(self, pcm: bytes) -> None:
        engine = self._engine
        if engine is None:
            return
        for chunk in self._append.push(pcm):
            self._sent_ms += len(chunk) / 2 / WIRE_SAMPLE_RATE * 1000
            await engine.send_audio(chunk)

    async def _upload_rest(self) -> None:
        rest = self._append.flush()
        if rest and self._engine is not None:
            self._sent_ms += len(rest) / 2 / WIRE_SAMPLE_RATE * 1000
            await self._engine.send_audio(rest)

    # -- internals: output -------------------------------------------------------------

    def _playing(self) -> bool:
        rec = self._reply
        return rec is not None and (bool(rec.held) or self.speaker.queued_ms > 0)

    def _played_ms(self, rec: _Reply) -> float:
        if not rec.started_playing:
            return 0.0
        return max(0.0, min(rec.written_ms, self.speaker.played_ms - rec.mark_ms))

    def _stop_playback(self) -> None:
        rec = self._reply
        if rec is not None:
            rec.held.clear()
            rec.held_ms = 0.0
        if self._speaker is not None:
            self._speaker.clear()

    async def _report_now(self, engine: RealtimeEngine) -> None:
        rec = self._reply
        if rec is not None and rec.started_playing:
            await engine.report_playback(rec.id, self._played_ms(rec))

    async def _report_playback(self, engine: RealtimeEngine) -> None:
        # The engine truncates a barge-in at the last reported position: keep it fresh.
        while True:
            await asyncio.sleep(0.05)
            await self._report_now(engine)

    def _write(self, rec: _Reply, pcm: bytes) -> None:
        if self._speaker_error is not None:
            return  # no speaker: the callbacks still get the audio
        speaker = self.speaker
        if not rec.started_playing:
            rec.started_playing = True
            rec.mark_ms = speaker.played_ms + speaker.queued_ms
        rec.written_ms += len(pcm) / 2 / self.config.sample_rate * 1000
        try:
            speaker.write(pcm)
        except ConfigError as exc:  # reported by the dispatcher, once
            self._speaker_error = exc

    async def _device_failed(self, exc: ConfigError) -> None:
        self._errors += 1
        await self._call(self.on_error, ErrorEvent("audio_device", str(exc)))

    def _release(self, rec: _Reply) -> None:
        for pcm in rec.held:
            self._write(rec, pcm)
        rec.held.clear()
        rec.held_ms = 0.0

    async def _on_audio(self, ev: AudioDelta) -> None:
        rec = self._replies.get(ev.response_id)
        if rec is None:
            rec = self._start_reply(ev.response_id)
        now = time.monotonic()
        ms = len(ev.audio) / 2 / ev.sample_rate * 1000
        rec.received_ms += ms
        self._received_ms += ms
        if rec.first_audio_t is None:
            rec.first_audio_t = now
            rec.latency = self._turn_latency(rec.id, now)
            if rec.latency is not None:
                self._turns.append(rec.latency)
        pcm = rec.resampler.process(ev.audio) if rec.resampler is not None else ev.audio
        await self._call(self.on_audio_response, pcm)
        jitter = self.config.latency.jitter_ms
        if rec.started_playing or jitter <= 0:
            self._write(rec, pcm)
            return
        rec.held.append(pcm)
        rec.held_ms += ms
        if rec.held_ms >= jitter:
            self._release(rec)

    def _mark_local_end(self, ended: float) -> None:
        rec = self._reply
        if (
            rec is not None
            and rec.first_audio_t is not None
            and rec.first_audio_t >= ended
            and (rec.latency is None or rec.latency.reference == "server_vad")
        ):
            # The reply's audio came before this VAD (with its longer end delay) had
            # decided: the reply answers this speech; measure from its real end.
            fixed = TurnLatency(rec.id, (rec.first_audio_t - ended) * 1000, "local_vad")
            if rec.latency is not None and rec.latency in self._turns:
                self._turns.remove(rec.latency)
            rec.latency = fixed
            self._turns.append(fixed)
            return
        self._marks["local_vad"] = ended

    def _turn_latency(self, response_id: str, now: float) -> TurnLatency | None:
        marks = self._marks
        self._marks = {}
        kinds: tuple[Literal["local_vad", "text", "server_vad"], ...] = (
            "local_vad",
            "text",
            "server_vad",
        )
        for kind in kinds:
            t = marks.get(kind)
            if t is not None and t <= now:
                return TurnLatency(response_id, (now - t) * 1000, kind)
        return None

    def _start_reply(self, response_id: str) -> _Reply:
        rate = self.config.sample_rate
        resampler = (
            StreamResampler(WIRE_SAMPLE_RATE, rate, quality=self.config.latency.resampler)
            if rate != WIRE_SAMPLE_RATE
            else None
        )
        rec = _Reply(response_id, resampler)
        self._replies = {response_id: rec}  # older replies are over
        self._reply = rec
        return rec

    async def _on_done(self, ev: ResponseDone) -> None:
        self._responses += 1
        self._reply_chars += len(ev.text)
        rec = self._replies.get(ev.response_id)
        latency = None
        audio_ms = 0.0
        if rec is not None:
            if rec.resampler is not None and ev.status == "completed":
                tail = rec.resampler.flush()
                if tail:
                    rec.held.append(tail)
            self._release(rec)  # a reply shorter than the jitter buffer plays now
            latency = rec.latency.latency_ms if rec.latency is not None else None
            audio_ms = rec.received_ms
        info = ResponseInfo(ev.response_id, ev.status, ev.text, ev.usage, latency, audio_ms)
        await self._call(self.on_response_done, info)

    async def _dispatch(self, engine: RealtimeEngine) -> None:
        async for ev in engine.events():
            if isinstance(ev, AudioDelta):
                await self._on_audio(ev)
                if self._speaker_error is not None and not self._speaker_reported:
                    self._speaker_reported = True
                    await self._device_failed(self._speaker_error)
            elif isinstance(ev, TranscriptDelta | TextDelta):
                if isinstance(ev, TextDelta) or ev.role == Role.ASSISTANT:
                    await self._call(self.on_text_response, ev.text)
            elif isinstance(ev, TranscriptFinal):
                await self._call(self.on_transcript, str(ev.role), ev.text)
            elif isinstance(ev, ResponseStarted):
                self._start_reply(ev.response_id)
            elif isinstance(ev, ResponseDone):
                await self._on_done(ev)
            elif isinstance(ev, Interrupted):
                self._interruptions += 1
                self._stop_playback()
            elif isinstance(ev, UserSpeechStopped):
                self._marks.setdefault("server_vad", time.monotonic())
            elif isinstance(ev, UserSpeechStarted):
                pass  # the engine has already handled barge-in (Interrupted)
            elif isinstance(ev, ToolCall):
                self._function_calls += 1
            elif isinstance(ev, ErrorEvent):
                self._errors += 1
                await self._call(self.on_error, ev)
        self._last_usage = engine.usage
        run = self._run_task
        if run is not None:
            await asyncio.wait({run})
            exc = None if run.cancelled() else run.exception()
            if isinstance(exc, ParleyError):
                self._errors += 1
                code = exc.code
                await self._call(self.on_error, ErrorEvent(str(code), str(exc), fatal=True))

    async def _call(self, callback: Callback | None, *args: object) -> None:
        if callback is None:
            return
        try:
            result = callback(*args)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # user code must not stop the client's event loop
            log.exception("voice client callback %r failed", callback)
            if callback is not self.on_error:
                self._errors += 1
                await self._call(self.on_error, ErrorEvent("callback_failed", repr(exc)))

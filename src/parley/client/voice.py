"""``VoiceClient``: talk to a Realtime endpoint from a local program (the seeds' VoiceChatEngine).

    async with VoiceClient(VoiceEngineConfig(mode="big")) as client:
        client.on_text_response = lambda text: print(text, end="")
        client.start_listening()          # microphone → VAD → the server
        await asyncio.sleep(60)

The protocol session is :class:`~parley.engines.realtime.RealtimeEngine` — the same
code the server uses to reach OpenAI: connect with retries and backoff, the GA
``session.update``, reconnect and re-seed if the socket drops, usage, barge-in
truncation, tool calls. This module adds what a local program needs around it:
devices (:mod:`parley.client.devices`), resampling between the device rate and the
24 kHz wire, a client-side VAD (:mod:`parley.client.vad`), a playback jitter
buffer, callbacks, latency metrics and a cost estimate.

Modes (both speak the same GA protocol; the mode only picks defaults):

- ``"fast"``: OpenAI's Realtime API directly (``wss://api.openai.com/v1/realtime``,
  ``gpt-realtime``, voice ``marin``, key from ``$OPENAI_API_KEY``), with
  ``semantic_vad`` turn detection (the model judges when the user has finished) and
  ``gpt-4o-mini-transcribe`` for the user's words.
- ``"big"``: a Parley server's ``/v1/realtime`` (``ws://127.0.0.1:8000/v1/realtime``,
  model ``parley-realtime``, the server's default voice, key from
  ``$PARLEY_REALTIME_SERVER_API_KEY`` if set — never the OpenAI key), backed by the
  cascade; ``server_vad`` with no parameters, so the server keeps Parley's tuned
  turn-taking (Silero VAD, ``parley.turns``).

Turn detection (``turn_detection``): ``"server_vad"`` / ``"semantic_vad"`` stream all
microphone audio and let the server decide (it also cancels its reply on barge-in;
the client then stops playback and truncates what was not heard). ``"client"``
switches server VAD off: the client VAD decides, only speech (with its prefix) is
sent, the end of speech commits the turn and asks for a reply, and speech during a
reply interrupts it locally.

``latency_mode`` (see :data:`LATENCY_PROFILES`) trades delay for robustness:

=========  ========  ==============  =========  =====================================
mode       chunk     jitter buffer   resampler  what it costs
=========  ========  ==============  =========  =====================================
low        20 ms     none            LQ         more frames, audible gaps if the net
                                                stutters
balanced   40 ms     80 ms           MQ         ~100 ms more to the first sound
quality    100 ms    200 ms          HQ         ~300 ms more; smoothest playback
=========  ========  ==============  =========  =====================================

*chunk* is the microphone block and the size of each ``input_audio_buffer.append``;
the *jitter buffer* holds the start of each reply until that much audio is queued
(or the reply ends) before the speaker starts; the *resampler* quality applies
between the device rate and 24 kHz (soxr; 24↔48 kHz adds 10 / 21 / 22 ms, from
``parley.audio.resample``'s table; none at all when the device runs at 24 kHz).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

from parley.audio import FrameChunker, Quality, StreamResampler
from parley.engines.realtime import RealtimeConfig, RealtimeEngine
from parley.errors import ConfigError, ParleyError
from parley.events import (
    AudioDelta,
    ErrorEvent,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    ResponseStatus,
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
from parley.protocols.openai_realtime import InputTranscription, TurnDetection
from parley.providers.seams import ToolSpec
from parley.tasks import cancel_and_wait

from .devices import AudioSink, AudioSource, SoundDeviceMicrophone, SoundDeviceSpeaker
from .vad import ClientVAD, VADSettings, VoiceAudio, VoiceStarted, VoiceStopped

__all__ = [
    "BIG_URL",
    "FAST_URL",
    "LATENCY_PROFILES",
    "WIRE_SAMPLE_RATE",
    "LatencyProfile",
    "ResponseInfo",
    "TurnLatency",
    "VoiceClient",
    "VoiceEngineConfig",
    "VoiceMetrics",
]

log = logging.getLogger(__name__)

WIRE_SAMPLE_RATE = 24000  # audio/pcm on the Realtime wire is 24 kHz only
FAST_URL = "wss://api.openai.com/v1/realtime"
BIG_URL = "ws://127.0.0.1:8000/v1/realtime"

Mode = Literal["fast", "big"]
LatencyMode = Literal["low", "balanced", "quality"]
TurnMode = Literal["server_vad", "semantic_vad", "client"]


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    chunk_ms: int  # microphone block and append size
    jitter_ms: float  # reply audio held before playback starts
    resampler: Quality


LATENCY_PROFILES: dict[str, LatencyProfile] = {
    "low": LatencyProfile(20, 0.0, "LQ"),
    "balanced": LatencyProfile(40, 80.0, "MQ"),
    "quality": LatencyProfile(100, 200.0, "HQ"),
}

_MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "fast": {
        "url": FAST_URL,
        "model": "gpt-realtime",
        "voice": "marin",
        "turn_detection": "semantic_vad",
        "transcription_model": "gpt-4o-mini-transcribe",
        "key_env": "OPENAI_API_KEY",
    },
    "big": {
        "url": BIG_URL,
        "model": "parley-realtime",
        "voice": None,
        "turn_detection": "server_vad",
        "transcription_model": None,  # the server transcribes with its own STT
        "key_env": "PARLEY_REALTIME_SERVER_API_KEY",
    },
}


@dataclass(frozen=True, slots=True)
class VoiceEngineConfig:
    """Settings of a :class:`VoiceClient`; ``None`` fields take the mode's default
    (see the module docstring)."""

    mode: Mode = "fast"
    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    model: str | None = None
    voice: str | None = None
    instructions: str = ""
    sample_rate: int = WIRE_SAMPLE_RATE  # the devices' rate; the wire is always 24 kHz
    turn_detection: TurnMode | None = None
    vad_threshold: float = 0.02  # client VAD: RMS as a fraction of full scale
    vad_start_ms: float = 100.0  # loud this long → speech started
    vad_end_ms: float = 700.0  # quiet this long → speech ended
    vad_prefix_ms: float = 300.0  # audio kept from before the onset
    latency_mode: LatencyMode = "balanced"
    tools: Sequence[ToolSpec] = ()  # offered to the model; ``on_function_call`` runs them
    transcription_model: str | None = None
    price_model: str | None = None  # price-table row for estimate_cost(); default: model
    connect_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.mode not in _MODE_DEFAULTS:
            raise ConfigError(f"unknown mode {self.mode!r}; use 'fast' or 'big'", field="mode")
        if self.latency_mode not in LATENCY_PROFILES:
            raise ConfigError(f"unknown latency mode {self.latency_mode!r}", field="latency_mode")
        if self.turn_detection not in (None, "server_vad", "semantic_vad", "client"):
            raise ConfigError(
                f"unknown turn detection {self.turn_detection!r}", field="turn_detection"
            )
        if self.sample_rate <= 0 or self.sample_rate % 100:
            raise ConfigError("must be a positive multiple of 100 Hz", field="sample_rate")
        self.vad_settings  # noqa: B018 - validates the VAD fields now, not at connect

    def _default(self, name: str) -> Any:
        return _MODE_DEFAULTS[self.mode][name]

    @property
    def resolved_url(self) -> str:
        return self.url or str(self._default("url"))

    @property
    def resolved_model(self) -> str:
        return self.model or str(self._default("model"))

    @property
    def resolved_voice(self) -> str | None:
        return self.voice if self.voice is not None else self._default("voice")

    @property
    def resolved_turn_detection(self) -> TurnMode:
        td: TurnMode = self.turn_detection or self._default("turn_detection")
        return td

    @property
    def resolved_api_key(self) -> str:
        """The key (``""`` = none). ``big`` mode never falls back to the OpenAI key."""
        if self.api_key is not None:
            return self.api_key
        return os.environ.get(str(self._default("key_env")), "")

    @property
    def latency(self) -> LatencyProfile:
        return LATENCY_PROFILES[self.latency_mode]

    @property
    def vad_settings(self) -> VADSettings:
        return VADSettings(
            threshold=self.vad_threshold,
            start_ms=self.vad_start_ms,
            end_ms=self.vad_end_ms,
            prefix_ms=self.vad_prefix_ms,
        )

    def realtime_config(self, connect_attempts: int) -> RealtimeConfig:
        """The engine settings this client config stands for."""
        td_mode = self.resolved_turn_detection
        td: TurnDetection | None
        if td_mode == "client":
            td = None
        elif td_mode == "semantic_vad":
            td = TurnDetection(
                type="semantic_vad", eagerness="auto", create_response=True, interrupt_response=True
            )
        elif self.mode == "fast":
            # OpenAI's documented server_vad defaults.
            td = TurnDetection(
                type="server_vad",
                threshold=0.5,
                prefix_padding_ms=300,
                silence_duration_ms=500,
                create_response=True,
                interrupt_response=True,
            )
        else:
            td = TurnDetection(type="server_vad", create_response=True, interrupt_response=True)
        model = self.transcription_model or self._default("transcription_model")
        transcription = InputTranscription(model=model) if model else InputTranscription()
        return RealtimeConfig(
            url=self.resolved_url,
            model=self.resolved_model,
            api_key=self.resolved_api_key,
            instructions=self.instructions,
            voice=self.resolved_voice,
            audio="pcm16",
            turn_detection=td,
            transcription=transcription,
            connect_attempts=connect_attempts,
            connect_timeout_s=self.connect_timeout_s,
            price_model=self.price_model,
        )


@dataclass(frozen=True, slots=True)
class ResponseInfo:
    """What ``on_response_done`` receives."""

    response_id: str
    status: ResponseStatus
    text: str
    usage: Usage | None
    latency_ms: float | None  # end of the user's turn → first reply audio
    audio_ms: float  # reply audio received


@dataclass(frozen=True, slots=True)
class TurnLatency:
    response_id: str
    latency_ms: float  # end of user speech (or text sent) → first reply audio
    reference: Literal["local_vad", "server_vad", "text"]


@dataclass(frozen=True, slots=True)
class VoiceMetrics:
    turns: tuple[TurnLatency, ...]
    responses: int
    interruptions: int
    errors: int
    function_calls: int
    audio_sent_ms: float
    audio_received_ms: float
    reconnects: int

    @property
    def latency_ms(self) -> tuple[float, ...]:
        return tuple(t.latency_ms for t in self.turns)

    @property
    def median_latency_ms(self) -> float | None:
        return statistics.median(self.latency_ms) if self.turns else None


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
            self._speaker = SoundDeviceSpeaker(
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
        cfg = self.config.realtime_config(connect_attempts=retry_count + 1)
        tools = _ToolBridge(self) if self.config.tools else None
        engine = RealtimeEngine(cfg, tools=tools)
        run = asyncio.create_task(engine.run(), name="voice-client-engine")
        opened = asyncio.create_task(engine.opened.wait())
        try:
            await asyncio.wait({run, opened}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled while connecting: leave nothing running
            run.cancel()
            raise
        finally:
            opened.cancel()
        if run.done():
            run.result()  # raises the engine's ProviderError / AuthError
            raise ConfigError("the session ended while connecting", field="connect")
        self._engine, self._run_task = engine, run
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
            self._microphone = SoundDeviceMicrophone(
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

    def get_metrics(self) -> VoiceMetrics:
        return VoiceMetrics(
            turns=tuple(self._turns),
            responses=self._responses,
            interruptions=self._interruptions,
            errors=self._errors,
            function_calls=self._function_calls,
            audio_sent_ms=self._sent_ms,
            audio_received_ms=self._received_ms,
            reconnects=self._engine.reconnects if self._engine is not None else 0,
        )

    # -- internals: input --------------------------------------------------------------

    def _require(self) -> RealtimeEngine:
        if self._engine is None:
            raise ConfigError("not connected; await connect() first", field="connect")
        return self._engine

    async def _listen(self, source: AudioSource) -> None:
        async for chunk in source.chunks():
            await self._feed(chunk, source.sample_rate)
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
        speaker = self.speaker
        if not rec.started_playing:
            rec.started_playing = True
            rec.mark_ms = speaker.played_ms + speaker.queued_ms
        rec.written_ms += len(pcm) / 2 / self.config.sample_rate * 1000
        speaker.write(pcm)

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
                code = getattr(exc, "code", None) or type(exc).__name__
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

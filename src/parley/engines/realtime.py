"""``RealtimeEngine``: one call on OpenAI's Realtime API (or any GA-compatible server).

A thin asyncio shell over :mod:`parley.protocols.openai_realtime`: caller audio
goes up as ``input_audio_buffer.append``, server events come back and are mapped
onto :mod:`parley.events`. The URL, model and headers are configuration, so Azure
OpenAI and Parley's own local Realtime server work the same way.

Audio: PCM16 24 kHz, or G.711 (``audio/pcmu`` / ``audio/pcma``) both ways. In G.711
mode the engine takes and emits the phone line's bytes untouched; its
``input_format`` / ``output_format`` say so, so the conversation layer can skip
decoding and resampling (pass-through).

Reliability: the connection is opened with retries (exponential backoff with
jitter). If it drops, the engine reconnects at once and re-seeds the new session
with its configuration and the conversation so far (finished turns as text items,
in order); caller audio that arrives meanwhile is buffered (bounded, drops
counted) and replayed. The same happens shortly before the session time limit
(60 minutes on OpenAI), at a moment when no reply is playing, and on
``session_expired``. A reply cut by a drop is asked for again on the new session.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from parley.audio.format import AudioFormat
from parley.engines.playback import estimated_played_ms, heard_text, still_playing
from parley.engines.seams import EngineStats, ToolRunner
from parley.engines.text_hooks import HeldSplitter, TextHook
from parley.errors import AuthError, ConfigError, ParleyError, ProviderError, RemoteProtocolError
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
    ToolResult,
    TranscriptDelta,
    TranscriptFinal,
    Usage,
    UserSpeechStarted,
    UserSpeechStopped,
)
from parley.metrics.pricing import cost_usd, prices_for
from parley.protocols.openai_realtime import (
    PCM16_24K,
    PCMA,
    PCMU,
    AudioConfig,
    AudioInput,
    AudioOutput,
    ClientEvent,
    ConversationItem,
    ConversationItemCreate,
    ConversationItemTruncate,
    ErrorCode,
    InputAudioBufferAppend,
    InputAudioBufferCommit,
    InputAudioBufferCommitted,
    InputAudioBufferSpeechStarted,
    InputAudioBufferSpeechStopped,
    InputAudioTranscriptionCompleted,
    InputAudioTranscriptionDelta,
    InputAudioTranscriptionFailed,
    InputTranscription,
    RealtimeAudioFormat,
    RealtimeErrorEvent,
    ResponseCancel,
    ResponseCreate,
    ResponseCreated,
    ResponseFunctionCallArgumentsDone,
    ResponseOutputAudioDelta,
    ResponseOutputAudioTranscriptDelta,
    ResponseOutputAudioTranscriptDone,
    ResponseOutputItemAdded,
    ResponseOutputTextDelta,
    Session,
    SessionUpdate,
    Tool,
    TurnDetection,
    encode_event_text,
    parse_server_event,
)
from parley.protocols.openai_realtime import ResponseDone as WireResponseDone

__all__ = ["RealtimeConfig", "RealtimeEngine"]

_END = object()
_ids = itertools.count(1)

AudioEncoding = Literal["pcm16", "ulaw", "alaw"]

_WIRE_FORMATS: dict[str, RealtimeAudioFormat] = {"pcm16": PCM16_24K, "ulaw": PCMU, "alaw": PCMA}


@dataclass(frozen=True, slots=True)
class RealtimeConfig:
    """Settings of one realtime engine (one call).

    ``turn_detection=None`` means manual turns: call :meth:`RealtimeEngine.commit`
    when the caller has finished (Parley's own VAD decides).
    """

    url: str = "wss://api.openai.com/v1/realtime"
    model: str = "gpt-realtime"
    api_key: str | None = field(default=None, repr=False)  # else $OPENAI_API_KEY
    headers: Mapping[str, str] = field(default_factory=dict)  # e.g. Azure's "api-key"
    instructions: str = ""
    voice: str | None = "marin"
    audio: AudioEncoding = "pcm16"  # "ulaw" for a phone line: pass-through both ways
    turn_detection: TurnDetection | None = field(
        default_factory=lambda: TurnDetection(type="server_vad")
    )
    transcription: InputTranscription | None = field(
        default_factory=lambda: InputTranscription(model="gpt-4o-mini-transcribe")
    )
    # Connecting: attempts per (re)connect, exponential backoff with jitter between them.
    connect_attempts: int = 5
    connect_timeout_s: float = 10.0
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 2.0
    # Roll over to a fresh session this long before the limit (waiting for a quiet
    # moment in the last half of the margin at most).
    session_limit_s: float = 3600.0
    rollover_margin_s: float = 120.0
    # Caller audio kept while reconnecting; older chunks beyond this are dropped.
    reconnect_buffer_ms: float = 5000.0
    event_queue_size: int = 512
    price_model: str | None = None  # the price table row; defaults to ``model``

    def __post_init__(self) -> None:
        if self.audio not in _WIRE_FORMATS:
            raise ConfigError(f"unknown audio encoding {self.audio!r}", field="audio")
        if self.connect_attempts < 1:
            raise ConfigError("must be at least 1", field="connect_attempts")
        if self.rollover_margin_s >= self.session_limit_s:
            raise ConfigError("must be below session_limit_s", field="rollover_margin_s")


@dataclass(slots=True)
class _Reply:
    """One response as the engine tracks it."""

    id: str
    item_id: str = ""  # the assistant message item carrying the audio
    transcript: str = ""
    audio_ms: float = 0.0
    first_audio_t: float | None = None
    played_ms: float | None = None
    generating: bool = True
    interrupted: bool = False
    played_text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    tool_names: dict[str, str] = field(default_factory=dict)  # call_id → name
    # With response middleware: the raw text so far, cut into sentences for the hook.
    raw: str = ""
    splitter: HeldSplitter | None = None

    def estimated_played_ms(self, now: float) -> float:
        return estimated_played_ms(self.audio_ms, self.played_ms, self.first_audio_t, now)

    def playing(self, now: float) -> bool:
        return still_playing(
            self.generating, self.audio_ms, self.played_ms, self.first_audio_t, now
        )

    def heard_text(self, played_ms: float) -> str:
        # The transcript runs ahead of the audio: one segment over the audio sent.
        return heard_text(
            [(self.transcript, 0.0, self.audio_ms)] if self.audio_ms else [], played_ms
        )


@dataclass(slots=True)
class _Item:
    """One finished (or placeholder) turn of the conversation, for re-seeding."""

    key: str  # server item id, or a local id
    role: Literal["user", "assistant", "system", "function_call", "function_call_output"]
    text: str = ""
    call_id: str = ""
    name: str = ""

    def wire(self) -> ConversationItem | None:
        if self.role == "function_call":
            return ConversationItem.function_call(self.call_id, self.name, self.text)
        if self.role == "function_call_output":
            return ConversationItem.function_call_output(self.call_id, self.text)
        if not self.text:
            return None
        if self.role == "user":
            return ConversationItem.user_text(self.text)
        if self.role == "assistant":
            return ConversationItem.assistant_text(self.text)
        return ConversationItem.system_text(self.text)


class _Reconnect(Exception):
    """Internal: the session must be replaced (drop, expiry, rollover)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RealtimeEngine:
    """One call through a Realtime API session (see the module docstring)."""

    def __init__(
        self, config: RealtimeConfig | None = None, *, tools: ToolRunner | None = None
    ) -> None:
        self.config = config or RealtimeConfig()
        cfg = self.config
        key = cfg.api_key if cfg.api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._api_key = key
        self._tools = tools
        self._request_hook: TextHook | None = None
        self._response_hook: TextHook | None = None
        self._instructions = cfg.instructions
        self._context: dict[str, tuple[object, float]] = {}
        self._wire_format = _WIRE_FORMATS[cfg.audio]
        fmt = AudioFormat(cfg.audio, self._wire_format.sample_rate)
        self._format = fmt
        # Bytes per millisecond of caller audio, for the reconnect buffer bound.
        self._bytes_per_ms = fmt.sample_rate * fmt.sample_width / 1000
        self._out_q: asyncio.Queue[object] = asyncio.Queue(cfg.event_queue_size)
        self._conn: ClientConnection | None = None
        self._ready = False  # connected and seeded: audio goes straight up
        # Set once the first session is open and seeded (clients wait on it to know
        # the upstream accepted them); it stays set across reconnections.
        self.opened = asyncio.Event()
        self._buffer: deque[bytes] = deque()
        self._buffered_bytes = 0
        self._history: list[_Item] = []
        self._reply: _Reply | None = None
        self._replies: dict[str, _Reply] = {}
        self._redo_reply = False  # a reply was cut by a drop: ask again after re-seeding
        self._session_started = 0.0
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        # Public counters.
        self.usage = Usage()
        self.responses = 0
        self.dropped_audio_chunks = 0
        self.reconnects = 0
        self.reconnect_ms: list[float] = []  # per reconnect: drop noticed → session re-seeded
        self.connect_failures = 0
        self.session_id = ""

    # -- the Engine seam ---------------------------------------------------------------

    def stats(self) -> EngineStats:
        return EngineStats(
            "realtime", {"events_out": self._out_q.qsize()}, self.dropped_audio_chunks
        )

    @property
    def input_format(self) -> AudioFormat:
        """What ``send_audio`` takes: PCM16 24 kHz, or G.711 8 kHz bytes as the phone sends."""
        return self._format

    @property
    def output_format(self) -> AudioFormat:
        """What ``AudioDelta.audio`` carries (``AudioDelta.encoding`` says it per chunk)."""
        return self._format

    @property
    def cost_usd(self) -> float | None:
        """What this conversation has cost so far, or ``None`` for a model with no prices."""
        prices = prices_for(self.config.price_model or self.config.model)
        return None if prices is None else cost_usd(self.usage, prices)

    @property
    def history(self) -> list[tuple[str, str]]:
        """The finished turns as ``(role, text)``, in order (what a new session is seeded with)."""
        return [(i.role, i.text) for i in self._history if i.text or i.role.startswith("func")]

    def take_buffered_audio(self) -> list[bytes]:
        """Hand over caller audio not yet sent upstream (for a failover to another engine)."""
        chunks = list(self._buffer)
        self._buffer.clear()
        self._buffered_bytes = 0
        return chunks

    async def send_audio(self, pcm: bytes) -> None:
        if self._closed or not pcm:
            return
        conn = self._conn
        if self._ready and conn is not None:
            try:
                await conn.send(encode_event_text(InputAudioBufferAppend.from_audio(pcm)))
                return
            except ConnectionClosed:
                self._ready = False  # the reader notices too and reconnects
        self._buffer_audio(pcm)

    def set_text_hooks(
        self, *, request: TextHook | None = None, response: TextHook | None = None
    ) -> None:
        """Middleware (:mod:`parley.engines.text_hooks`). ``request`` transforms typed
        text (``send_text``) before it goes up; spoken turns reach the model as audio,
        so it cannot apply to them. ``response`` transforms the text outputs and audio
        transcripts sentence by sentence (``TextDelta``, ``TranscriptDelta``,
        ``TranscriptFinal``, ``ResponseDone``, the history); it **cannot change the
        audio**, which the upstream model has already synthesised."""
        self._request_hook = request
        self._response_hook = response

    async def send_text(self, text: str) -> None:
        if self._closed or not text.strip():
            return
        said = text
        if self._request_hook is not None:
            try:
                text = (await self._request_hook(text)).strip()
            except ParleyError as exc:  # refused (AuthError …): no reply, the call goes on
                await self._emit(TranscriptFinal(Role.USER, said))
                await self._emit(ErrorEvent(getattr(exc, "code", "error"), str(exc)))
                return
            if not text:
                await self._emit(TranscriptFinal(Role.USER, said))
                return
        item = _Item(f"local_{next(_ids)}", "user", text)
        self._history.append(item)
        if not self._ready:
            self._redo_reply = True  # the item goes up with the re-seed; then a reply
        await self._send(ConversationItemCreate(item=ConversationItem.user_text(text)))
        await self._emit(TranscriptFinal(Role.USER, said))
        await self._barge_in(0.0, speech=False)
        await self._send(ResponseCreate())

    async def interrupt(self) -> None:
        """Stop the current reply as a barge-in would (the caller pressed "stop"):
        truncate to what was played, cancel upstream, emit ``Interrupted``."""
        await self._barge_in(0.0, speech=False)

    async def report_playback(self, response_id: str, played_ms: float) -> None:
        rec = self._replies.get(response_id)
        if rec is not None and (rec.played_ms is None or played_ms > rec.played_ms):
            rec.played_ms = played_ms

    async def inject_context(self, key: str, data: object) -> None:
        # A system message item: the model sees it from its next response on; the
        # current response goes on (no response.cancel, no response.create).
        now = time.monotonic()
        self._context[key] = (data, now)
        text = f"[context: {key}]\n{_render(data)}"
        self._history = [i for i in self._history if i.key != f"context:{key}"]
        self._history.append(_Item(f"context:{key}", "system", text))
        await self._send(ConversationItemCreate(item=ConversationItem.system_text(text)))
        await self._emit(ContextInjected(key, "inject_context", (time.monotonic() - now) * 1000))

    async def update(
        self, *, instructions: str | None = None, tools: ToolRunner | None = None
    ) -> None:
        # session.update applies to the next response; the current one is not touched.
        if instructions is not None:
            self._instructions = instructions
        if tools is not None:
            self._tools = tools
        session = Session(
            type="realtime",
            instructions=self._instructions if instructions is not None else msgspec.UNSET,
            tools=self._tool_specs() if tools is not None else msgspec.UNSET,
        )
        await self._send(SessionUpdate(session=session))

    async def commit(self) -> None:
        """Manual turns (``turn_detection=None``): the caller has finished speaking."""
        await self._send(InputAudioBufferCommit())
        await self._send(ResponseCreate())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        conn = self._conn
        if conn is not None:
            await conn.close()

    async def events(self) -> AsyncIterator[Event]:
        while True:
            item = await self._out_q.get()
            if item is _END:
                return
            yield item  # type: ignore[misc]

    async def run(self) -> None:
        try:
            await self._open_retrying(first=True)
            while not self._closed:
                try:
                    await self._read_session()
                except _Reconnect as why:
                    if self._closed:
                        break
                    await self._replace_session(why.reason)
        finally:
            self._closed = True
            self._ready = False
            for task in list(self._tasks):
                task.cancel()
            conn, self._conn = self._conn, None
            if conn is not None:
                await conn.close()
            while self._out_q.full():  # the consumer is gone or slow: the end wins
                self._out_q.get_nowait()
            self._out_q.put_nowait(_END)

    # -- connection --------------------------------------------------------------------

    def _url(self) -> str:
        url = self.config.url
        if "model=" in url or not self.config.model:
            return url
        sep = "&" if "?" in url else "?"
        return f"{url}{sep}model={self.config.model}"

    async def _connect(self) -> ClientConnection:
        cfg = self.config
        headers = dict(cfg.headers)
        if self._api_key:
            headers.setdefault("Authorization", f"Bearer {self._api_key}")
        delay = cfg.backoff_initial_s
        last: BaseException | None = None
        for attempt in range(cfg.connect_attempts):
            if attempt:
                # Equal jitter: half the delay fixed, half random, so calls that lost
                # the same upstream do not all come back in the same millisecond.
                await asyncio.sleep(delay / 2 + random.uniform(0, delay / 2))
                delay = min(cfg.backoff_max_s, delay * 2)
            try:
                return await connect(
                    self._url(),
                    additional_headers=headers,
                    open_timeout=cfg.connect_timeout_s,
                    compression=None,
                    max_size=None,
                    ping_interval=20,
                    proxy=None,
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    raise AuthError(f"realtime upstream refused the key (HTTP {status})") from None
                last = exc
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                last = exc
            self.connect_failures += 1
        raise ProviderError(
            f"realtime upstream unreachable after {cfg.connect_attempts} attempts: {last}",
            provider="openai-realtime",
            retryable=True,
        )

    async def _open(self, *, first: bool) -> None:
        conn = await self._connect()
        self._conn = conn
        self._session_started = time.monotonic()
        await self._send_now(SessionUpdate(session=self._session()))
        # A reconnection re-seeds the whole conversation; the first connection carries
        # what was added before it existed (context injected at conversation start).
        for item in self._history:
            wire = item.wire()
            if wire is not None:
                await self._send_now(ConversationItemCreate(item=wire))
        if self._redo_reply:
            self._redo_reply = False
            await self._send_now(ResponseCreate())
        # Replay what the caller said meanwhile; no await between the last replayed
        # chunk and ``_ready``, so nothing new can slip in out of order.
        while self._buffer:
            chunk = self._buffer.popleft()
            self._buffered_bytes -= len(chunk)
            await self._send_now(InputAudioBufferAppend.from_audio(chunk))
        self._ready = True
        self.opened.set()

    async def _open_retrying(self, *, first: bool) -> None:
        # ``_connect`` retries failed handshakes; this retries a socket that dies while
        # being seeded (bounded the same way).
        for attempt in range(self.config.connect_attempts):
            try:
                await self._open(first=first and attempt == 0)
                return
            except _Reconnect:
                self.connect_failures += 1
                self._conn = None
        raise ProviderError(
            "realtime upstream keeps closing the connection while it is being set up",
            provider="openai-realtime",
            retryable=True,
        )

    async def _replace_session(self, reason: str) -> None:
        t0 = time.monotonic()
        self._ready = False
        old, self._conn = self._conn, None
        if old is not None:
            with contextlib.suppress(ConnectionClosed):
                await old.close()
        rec = self._reply
        if rec is not None and rec.generating:
            # The reply was cut off upstream: what was heard stays heard; the rest is
            # asked for again on the new session.
            rec.generating = False
            self._redo_reply = True
            self._history = [i for i in self._history if i.key != rec.item_id or not rec.item_id]
            await self._emit(ResponseDone(rec.id, "incomplete", rec.transcript.strip()))
            self._reply = None
        if reason != "rollover":
            await self._emit(ErrorEvent("upstream_disconnected", reason, fatal=False))
        await self._open_retrying(first=False)
        self.reconnects += 1
        self.reconnect_ms.append((time.monotonic() - t0) * 1000)

    def _session(self) -> Session:
        cfg = self.config
        audio_in = AudioInput(
            format=self._wire_format,
            turn_detection=cfg.turn_detection,
            transcription=cfg.transcription,
        )
        audio_out = AudioOutput(
            format=self._wire_format,
            voice=cfg.voice if cfg.voice is not None else msgspec.UNSET,
        )
        return Session(
            type="realtime",
            model=cfg.model or msgspec.UNSET,
            output_modalities=["audio"],
            instructions=self._instructions,
            audio=AudioConfig(input=audio_in, output=audio_out),
            tools=self._tool_specs(),
        )

    def _tool_specs(self) -> list[Tool]:
        if self._tools is None:
            return []
        return [
            Tool(
                type="function",
                name=s.name,
                description=s.description,
                parameters=dict(s.parameters),
            )
            for s in self._tools.specs
        ]

    def _buffer_audio(self, chunk: bytes) -> None:
        self._buffer.append(chunk)
        self._buffered_bytes += len(chunk)
        limit = self.config.reconnect_buffer_ms * self._bytes_per_ms
        while self._buffered_bytes > limit and len(self._buffer) > 1:
            old = self._buffer.popleft()
            self._buffered_bytes -= len(old)
            self.dropped_audio_chunks += 1

    async def _send_now(self, event: ClientEvent) -> None:
        conn = self._conn
        if conn is None:
            raise _Reconnect("not connected")
        try:
            await conn.send(encode_event_text(event))
        except ConnectionClosed:
            raise _Reconnect("connection lost while seeding") from None

    async def _send(self, event: ClientEvent) -> None:
        """Send if connected; otherwise the state is in ``_history``/config and goes up
        with the re-seed."""
        conn = self._conn
        if conn is None or not self._ready:
            return
        with contextlib.suppress(ConnectionClosed):
            await conn.send(encode_event_text(event))

    # -- receiving ---------------------------------------------------------------------

    async def _read_session(self) -> None:
        conn = self._conn
        assert conn is not None
        cfg = self.config
        soft = self._session_started + cfg.session_limit_s - cfg.rollover_margin_s
        hard = self._session_started + cfg.session_limit_s - cfg.rollover_margin_s / 2
        while True:
            now = time.monotonic()
            if now >= hard or (now >= soft and not self._busy(now)):
                raise _Reconnect("rollover")
            wait = (soft if now < soft else min(hard, now + 0.05)) - now
            try:
                frame = await asyncio.wait_for(conn.recv(), timeout=max(wait, 0.001))
            except TimeoutError:
                continue  # cancelling recv() loses no data (websockets guarantees it)
            except ConnectionClosed as exc:
                if self._closed:
                    return
                raise _Reconnect(f"upstream connection lost ({exc})") from None
            try:
                event = parse_server_event(frame)
            except RemoteProtocolError as exc:
                await self._emit(ErrorEvent(exc.code, f"bad frame from upstream: {exc.message}"))
                continue
            await self._on_event(event)

    def _busy(self, now: float) -> bool:
        rec = self._reply
        return rec is not None and rec.playing(now)

    async def _emit(self, event: Event) -> None:
        await self._out_q.put(event)

    async def _on_event(self, ev: object) -> None:
        if isinstance(ev, ResponseOutputAudioDelta):
            rec = self._replies.get(ev.response_id)
            if rec is None or rec.interrupted:
                return  # audio of a reply the caller already talked over
            audio = ev.audio_bytes()
            if rec.first_audio_t is None:
                rec.first_audio_t = time.monotonic()
            rec.audio_ms += len(audio) / self._bytes_per_ms
            rec.item_id = rec.item_id or ev.item_id
            fmt = self._format
            await self._emit(AudioDelta(ev.response_id, audio, fmt.sample_rate, fmt.encoding))  # type: ignore[arg-type]
        elif isinstance(ev, ResponseOutputAudioTranscriptDelta):
            rec = self._replies.get(ev.response_id)
            if rec is not None and not rec.interrupted:
                delta = await self._shown(rec, ev.delta)
                if delta:
                    await self._emit(TranscriptDelta(Role.ASSISTANT, delta, ev.item_id))
        elif isinstance(ev, ResponseOutputTextDelta):
            rec = self._replies.get(ev.response_id)
            if rec is not None and not rec.interrupted:
                delta = await self._shown(rec, ev.delta)
                if delta:
                    await self._emit(TextDelta(ev.response_id, delta))
        elif isinstance(ev, ResponseOutputAudioTranscriptDone):
            rec = self._replies.get(ev.response_id)
            if rec is not None and not rec.interrupted:
                if self._response_hook is None:
                    rec.transcript = ev.transcript
                else:
                    rest = ev.transcript[len(rec.raw) :]
                    if not ev.transcript.startswith(rec.raw):  # deltas lost: start over
                        rec.raw, rec.transcript, rec.splitter, rest = "", "", None, ev.transcript
                    delta = await self._shown(rec, rest, final=True)
                    if delta:
                        await self._emit(TranscriptDelta(Role.ASSISTANT, delta, ev.item_id))
                await self._emit(TranscriptFinal(Role.ASSISTANT, rec.transcript, ev.item_id))
        elif isinstance(ev, InputAudioBufferSpeechStarted):
            await self._barge_in(float(ev.audio_start_ms), speech=True)
        elif isinstance(ev, InputAudioBufferSpeechStopped):
            await self._emit(UserSpeechStopped(float(ev.audio_end_ms)))
        elif isinstance(ev, InputAudioBufferCommitted):
            # Hold the user turn's place in the history; the transcript comes later.
            self._history.append(_Item(ev.item_id, "user"))
            if self.config.transcription is None:
                await self._emit(TranscriptFinal(Role.USER, "", ev.item_id))
        elif isinstance(ev, InputAudioTranscriptionDelta):
            if ev.delta:
                await self._emit(TranscriptDelta(Role.USER, ev.delta, ev.item_id))
        elif isinstance(ev, InputAudioTranscriptionCompleted):
            self._fill(ev.item_id, "user", ev.transcript.strip())
            await self._emit(TranscriptFinal(Role.USER, ev.transcript.strip(), ev.item_id))
        elif isinstance(ev, InputAudioTranscriptionFailed):
            await self._emit(ErrorEvent(ev.error.code or "transcription_failed", ev.error.message))
            await self._emit(TranscriptFinal(Role.USER, "", ev.item_id))
        elif isinstance(ev, ResponseCreated):
            rid = ev.response.id if isinstance(ev.response.id, str) else f"resp_local_{next(_ids)}"
            rec = _Reply(rid)
            for old in [k for k, r in self._replies.items() if r is not self._reply]:
                del self._replies[old]
            self._replies[rid] = rec
            self._reply = rec
            await self._emit(ResponseStarted(rid))
        elif isinstance(ev, ResponseOutputItemAdded):
            rec = self._replies.get(ev.response_id)
            item = ev.item
            if rec is not None and isinstance(item.id, str):
                if item.type == "message":
                    rec.item_id = item.id
                    self._history.append(_Item(item.id, "assistant"))
                elif item.type == "function_call" and isinstance(item.call_id, str):
                    rec.tool_names[item.call_id] = item.name if isinstance(item.name, str) else ""
        elif isinstance(ev, ResponseFunctionCallArgumentsDone):
            rec = self._replies.get(ev.response_id)
            name = ev.name or (rec.tool_names.get(ev.call_id, "") if rec is not None else "")
            call = ToolCall(ev.call_id, name, ev.arguments)
            self._history.append(_Item(ev.item_id, "function_call", ev.arguments, ev.call_id, name))
            await self._emit(call)
            if rec is not None:
                rec.calls.append(call)
        elif isinstance(ev, WireResponseDone):
            await self._on_response_done(ev)
        elif isinstance(ev, RealtimeErrorEvent):
            code = ev.code or "error"
            if code == ErrorCode.RESPONSE_CANCEL_NOT_ACTIVE:
                return  # we cancelled a reply that had already finished: fine
            if code == ErrorCode.SESSION_EXPIRED:
                raise _Reconnect("session_expired")
            await self._emit(ErrorEvent(code, ev.error.message, fatal=False))

    async def _shown(self, rec: _Reply, delta: str, *, final: bool = False) -> str:
        """Text from upstream → what is shown: as is, or through the response hook
        in whole sentences (held until each sentence is complete). Returns the text
        to add to the reply's transcript (possibly empty)."""
        hook = self._response_hook
        if hook is None:
            rec.transcript += delta
            return delta
        if rec.splitter is None:
            rec.splitter = HeldSplitter()
        rec.raw += delta
        pieces = rec.splitter.push(delta)
        if final:
            pieces += rec.splitter.flush()
            rec.splitter = None
        added = ""
        for piece in pieces:
            # A ParleyError from the hook: the piece is not shown (fail closed).
            try:
                out = " ".join((await hook(piece)).split())
            except ParleyError as exc:
                await self._emit(ErrorEvent(getattr(exc, "code", "error"), str(exc)))
                continue
            if out:
                sep = " " if rec.transcript or added else ""
                added += sep + out
        rec.transcript += added
        return added

    def _fill(self, key: str, role: str, text: str) -> None:
        for item in reversed(self._history):
            if item.key == key and item.role == role:
                item.text = text
                return

    async def _on_response_done(self, ev: WireResponseDone) -> None:
        resp = ev.response
        rid = resp.id if isinstance(resp.id, str) else ""
        rec = self._replies.get(rid)
        usage = ev.parley_usage()
        if usage is not None:
            self.usage = self.usage + usage
        self.responses += 1
        status = resp.status if isinstance(resp.status, str) else "completed"
        if status == "in_progress":
            status = "incomplete"
        if rec is None:
            await self._emit(ResponseDone(rid, status, "", usage))
            return
        rec.generating = False
        if rec.interrupted:
            text = rec.played_text
        else:
            if rec.splitter is not None:  # text output: no "done" event released the tail
                delta = await self._shown(rec, "", final=True)
                if delta:
                    await self._emit(TextDelta(rid, delta))
            text = rec.transcript.strip()
            if not text and isinstance(resp.output, list):
                text = " ".join(i.text for i in resp.output if i.type == "message").strip()
                if text and self._response_hook is not None:
                    text = (await self._shown(rec, text, final=True)).strip()
        if rec.item_id:
            self._fill(
                rec.item_id, "assistant", text if status == "completed" or rec.interrupted else ""
            )
        await self._emit(ResponseDone(rid, status, text, usage))
        if rec.calls and status == "completed":
            self._spawn(self._run_tools(rec.calls))

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_tools(self, calls: list[ToolCall]) -> None:
        tools = self._tools
        for call in calls:
            if tools is None:
                result = ToolResult(call.call_id, call.name, "no tools are configured", True)
            else:
                result = await tools.run(call)
            await self._emit(result)
            self._history.append(
                _Item(f"out:{call.call_id}", "function_call_output", result.output, call.call_id)
            )
            await self._send(
                ConversationItemCreate(
                    item=ConversationItem.function_call_output(call.call_id, result.output)
                )
            )
        # A function output alone does not make the model answer (protocols.md §1.6.3).
        await self._send(ResponseCreate())

    # -- barge-in ----------------------------------------------------------------------

    async def _barge_in(self, audio_ms: float, *, speech: bool) -> None:
        rec = self._reply
        now = time.monotonic()
        if rec is not None and not rec.interrupted and rec.playing(now):
            rec.interrupted = True
            played_ms = rec.estimated_played_ms(now)
            rec.played_text = rec.heard_text(played_ms)
            await self._emit(Interrupted(rec.id, rec.played_text, played_ms))
            if rec.item_id and rec.audio_ms > 0:
                # The server keeps the whole reply unless told what was actually heard.
                end_ms = int(min(played_ms, rec.audio_ms))
                await self._send(
                    ConversationItemTruncate(
                        item_id=rec.item_id, content_index=0, audio_end_ms=end_ms
                    )
                )
            td = self.config.turn_detection
            if rec.generating and (not speech or td is None or td.interrupt_response is False):
                # Server VAD cancels on its own; otherwise we must. A reply that has
                # just finished answers response_cancel_not_active, which is ignored.
                await self._send(ResponseCancel())
            if not rec.generating:
                self._fill(rec.item_id, "assistant", rec.played_text)
        if speech:
            await self._emit(UserSpeechStarted(audio_ms))


def _render(data: object) -> str:
    if isinstance(data, str):
        return data
    try:
        return json.dumps(data, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(data)

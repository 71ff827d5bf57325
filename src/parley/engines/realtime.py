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
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from parley.audio.format import AudioFormat
from parley.endpointing import PhasePolicy
from parley.engines import playback
from parley.engines.outbox import EventOutbox
from parley.engines.realtime_text import ShownText
from parley.engines.seams import EngineStats, ToolRunner
from parley.engines.text_hooks import TextHook
from parley.errors import AuthError, ConfigError, ParleyError, ProviderError, RemoteProtocolError
from parley.events import (
    ContextInjected,
    ErrorEvent,
    Event,
    Role,
    ToolCall,
    ToolResult,
    TranscriptFinal,
    Usage,
)
from parley.metrics.pricing import cost_usd, prices_for
from parley.protocols.openai_realtime import (
    PCM16_24K,
    PCMA,
    PCMU,
    AudioConfig,
    AudioInput,
    AudioOutput,
    ClientConversation,
    ClientEvent,
    ConversationItemCreate,
    InputAudioBufferAppend,
    InputAudioBufferCommit,
    InputTranscription,
    RealtimeAudioFormat,
    ResponseCreate,
    ResponseParams,
    ServerEvent,
    Session,
    SessionUpdate,
    Tool,
    TurnDetection,
    UnknownServerEvent,
    encode_event_text,
    parse_server_event,
)
from parley.protocols.openai_realtime.client_conversation import (
    Action,
    HistoryItem,
    RunTools,
    Send,
    SessionExpired,
)
from parley.providers.seams import Message

if TYPE_CHECKING:
    from parley.engines.seams import CallEngine

__all__ = ["RealtimeConfig", "RealtimeEngine"]

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
        self._instructions = cfg.instructions
        self._context: dict[str, tuple[object, float]] = {}
        self._wire_format = _WIRE_FORMATS[cfg.audio]
        fmt = self._wire_format.audio_format
        self._format = fmt
        # Bytes per millisecond of caller audio, for the reconnect buffer bound.
        self._bytes_per_ms = fmt.sample_rate * fmt.sample_width / 1000
        self._out_q: EventOutbox[Event] = EventOutbox(cfg.event_queue_size)
        self._conn: ClientConnection | None = None
        self._ready = False  # connected and seeded: audio goes straight up
        # Set once the first session is open and seeded (clients wait on it to know
        # the upstream accepted them); it stays set across reconnections.
        self.opened = asyncio.Event()
        self._buffer: deque[bytes] = deque()
        self._buffered_bytes = 0
        td = cfg.turn_detection
        # The protocol state: replies, the history to re-seed, truncation, transcripts.
        self._conv = ClientConversation(
            playback,
            audio=fmt,
            server_cancels=td is not None and td.interrupt_response is not False,
            transcription=cfg.transcription is not None,
        )
        self._shown: ShownText | None = None  # the response hook, when set
        self._session_started = 0.0
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        # Public counters.
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
        return self._conv.history

    @property
    def usage(self) -> Usage:
        """Tokens of every ``response.done`` so far, summed."""
        return self._conv.usage

    @property
    def responses(self) -> int:
        """``response.done`` events seen so far."""
        return self._conv.responses

    def seed_history(self, messages: Sequence[Message]) -> None:
        """Start from a conversation under way (``HistorySeedable``): the messages become
        conversation items, sent when the session opens — the same re-seed a
        reconnection does. Seeded while a session is open, they go up at once."""
        items = [item for m in messages for item in _history_items(m)]
        self._conv.seed(items)
        if self._ready:
            wires = [ConversationItemCreate(item=w) for i in items if (w := i.wire()) is not None]
            self._spawn(self._send_all(list(wires)))

    async def cancel_response(self, response_id: str) -> None:
        """Stop reply ``response_id`` now (``Cancellable``): ``response.cancel`` upstream,
        the item truncated at what was heard, and ``ResponseDone(cancelled)`` with
        those words. Nothing for a reply that is unknown or already made."""
        await self._act(self._conv.cancel(response_id, time.monotonic()))

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
        self._shown = None if response is None else ShownText(response, self._emit)

    async def send_text(self, text: str) -> None:
        if self._closed or not text.strip():
            return
        said = text
        if self._request_hook is not None:
            try:
                text = (await self._request_hook(text)).strip()
            except ParleyError as exc:  # refused (AuthError …): no reply, the call goes on
                await self._emit(TranscriptFinal(Role.USER, said))
                await self._emit(ErrorEvent(exc.code, str(exc)))
                return
            if not text:
                await self._emit(TranscriptFinal(Role.USER, said))
                return
        now = time.monotonic()
        await self._act(self._conv.user_text(text, said, now, connected=self._ready))

    async def interrupt(self) -> None:
        """Stop the current reply as a barge-in would (the caller pressed "stop"):
        truncate to what was played, cancel upstream, emit ``Interrupted``."""
        await self._act(self._conv.interrupt(time.monotonic()))

    async def report_playback(self, response_id: str, played_ms: float) -> None:
        self._conv.report_playback(response_id, played_ms)

    async def inject_context(self, key: str, data: object) -> None:
        # A system message item: the model sees it from its next response on; the
        # current response goes on (no response.cancel, no response.create).
        now = time.monotonic()
        self._context[key] = (data, now)
        await self._act(self._conv.context(key, f"[context: {key}]\n{_render(data)}"))
        await self._emit(ContextInjected(key, "inject_context", (time.monotonic() - now) * 1000))

    async def update(
        self,
        *,
        instructions: str | None = None,
        tools: ToolRunner | None = None,
        turn_taking: PhasePolicy | None = None,
    ) -> None:
        # session.update applies to the next response; the current one is not touched.
        # turn_taking is not sent: the upstream's turn detection has no phase policy.
        if instructions is None and tools is None:
            return
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

    async def greet(self, text: str) -> None:
        """The model is told to say ``text`` once the session is open (it speaks in its
        own voice and may word it slightly its own way)."""
        if self._closed or not text.strip():
            return

        async def when_open() -> None:
            await self.opened.wait()
            say = f"Greet the caller by saying exactly this, and nothing else: {text}"
            await self._send(ResponseCreate(response=ResponseParams(instructions=say)))

        self._spawn(when_open())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        conn = self._conn
        if conn is not None:
            await conn.close()

    async def events(self) -> AsyncIterator[Event]:
        async for event in self._out_q:
            yield event

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
            self._out_q.end()

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
        for event in self._conv.opening():
            await self._send_now(event)
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
        # A reply cut off upstream: what was heard stays heard; the rest is asked for
        # again on the new session.
        await self._act(self._conv.connection_lost())
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
        """Send if connected; otherwise the state is in the protocol state/config and goes up
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
        return self._conv.busy(now)

    async def _emit(self, event: Event) -> None:
        await self._out_q.put(event)

    async def _on_event(self, ev: ServerEvent | UnknownServerEvent) -> None:
        shown = self._shown
        events = [ev] if shown is None else await shown.filter(ev, self._conv.reply)
        for event in events:
            await self._act(self._conv.receive(event, time.monotonic()))

    async def _act(self, actions: list[Action]) -> None:
        """Carry out what the protocol state asks for, in order."""
        for action in actions:
            if isinstance(action, Send):
                await self._send(action.event)
            elif isinstance(action, RunTools):
                self._spawn(self._run_tools(action.calls))
            elif isinstance(action, SessionExpired):
                raise _Reconnect("session_expired")
            else:
                await self._emit(action)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_all(self, events: list[ClientEvent]) -> None:
        for event in events:
            await self._send(event)

    async def _run_tools(self, calls: tuple[ToolCall, ...]) -> None:
        tools = self._tools
        for call in calls:
            if tools is None:
                result = ToolResult(call.call_id, call.name, "no tools are configured", True)
            else:
                result = await tools.run(call)
            await self._act(self._conv.tool_result(result))
        await self._act(self._conv.tools_done())


def _history_items(message: Message) -> list[HistoryItem]:
    """A provider-neutral message as the items of a Realtime conversation."""
    items: list[HistoryItem] = []
    local = f"seed_{next(_ids)}"
    if message.role is Role.TOOL:
        return [HistoryItem(local, "function_call_output", message.content, message.tool_call_id)]
    if message.content:
        role: Literal["user", "assistant", "system"] = (
            "user"
            if message.role is Role.USER
            else ("assistant" if message.role is Role.ASSISTANT else "system")
        )
        items.append(HistoryItem(local, role, message.content))
    items.extend(
        HistoryItem(f"{local}_{c.call_id}", "function_call", c.arguments, c.call_id, c.name)
        for c in message.tool_calls
    )
    return items


def _render(data: object) -> str:
    if isinstance(data, str):
        return data
    try:
        return json.dumps(data, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(data)


if TYPE_CHECKING:  # mypy proves the capabilities are declared, not probed at run time

    def _is_a_call_engine(engine: RealtimeEngine) -> CallEngine:
        return engine

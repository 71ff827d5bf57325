"""``Conversation``: one transport-side stream bound to one engine.

It owns what belongs to one live call: the state machine, the transcript, the
per-turn metrics, the lifecycle hooks, and the audio conversion between the
transport's format (µ-law 8 kHz, PCM16 24 kHz stereo …) and the engine's PCM16
mono. Its three jobs (engine, inbound pump, event pump) run in one TaskGroup, so
cancelling ``run()`` cancels all of them; a provider failure ends this call with
an ``ErrorEvent`` and never touches another call.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

from parley.audio.format import AudioFormat
from parley.audio.transcode import ReplyTranscoder, Transcoder
from parley.conversation.journal import Journal
from parley.conversation.middleware import AsyncAudioChain
from parley.conversation.state import ConversationState, StateMachine
from parley.conversation.stream import CallStream, PlaybackReport, UserText
from parley.conversation.transcript import Transcript
from parley.engines.seams import Engine
from parley.errors import ConfigError, ParleyError
from parley.events import (
    AudioDelta,
    DTMFReceived,
    ErrorEvent,
    Event,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    Role,
    TranscriptFinal,
    UserSpeechStarted,
    UserSpeechStopped,
)

__all__ = ["Conversation", "EventHook", "LifecycleHook"]

LifecycleHook = Callable[["Conversation"], Awaitable[None]]
EventHook = Callable[["Conversation", Event], Awaitable[None]]

_ids = itertools.count(1)
_S = ConversationState


class _Inbound:
    """Transport audio → engine input: one transcoder per call (the peer's bytes, so a
    malformed chunk is the peer's fault)."""

    def __init__(self, fmt: AudioFormat, engine_format: AudioFormat) -> None:
        if fmt.encoding == "opus":
            raise ConfigError("decode Opus in the transport, hand PCM16 over", field="input_format")
        self._transcoder = Transcoder(fmt, engine_format, from_peer=True)
        self.convert = self._transcoder.process


class _Outbound:
    """Engine audio (PCM16 at the TTS rate, or the line's G.711) → transport format;
    pass-through when they are equal (µ-law straight to a phone line)."""

    def __init__(self, fmt: AudioFormat) -> None:
        if fmt.encoding == "opus":
            raise ConfigError("encode Opus in the transport, take PCM16", field="output_format")
        self._transcoder = ReplyTranscoder(fmt)
        self.flush = self._transcoder.flush
        self.reset = self._transcoder.reset  # on barge-in: the cut reply's tail is dropped

    def convert(self, delta: AudioDelta) -> bytes:
        return self._transcoder.process(delta.audio, delta.encoding, delta.sample_rate)


class Conversation:
    """One live call. ``await run()`` until the caller hangs up or ``end()`` is called."""

    def __init__(
        self,
        stream: CallStream,
        engine: Engine,
        *,
        conversation_id: str | None = None,
        on_start: LifecycleHook | None = None,
        on_end: LifecycleHook | None = None,
        on_event: EventHook | None = None,
        audio_preprocessor: Callable[[bytes], bytes] | AsyncAudioChain | None = None,
        on_playback: Callable[[str, float], None] | None = None,
    ) -> None:
        self.id = conversation_id or f"conv_{next(_ids)}"
        self.stream = stream
        self.engine = engine
        self.journal = Journal()
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self._machine = StateMachine()
        self._on_start, self._on_end, self._on_event = on_start, on_end, on_event
        self._on_playback = on_playback  # (response_id, played_ms): the call's meter
        # An engine that takes the line's own G.711 (the realtime engine on µ-law) gets
        # the bytes untouched: no decode, no resample on that path. PCM16 always goes
        # through _Inbound, which checks whole samples (equal rates do not resample).
        engine_format = engine.input_format
        self._inbound: _Inbound | None = (
            None
            if engine_format == stream.input_format and engine_format.encoding != "pcm16"
            else _Inbound(stream.input_format, engine_format)
        )
        # Inbound bytes → engine input in one call per chunk: None (untouched), the
        # decoder/resampler, or that plus the app's audio preprocessor. Without a
        # preprocessor this is the decoder alone: the hot path pays nothing for it.
        sync_pre = None if isinstance(audio_preprocessor, AsyncAudioChain) else audio_preprocessor
        self._to_engine: Callable[[bytes], bytes] | None = _inbound_path(
            self._inbound, sync_pre, engine_format
        )
        # An async preprocessor is awaited after the decoder, on PCM16 at the engine's rate.
        self._after: Callable[[bytes], Awaitable[bytes]] | None = (
            _async_path(audio_preprocessor, self._inbound, engine_format)
            if isinstance(audio_preprocessor, AsyncAudioChain)
            else None
        )
        self._outbound = _Outbound(stream.output_format)
        self._ending = False

    @property
    def state(self) -> ConversationState:
        return self._machine.state

    @property
    def transcript(self) -> Transcript:
        return self.journal.transcript

    @property
    def error(self) -> ErrorEvent | None:
        """The latest error of the call (a provider's, a middleware's, a peer's)."""
        return self.journal.error

    async def report(self, event: Event) -> None:
        """An event from outside the engine (a middleware's ErrorEvent): recorded and
        dispatched like the engine's own."""
        await self._handle(event)
        if self._on_event is not None:
            await self._on_event(self, event)

    async def send_text(self, text: str) -> None:
        await self.engine.send_text(text)

    async def end(self) -> None:
        """Hang up from our side: the engine stops, ``run()`` returns."""
        self._ending = True
        await self.engine.close()

    async def run(self) -> None:
        self.started_at = time.time()
        try:
            if self._on_start is not None:
                await self._on_start(self)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.engine.run())
                inbound = tg.create_task(self._pump_inbound())
                await self._pump_events()
                inbound.cancel()  # the engine is done: stop listening to the caller
        except* ParleyError as group:
            exc = _first_leaf(group)
            error = ErrorEvent(exc.code, str(exc), fatal=True)
            self.journal.record(error)
            if self._on_event is not None:
                await self._on_event(self, error)
        finally:
            self._set(_S.ENDED)
            self.ended_at = time.time()
            await self.stream.close()
            if self._on_end is not None:
                await self._on_end(self)

    # -- pumps -------------------------------------------------------------------------

    async def _pump_inbound(self) -> None:
        engine = self.engine
        convert, after = self._to_engine, self._after
        async for item in self.stream.inbound():
            if isinstance(item, bytes):
                pcm = item if convert is None else convert(item)
                if pcm and after is not None:
                    pcm = await after(pcm)
                if pcm:
                    await engine.send_audio(pcm)
            elif isinstance(item, PlaybackReport):
                await engine.report_playback(item.response_id, item.played_ms)
                if self._on_playback is not None:
                    self._on_playback(item.response_id, item.played_ms)
            elif isinstance(item, UserText):
                await engine.send_text(item.text)
            elif isinstance(item, DTMFReceived) and self._on_event is not None:
                await self._on_event(self, item)
        await engine.close()  # the caller hung up

    async def _pump_events(self) -> None:
        async for event in self.engine.events():
            await self._handle(event)
            if self._on_event is not None:
                await self._on_event(self, event)

    def _set(self, target: ConversationState) -> None:
        self._machine.to(target)

    async def _handle(self, event: Event) -> None:
        """The call's own part of an event: state, audio out; the journal the rest."""
        self.journal.record(event)
        state = self._machine.state
        if isinstance(event, AudioDelta):
            if state is _S.THINKING:
                self._set(_S.SPEAKING)
            out = self._outbound.convert(event)
            if out:
                await self.stream.send_audio(out, response_id=event.response_id, text=event.text)
        elif isinstance(event, UserSpeechStarted):
            self._set(_S.USER_SPEAKING)
        elif isinstance(event, UserSpeechStopped):
            self._set(_S.THINKING)
        elif isinstance(event, TranscriptFinal) and event.role is Role.USER:
            if event.text and state is _S.LISTENING:
                self._set(_S.THINKING)
            elif not event.text and state is _S.THINKING:
                self._set(_S.LISTENING)
        elif isinstance(event, ResponseStarted):
            if state is _S.LISTENING:
                self._set(_S.THINKING)
        elif isinstance(event, ResponseDone):
            if event.status in ("completed", "failed"):
                tail = self._outbound.flush()
                if tail:
                    await self.stream.send_audio(tail, response_id=event.response_id)
            if state in (_S.THINKING, _S.SPEAKING):
                self._set(_S.LISTENING)
        elif isinstance(event, Interrupted):
            self._set(_S.INTERRUPTED)
            self._outbound.reset()
            await self.stream.clear(event.response_id)


def _inbound_path(
    inbound: _Inbound | None, pre: Callable[[bytes], bytes] | None, engine_format: AudioFormat
) -> Callable[[bytes], bytes] | None:
    if pre is None:
        return None if inbound is None else inbound.convert
    if inbound is not None:
        convert = inbound.convert

        def decode_then_pre(data: bytes) -> bytes:
            pcm = convert(data)
            return pre(pcm) if pcm else pcm

        return decode_then_pre
    if engine_format.encoding == "pcm16":
        return pre
    # Pass-through to an engine that takes the line's bytes: the preprocessor still
    # sees PCM16 (G.711 is decoded for it and encoded again).
    pcm = AudioFormat("pcm16", engine_format.sample_rate, engine_format.channels)
    decode = Transcoder(engine_format, pcm, from_peer=True).process
    encode = Transcoder(pcm, engine_format).process
    return lambda data: encode(pre(decode(data)))


def _async_path(
    pre: AsyncAudioChain, inbound: _Inbound | None, engine_format: AudioFormat
) -> Callable[[bytes], Awaitable[bytes]]:
    if inbound is not None or engine_format.encoding == "pcm16":
        return pre
    # The engine takes the line's G.711: decoded for the preprocessor, encoded again.
    pcm = AudioFormat("pcm16", engine_format.sample_rate, engine_format.channels)
    decode = Transcoder(engine_format, pcm, from_peer=True).process
    encode = Transcoder(pcm, engine_format).process

    async def around(data: bytes) -> bytes:
        return encode(await pre(decode(data)))

    return around


def _first_leaf(group: BaseExceptionGroup[ParleyError]) -> ParleyError:
    """The first real error in a (possibly nested) group from the TaskGroups."""
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first

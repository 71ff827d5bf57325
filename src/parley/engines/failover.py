"""``FailoverEngine``: run a primary engine, switch mid-call to a fallback when it fails.

The primary (typically ``RealtimeEngine``) runs until it is unreachable (its
``run()`` raises a ``ParleyError``) or keeps failing (``max_failures`` non-fatal
``ErrorEvent``s within ``window_s``). Then the fallback (typically the cascade)
takes over for the rest of the call, seeded with the conversation so far, the
current instructions, tools and injected context. The switch is an
:class:`~parley.events.EngineSwitched` event and a counter.

The conversation layer fixes the engine's input format when the call starts, so
this wrapper keeps the primary's format and converts caller audio for the
fallback after a switch (G.711 decode and one stream resampler, created once).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from parley.audio.format import AudioFormat
from parley.audio.transcode import Transcoder
from parley.endpointing import PhasePolicy
from parley.engines.outbox import EventOutbox
from parley.engines.seams import CallEngine, EngineStats, ToolRunner
from parley.engines.text_hooks import TextHook
from parley.errors import ParleyError
from parley.events import (
    EngineSwitched,
    ErrorEvent,
    Event,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    Role,
    TranscriptFinal,
)
from parley.providers.seams import Message

__all__ = ["BufferingEngine", "FailoverEngine", "FailoverPolicy", "switch_count"]

_switches = 0  # process-wide, for the metrics exporter


def switch_count() -> int:
    """Engine switches in this process so far (all calls)."""
    return _switches


class BufferingEngine(CallEngine, Protocol):
    """A primary that holds caller audio it could not deliver (``RealtimeEngine`` while
    reconnecting); the fallback gets that audio, so nothing the caller said is lost."""

    def take_buffered_audio(self) -> list[bytes]: ...


@dataclass(frozen=True, slots=True)
class FailoverPolicy:
    max_failures: int = 3  # non-fatal errors of the primary within window_s → switch
    window_s: float = 60.0
    event_queue_size: int = 512


EngineFactory = Callable[[], CallEngine]


class FailoverEngine:
    """See the module docstring. ``fallback`` may be an engine or a factory of one
    (built only when needed, so its models load only on a switch)."""

    def __init__(
        self,
        primary: BufferingEngine,
        fallback: CallEngine | EngineFactory,
        *,
        policy: FailoverPolicy | None = None,
        primary_name: str = "realtime",
        fallback_name: str = "cascade",
    ) -> None:
        self.policy = policy or FailoverPolicy()
        self.primary = primary
        self._fallback_spec = fallback
        self.fallback: CallEngine | None = None if callable(fallback) else fallback
        self.primary_name, self.fallback_name = primary_name, fallback_name
        self._active: CallEngine = primary
        self._out: EventOutbox[Event] = EventOutbox(self.policy.event_queue_size)
        self._failures: deque[float] = deque()
        self._history: list[Message] = []
        self._context: dict[str, object] = {}
        self._instructions: str | None = None
        self._turn_taking: PhasePolicy | None = None  # the flow phase's, for the fallback
        self._tools: ToolRunner | None = None
        self._convert: Callable[[bytes], bytes] | None = None
        self._hooks: tuple[TextHook | None, TextHook | None] = (None, None)
        self._closed = False
        self._unanswered: list[str] = []
        self.switches = 0
        self.switch_reason = ""
        self._format = primary.input_format

    # -- the Engine seam ---------------------------------------------------------------

    @property
    def input_format(self) -> AudioFormat:
        return self._format

    @property
    def active(self) -> str:
        return self.primary_name if self._active is self.primary else self.fallback_name

    def stats(self) -> EngineStats:
        inner = self._active.stats()
        return EngineStats(self.active, inner.queue_depths, inner.dropped_audio_chunks)

    async def send_audio(self, pcm: bytes) -> None:
        convert = self._convert
        await self._active.send_audio(convert(pcm) if convert is not None else pcm)

    async def send_text(self, text: str) -> None:
        if self._active is self.primary:
            # Typed text the primary has not answered yet is handed to the fallback on a
            # switch: a reconnecting upstream would otherwise lose it.
            self._unanswered.append(text)
        await self._active.send_text(text)

    def set_text_hooks(
        self, *, request: TextHook | None = None, response: TextHook | None = None
    ) -> None:
        """Middleware for both engines (the fallback gets it when it takes over)."""
        self._hooks = (request, response)
        for engine in (self.primary, self.fallback):
            if engine is not None:
                engine.set_text_hooks(request=request, response=response)

    async def report_playback(self, response_id: str, played_ms: float) -> None:
        await self._active.report_playback(response_id, played_ms)

    async def inject_context(self, key: str, data: object) -> None:
        self._context[key] = data
        await self._active.inject_context(key, data)

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
            self._turn_taking = turn_taking
        await self._active.update(instructions=instructions, tools=tools, turn_taking=turn_taking)

    async def close(self) -> None:
        self._closed = True
        await self._active.close()

    def seed_history(self, messages: Sequence[Message]) -> None:
        """The conversation so far: the primary starts from it, and so would a fallback."""
        self._history = list(messages)
        self._active.seed_history(messages)

    async def cancel_response(self, response_id: str) -> None:
        await self._active.cancel_response(response_id)

    async def greet(self, text: str) -> None:
        await self._active.greet(text)

    async def events(self) -> AsyncIterator[Event]:
        async for event in self._out:
            yield event

    async def run(self) -> None:
        try:
            reason = await self._drive(self.primary, watch=True)
            if reason is not None and not self._closed:
                fallback = await self._switch(reason)
                if not self._closed:
                    await self._drive(fallback, watch=False)
        finally:
            self._out.end()

    # -- internals ---------------------------------------------------------------------

    async def _drive(self, engine: CallEngine, *, watch: bool) -> str | None:
        """Run ``engine`` and forward its events; with ``watch``, return why it should be
        abandoned (``None`` if it ended normally)."""
        run = asyncio.get_running_loop().create_task(engine.run())
        reason: str | None = None
        events = engine.events()
        try:
            async for event in events:
                self._track(event)
                await self._out.put(event)
                if watch and isinstance(event, ErrorEvent) and self._failed(event):
                    reason = (
                        f"{self.policy.max_failures} failures in {self.policy.window_s:g} s "
                        f"(last: {event.code})"
                    )
                    break
        finally:
            with contextlib.suppress(AttributeError):
                await events.aclose()  # type: ignore[attr-defined]
        if reason is not None:
            await engine.close()
        try:
            await run
        except ParleyError as exc:
            if not watch:
                raise
            reason = reason or f"{type(exc).__name__}: {exc}"
        return reason

    def _failed(self, event: ErrorEvent) -> bool:
        now = time.monotonic()
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.policy.window_s:
            self._failures.popleft()
        return event.fatal or len(self._failures) >= self.policy.max_failures

    def _track(self, event: Event) -> None:
        # The conversation so far, as the fallback's LLM should see it: what was said
        # and what the caller actually heard.
        if isinstance(event, ResponseStarted):
            self._unanswered.clear()
        elif isinstance(event, TranscriptFinal) and event.role is Role.USER and event.text:
            self._history.append(Message(Role.USER, event.text))
        elif isinstance(event, ResponseDone) and event.status == "completed" and event.text:
            self._history.append(Message(Role.ASSISTANT, event.text))
        elif isinstance(event, Interrupted) and event.played_text:
            self._history.append(Message(Role.ASSISTANT, event.played_text))

    @property
    def history(self) -> tuple[Message, ...]:
        """The conversation so far as seen through the engines' events."""
        return tuple(self._history)

    async def _switch(self, reason: str) -> CallEngine:
        global _switches
        fallback = self.fallback
        if fallback is None:
            spec = self._fallback_spec
            fallback = self.fallback = spec() if callable(spec) else spec
        fallback.seed_history(self._history)
        if self._hooks != (None, None):
            fallback.set_text_hooks(request=self._hooks[0], response=self._hooks[1])
        if (self._instructions, self._tools, self._turn_taking) != (None, None, None):
            await fallback.update(
                instructions=self._instructions, tools=self._tools, turn_taking=self._turn_taking
            )
        for key, data in self._context.items():
            await fallback.inject_context(key, data)
        self._convert = convert = self._converter(fallback.input_format.sample_rate)
        self._active = fallback
        for chunk in self.primary.take_buffered_audio():
            await fallback.send_audio(convert(chunk) if convert is not None else chunk)
        texts, self._unanswered = self._unanswered, []
        for text in texts:
            await fallback.send_text(text)
        self.switches += 1
        _switches += 1
        self.switch_reason = reason
        await self._out.put(EngineSwitched(self.primary_name, self.fallback_name, reason))
        return fallback

    def _converter(self, rate: int) -> Callable[[bytes], bytes] | None:
        # The line's format (fixed when the call started) → the fallback's PCM16 mono.
        transcoder = Transcoder(self._format, AudioFormat("pcm16", rate))
        return None if transcoder.passthrough else transcoder.process

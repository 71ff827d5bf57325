"""The engine seam: what the conversation layer needs from a "brain".

An engine consumes audio in its declared ``input_format`` (PCM16 mono for the
cascade; the line's µ-law for the realtime engine on a phone call) and user text,
and yields :mod:`parley.events`. It never knows which transport is on the other
side. The cascade engine (VAD → STT → LLM → TTS), the realtime engine (a
speech-to-speech upstream), the failover wrapper and the loopback engine all
satisfy it; there is no base class.

What an engine can do beyond the core is declared on small capability Protocols
that the real engines implement — never probed with ``getattr``:

- :class:`HistorySeedable` — start from a conversation already under way (the
  fallback of a failover carries the earlier turns);
- :class:`Cancellable` — stop one reply at once (``response.cancel`` on the local
  Realtime server, barge-in);
- :class:`MiddlewareHost` — apply request/response text hooks;
- :class:`Greeter` — say a given text as the assistant's turn (a greeting).

:class:`CallEngine` is all of them: what the switchboard builds and runs for a
call. A consumer that needs a capability says so in its parameter's type, so
mypy checks the engines, and a custom ``engine_factory`` that returns less is
refused at build time with a message naming what is missing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from parley.audio.format import AudioFormat
from parley.endpointing import PhasePolicy
from parley.engines.text_hooks import MiddlewareHost
from parley.events import Event, ToolCall, ToolResult
from parley.providers.seams import Message, ToolSpec

__all__ = [
    "CallEngine",
    "Cancellable",
    "Engine",
    "EngineStats",
    "Greeter",
    "HistorySeedable",
    "MiddlewareHost",
    "ToolRunner",
    "missing_capabilities",
]


@runtime_checkable
class ToolRunner(Protocol):
    """Tools an engine may offer the model and run (``parley.conversation.ToolRegistry``).

    Defined here rather than imported because engines sit below the conversation
    layer: the registry satisfies this structurally.
    """

    @property
    def specs(self) -> Sequence[ToolSpec]: ...

    async def run(self, call: ToolCall) -> ToolResult: ...


@dataclass(frozen=True, slots=True)
class EngineStats:
    """What an engine reports for health views: who is answering now, how full its
    queues are, and how much caller audio it had to drop."""

    serving: str  # "cascade", "realtime", "loopback", … — after a failover, the fallback
    queue_depths: Mapping[str, int] = field(default_factory=dict)
    dropped_audio_chunks: int = 0


@runtime_checkable
class Engine(Protocol):
    """One call's brain. ``run()`` does the work until ``close()`` or cancellation;
    ``events()`` yields what happened and ends when ``run()`` has ended."""

    @property
    def input_format(self) -> AudioFormat:
        """What ``send_audio`` takes. A line already in this format is passed through
        untouched (no decode, no resample)."""
        ...

    async def run(self) -> None: ...

    def events(self) -> AsyncIterator[Event]: ...

    async def send_audio(self, pcm: bytes) -> None:
        """Audio in ``input_format``; dropped (and counted) if the engine lags."""

    async def send_text(self, text: str) -> None:
        """A typed user message: answered like a spoken turn."""

    async def report_playback(self, response_id: str, played_ms: float) -> None:
        """The transport says how much of a reply's audio the caller has actually heard."""

    async def inject_context(self, key: str, data: object) -> None:
        """Data for the next model call; a newer value for ``key`` replaces the older."""

    async def update(
        self,
        *,
        instructions: str | None = None,
        tools: ToolRunner | None = None,
        turn_taking: PhasePolicy | None = None,
    ) -> None:
        """New instructions or tools for the next model call; the current reply goes on.

        ``turn_taking`` is a flow phase's end-of-turn policy from the next pause on
        (``PhasePolicy()``: none; ``None``: unchanged). Engines that decide the end of
        turn themselves apply it (the cascade); a hosted speech-to-speech model
        decides its own turns and does not see it."""

    async def close(self) -> None: ...

    def stats(self) -> EngineStats:
        """Cheap to call (health views call it per request, never per frame)."""
        ...


@runtime_checkable
class HistorySeedable(Protocol):
    """An engine that can start from a conversation already under way."""

    def seed_history(self, messages: Sequence[Message]) -> None:
        """Replace the engine's history with ``messages`` (user and assistant turns,
        oldest first) before its first reply."""


@runtime_checkable
class Cancellable(Protocol):
    """An engine that can stop one reply at once."""

    async def cancel_response(self, response_id: str) -> None:
        """Stop reply ``response_id`` now: no more of its audio or text, a
        ``ResponseDone(status="cancelled")`` with what was said so far, and the
        history keeps only that. Nothing happens for a reply that is already done
        or unknown."""


@runtime_checkable
class Greeter(Protocol):
    """An engine that can say a given text as the assistant's turn."""

    async def greet(self, text: str) -> None:
        """Say ``text`` now as a reply of its own (``ResponseStarted``, its text and
        audio, ``ResponseDone``), kept in the history as the assistant's turn; an
        engine without a voice of its own says nothing."""


@runtime_checkable
class CallEngine(Engine, HistorySeedable, Cancellable, MiddlewareHost, Greeter, Protocol):
    """Every capability: what the switchboard builds, wraps and runs for a call."""


_MEMBERS = (
    "input_format",
    "run",
    "events",
    "send_audio",
    "send_text",
    "report_playback",
    "inject_context",
    "update",
    "close",
    "stats",
    "seed_history",
    "cancel_response",
    "set_text_hooks",
    "greet",
)


def missing_capabilities(engine: object) -> list[str]:
    """The members of :class:`CallEngine` that ``engine`` lacks (``[]``: it is one).

    Used once per call to refuse a custom engine with a message naming them, never
    to choose a code path."""
    return [name for name in _MEMBERS if not hasattr(engine, name)]

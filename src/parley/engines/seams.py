"""The engine seam: what the conversation layer needs from a "brain".

An engine consumes PCM16 mono audio at its declared input rate and user text, and
yields :mod:`parley.events`. It never knows which transport is on the other side.
The cascade engine (VAD → STT → LLM → TTS) and the realtime engine (a speech-to-speech
upstream) both satisfy it; there is no base class.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from parley.events import Event, ToolCall, ToolResult
from parley.providers.seams import ToolSpec

__all__ = ["Engine", "ToolRunner"]


@runtime_checkable
class ToolRunner(Protocol):
    """Tools an engine may offer the model and run (``parley.conversation.ToolRegistry``).

    Defined here rather than imported because engines sit below the conversation
    layer: the registry satisfies this structurally.
    """

    @property
    def specs(self) -> Sequence[ToolSpec]: ...

    async def run(self, call: ToolCall) -> ToolResult: ...


@runtime_checkable
class Engine(Protocol):
    """One call's brain. ``run()`` does the work until ``close()`` or cancellation;
    ``events()`` yields what happened and ends when ``run()`` has ended."""

    @property
    def input_sample_rate(self) -> int: ...

    async def run(self) -> None: ...

    def events(self) -> AsyncIterator[Event]: ...

    async def send_audio(self, pcm: bytes) -> None:
        """PCM16 mono at ``input_sample_rate``; dropped (and counted) if the engine lags."""

    async def send_text(self, text: str) -> None:
        """A typed user message: answered like a spoken turn."""

    async def report_playback(self, response_id: str, played_ms: float) -> None:
        """The transport says how much of a reply's audio the caller has actually heard."""

    async def inject_context(self, key: str, data: object) -> None:
        """Data for the next model call; a newer value for ``key`` replaces the older."""

    async def update(
        self, *, instructions: str | None = None, tools: ToolRunner | None = None
    ) -> None:
        """New instructions or tools for the next model call; the current reply goes on."""

    async def close(self) -> None: ...

"""The provider seams: one small ``Protocol`` per kind of model.

An implementation is any object with these methods; there is no base class to
inherit. Models are loaded once per process and shared; anything that belongs to
one call (a VAD's recurrent state) lives in a per-call stream object.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias, runtime_checkable

from parley.events import Role, ToolCall

__all__ = [
    "LLM",
    "STT",
    "TTS",
    "VAD",
    "LLMChunk",
    "Message",
    "ToolSpec",
    "Transcript",
    "VADStream",
]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message in provider-neutral form."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""  # set on role=TOOL messages: which call this answers
    name: str = ""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    language: str = "en"
    is_final: bool = True
    duration_s: float = 0.0  # length of the audio transcribed


# What an LLM stream yields: text as it comes, or a complete tool call.
LLMChunk: TypeAlias = str | ToolCall


@runtime_checkable
class VADStream(Protocol):
    """Per-call VAD state. ``frame_bytes`` of PCM16 at the VAD's rate in, probability out."""

    @property
    def frame_bytes(self) -> int: ...

    def probability(self, frame: bytes) -> float: ...

    def reset(self) -> None: ...


@runtime_checkable
class VAD(Protocol):
    """A voice-activity model shared by all calls of a process."""

    @property
    def sample_rate(self) -> int: ...

    def stream(self) -> VADStream: ...


@runtime_checkable
class STT(Protocol):
    """Speech to text: an utterance of PCM16 mono at ``sample_rate`` → transcript."""

    @property
    def sample_rate(self) -> int: ...

    async def transcribe(self, pcm: bytes) -> Transcript: ...


@runtime_checkable
class LLM(Protocol):
    """Messages and tools in; text deltas and whole tool calls streamed out."""

    def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LLMChunk]: ...


@runtime_checkable
class TTS(Protocol):
    """Text to PCM16 mono chunks at ``sample_rate``, streamed as they are made."""

    @property
    def sample_rate(self) -> int: ...

    def synthesize(self, text: str) -> AsyncIterator[bytes]: ...

"""The closed union of events an engine or a conversation emits.

Every event is a frozen, slotted dataclass; handlers dispatch on the type, so a
typo is a type error rather than a silently unused string. ``Event`` is the union.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, TypeAlias

__all__ = [
    "AudioDelta",
    "ContextInjected",
    "DTMFReceived",
    "EngineSwitched",
    "ErrorEvent",
    "Event",
    "Interrupted",
    "PhaseChanged",
    "ResponseDone",
    "ResponseStarted",
    "Role",
    "TextDelta",
    "ToolCall",
    "ToolResult",
    "TranscriptDelta",
    "TranscriptFinal",
    "TurnMetrics",
    "Usage",
    "UserSpeechStarted",
    "UserSpeechStopped",
]


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


ResponseStatus = Literal["completed", "cancelled", "failed", "incomplete"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one response, split the way the Realtime API bills it.

    Cached counts are a subset of the input counts.
    """

    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    input_image_tokens: int = 0
    cached_text_tokens: int = 0
    cached_audio_tokens: int = 0
    cached_image_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0

    @property
    def input_tokens(self) -> int:
        return self.input_text_tokens + self.input_audio_tokens + self.input_image_tokens

    @property
    def output_tokens(self) -> int:
        return self.output_text_tokens + self.output_audio_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))


@dataclass(frozen=True, slots=True)
class UserSpeechStarted:
    """The user started speaking; ``audio_ms`` is the position in the input stream."""

    audio_ms: float


@dataclass(frozen=True, slots=True)
class UserSpeechStopped:
    audio_ms: float


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    role: Role
    text: str
    item_id: str = ""


@dataclass(frozen=True, slots=True)
class TranscriptFinal:
    role: Role
    text: str
    item_id: str = ""


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    response_id: str


@dataclass(frozen=True, slots=True)
class AudioDelta:
    """Reply audio: PCM16 little-endian mono at ``sample_rate`` (or µ-law bytes when
    ``encoding`` says so, for pass-through to a phone line)."""

    response_id: str
    audio: bytes
    sample_rate: int
    encoding: Literal["pcm16", "ulaw", "alaw"] = "pcm16"
    text: str = ""  # the text this audio speaks, when the engine knows it


@dataclass(frozen=True, slots=True)
class TextDelta:
    response_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ResponseDone:
    response_id: str
    status: ResponseStatus = "completed"
    text: str = ""
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str  # JSON text, as the model produced it


@dataclass(frozen=True, slots=True)
class ToolResult:
    call_id: str
    name: str
    output: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ContextInjected:
    key: str
    source: str
    latency_ms: float


@dataclass(frozen=True, slots=True)
class PhaseChanged:
    previous: str | None
    current: str


@dataclass(frozen=True, slots=True)
class Interrupted:
    """Barge-in: the reply stopped; only ``played_text`` reached the caller's ear."""

    response_id: str
    played_text: str
    played_ms: float


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    code: str
    message: str
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class DTMFReceived:
    digit: str


@dataclass(frozen=True, slots=True)
class EngineSwitched:
    previous: str
    current: str
    reason: str


@dataclass(frozen=True, slots=True)
class TurnMetrics:
    """Latency split of one turn, in milliseconds (``None`` where not measured)."""

    turn_index: int
    voice_to_voice_ms: float | None = None
    end_of_turn_ms: float | None = None
    stt_ms: float | None = None
    llm_first_token_ms: float | None = None
    tts_first_byte_ms: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


Event: TypeAlias = (
    UserSpeechStarted
    | UserSpeechStopped
    | TranscriptDelta
    | TranscriptFinal
    | ResponseStarted
    | AudioDelta
    | TextDelta
    | ResponseDone
    | ToolCall
    | ToolResult
    | ContextInjected
    | PhaseChanged
    | Interrupted
    | ErrorEvent
    | DTMFReceived
    | EngineSwitched
    | TurnMetrics
)

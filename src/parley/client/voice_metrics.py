"""What a :class:`~parley.client.voice.VoiceClient` measures: per-turn latency, per-response
results, and the totals of a conversation."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Literal

from parley.events import ResponseStatus, Usage

__all__ = ["ResponseInfo", "TurnLatency", "VoiceMetrics"]


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

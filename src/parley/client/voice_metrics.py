"""What a :class:`~parley.client.voice.VoiceClient` measures: per-turn latency, per-response
results, the totals of a conversation, and what it cost."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Literal

from parley.events import ResponseStatus, Usage
from parley.metrics.cost import CostBreakdown, CostMeter, CostPlan, EnginePlan

__all__ = [
    "ResponseInfo",
    "TurnLatency",
    "VoiceMetrics",
    "conversation_cost",
    "realtime_plan",
]


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
    chunks_captured: int = 0  # microphone chunks, all sessions
    capture_s: float = 0.0  # first to latest microphone chunk
    uptime_s: float = 0.0  # connected, all sessions
    serving: str = "realtime"  # who answers: "realtime", or the local lane's engine
    switches: int = 0  # the local lane's failovers

    @property
    def latency_ms(self) -> tuple[float, ...]:
        return tuple(t.latency_ms for t in self.turns)

    @property
    def median_latency_ms(self) -> float | None:
        return statistics.median(self.latency_ms) if self.turns else None

    @property
    def capture_rate(self) -> float:
        """Microphone chunks per second, as the device delivers them (0 before two)."""
        if self.chunks_captured < 2 or self.capture_s <= 0:
            return 0.0
        return (self.chunks_captured - 1) / self.capture_s


def realtime_plan(model: str) -> CostPlan:
    """A conversation on a Realtime API: tokens at ``model``'s prices."""
    return CostPlan((EnginePlan("realtime", realtime_model=model),))


def conversation_cost(
    plan: CostPlan, serving: str, usage: Usage, metrics: VoiceMetrics, reply_chars: int
) -> CostBreakdown:
    """Price a conversation's totals at the engine serving now: tokens, the user's
    audio (STT minutes) and the replies (TTS characters and minutes). Usage is not
    split at a failover, so after one the figure prices it all at the fallback."""
    meter = CostMeter(plan)
    if serving != plan.engines[0].engine:
        meter.switch(serving)
    meter.add_usage(usage)
    meter.add_caller_speech(metrics.audio_sent_ms)
    meter.add_spoken(reply_chars, metrics.audio_received_ms)
    return meter.breakdown(metrics.uptime_s * 1000)

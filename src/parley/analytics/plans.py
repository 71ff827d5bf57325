"""What a call costs is decided by what serves it: the :class:`~parley.metrics.CostPlan`
of a call from the engine it runs on, the provider specs and its platform."""

from __future__ import annotations

from collections.abc import Mapping

from parley.engines.spec import EngineKind, EngineSpec
from parley.metrics.cost import CostPlan, EnginePlan

__all__ = ["TELEPHONY_BY_PLATFORM", "cost_plan", "priced_model"]

#: The telephony price row of each platform (an overridable default: Twilio's US rate).
TELEPHONY_BY_PLATFORM: Mapping[str, str] = {"twilio": "twilio-us"}

_HOSTED = frozenset({"openai", "anthropic"})


def priced_model(spec: str) -> str:
    """A provider spec as the price book names it: ``openai:gpt-4o`` → ``gpt-4o``; the
    local models (``whisper:tiny.en``, ``piper:joe``) → ``local:…`` (no per-use price)."""
    kind, _, model = spec.partition(":")
    if kind in _HOSTED and model:
        return model
    if kind in ("echo", "template"):
        return kind
    return f"local:{spec}"


def cost_plan(
    kind: EngineKind,
    spec: EngineSpec,
    *,
    brain: str | None = None,
    platform: str | None = None,
    telephony: Mapping[str, str] = TELEPHONY_BY_PLATFORM,
) -> CostPlan:
    """The plan of one call: a realtime call carries its cascade for a failover."""
    cascade = EnginePlan(
        "cascade",
        llm=priced_model(brain or spec.brain),
        stt=priced_model(spec.stt),
        tts=priced_model(spec.tts),
    )
    if kind is EngineKind.LOOPBACK:
        engines: tuple[EnginePlan, ...] = (EnginePlan("loopback"),)
    elif kind is EngineKind.REALTIME:
        engines = (EnginePlan("realtime", realtime_model=spec.realtime.model), cascade)
    else:
        engines = (cascade,)
    return CostPlan(engines, telephony.get(platform or ""))

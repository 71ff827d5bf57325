"""The live cost of one call, from its usage events and durations (sans-I/O).

A :class:`CostPlan` says what serves the call — per engine (the realtime engine, and
after a failover the cascade), which model does what — and on which phone line.
:class:`CostMeter` resolves the plan against a :class:`~parley.metrics.prices.PriceBook`
once, at the start of the call, then only adds numbers:

- ``ResponseDone.usage`` → Realtime token prices while the realtime engine serves,
  chat-completion prices while the cascade does;
- caller speech (ms) → STT minutes; characters spoken and reply audio (ms) → TTS;
- call duration → telephony minutes (prorated per second);
- CPU seconds of local models (:meth:`CostMeter.add_cpu`) → reported, at no cost.

A model the book has no price for is listed in ``CostBreakdown.unpriced`` and adds
nothing: the figure is then a lower bound, and says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from parley.errors import ConfigError
from parley.events import Usage
from parley.metrics.prices import (
    DEFAULT_PRICE_BOOK,
    ChatPrices,
    PriceBook,
    SttPrices,
    TtsPrices,
    chat_cost_usd,
    is_local,
)
from parley.metrics.pricing import ModelPrices, cost_usd

__all__ = ["CostBreakdown", "CostMeter", "CostPlan", "Direction", "EnginePlan"]

Direction = Literal["inbound", "outbound"]


@dataclass(frozen=True, slots=True)
class EnginePlan:
    """What one engine of a call runs. ``None``: that part is not used. A model named
    ``"local"`` / ``"local:…"`` (or the ``echo``/``template`` brains) costs nothing.

    ``engine`` is the name :class:`~parley.events.EngineSwitched` uses (``"realtime"``,
    ``"cascade"``, ``"loopback"``).
    """

    engine: str
    realtime_model: str | None = None
    llm: str | None = None
    stt: str | None = None
    tts: str | None = None


@dataclass(frozen=True, slots=True)
class CostPlan:
    """The engines of a call (the first serves at the start) and its phone line."""

    engines: Sequence[EnginePlan] = (EnginePlan("loopback"),)
    telephony: str | None = None  # a TELEPHONY row, e.g. "twilio-us"
    direction: Direction = "inbound"

    def __post_init__(self) -> None:
        if not self.engines:
            raise ConfigError("a cost plan needs at least one engine", field="engines")
        object.__setattr__(self, "engines", tuple(self.engines))


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """USD per part of a call so far; ``total`` is their sum."""

    realtime: float = 0.0
    llm: float = 0.0
    stt: float = 0.0
    tts: float = 0.0
    telephony: float = 0.0
    cpu_seconds: Mapping[str, float] = field(default_factory=dict)  # local models
    unpriced: tuple[str, ...] = ()  # models used without a known price

    @property
    def total(self) -> float:
        return self.realtime + self.llm + self.stt + self.tts + self.telephony

    def as_dict(self) -> dict[str, object]:
        return {
            "total": self.total,
            "realtime": self.realtime,
            "llm": self.llm,
            "stt": self.stt,
            "tts": self.tts,
            "telephony": self.telephony,
            "cpu_seconds": dict(self.cpu_seconds),
            "unpriced": list(self.unpriced),
        }


@dataclass(slots=True)
class _Priced:
    """One engine's plan resolved to prices (``None`` where unused, local or unknown)."""

    plan: EnginePlan
    realtime: ModelPrices | None = None
    chat: ChatPrices | None = None
    stt: SttPrices | None = None
    tts: TtsPrices | None = None


class CostMeter:
    """Accumulates one call's billable quantities and prices them on demand.

    Every ``add_*`` is a few float additions; :meth:`breakdown` does the pricing.
    """

    __slots__ = (
        "_agent_audio_ms",
        "_chat_usd",
        "_cpu",
        "_engines",
        "_realtime_usd",
        "_serving",
        "_stt_ms",
        "_stt_usd_done",
        "_telephony",
        "_tts_chars",
        "_tts_usd_done",
        "_unpriced",
    )

    def __init__(
        self,
        plan: CostPlan | None = None,
        *,
        book: PriceBook = DEFAULT_PRICE_BOOK,
        on: date | None = None,
    ) -> None:
        plan = plan or CostPlan()
        self._unpriced: list[str] = []
        self._engines = {p.engine: self._resolve(p, book, on) for p in plan.engines}
        self._serving = self._engines[plan.engines[0].engine]
        self._telephony: float | None = None
        if plan.telephony is not None:
            line = book.telephony.at(plan.telephony, on)
            if line is None:
                self._unpriced.append(f"telephony:{plan.telephony}")
            else:
                self._telephony = (
                    line.inbound_per_minute
                    if plan.direction == "inbound"
                    else line.outbound_per_minute
                )
        self._realtime_usd = 0.0
        self._chat_usd = 0.0
        # STT/TTS quantities of the engine serving now; priced and banked on a switch.
        self._stt_ms = 0.0
        self._tts_chars = 0
        self._agent_audio_ms = 0.0
        self._stt_usd_done = 0.0
        self._tts_usd_done = 0.0
        self._cpu: dict[str, float] = {}

    def _resolve(self, plan: EnginePlan, book: PriceBook, on: date | None) -> _Priced:
        priced = _Priced(plan)
        if plan.realtime_model and not is_local(plan.realtime_model):
            priced.realtime = book.realtime.at(plan.realtime_model, on)
            self._note(priced.realtime, f"realtime:{plan.realtime_model}")
        if plan.llm and not is_local(plan.llm):
            priced.chat = book.chat.at(plan.llm, on)
            self._note(priced.chat, f"llm:{plan.llm}")
        if plan.stt and not is_local(plan.stt):
            priced.stt = book.stt.at(plan.stt, on)
            self._note(priced.stt, f"stt:{plan.stt}")
        if plan.tts and not is_local(plan.tts):
            priced.tts = book.tts.at(plan.tts, on)
            self._note(priced.tts, f"tts:{plan.tts}")
        return priced

    def _note(self, prices: object, what: str) -> None:
        if prices is None:
            self._unpriced.append(what)

    @property
    def serving(self) -> str:
        return self._serving.plan.engine

    def switch(self, engine: str) -> None:
        """The call moved to ``engine`` (an ``EngineSwitched``); unknown names keep pricing
        with the current plan, and are listed as unpriced."""
        target = self._engines.get(engine)
        if target is None:
            self._note(None, f"engine:{engine}")
            return
        self._bank()
        self._serving = target

    def _bank(self) -> None:
        # STT/TTS are priced by the engine that used them: settle before switching.
        self._stt_usd_done += self._stt_usd()
        self._tts_usd_done += self._tts_usd()
        self._stt_ms = 0.0
        self._tts_chars = 0
        self._agent_audio_ms = 0.0

    def add_usage(self, usage: Usage) -> None:
        """The token usage of one response (``ResponseDone.usage``)."""
        s = self._serving
        if s.realtime is not None:
            self._realtime_usd += cost_usd(usage, s.realtime)
        elif s.chat is not None:
            self._chat_usd += chat_cost_usd(usage, s.chat)

    def add_caller_speech(self, ms: float) -> None:
        """Caller speech the STT model transcribes."""
        self._stt_ms += ms

    def add_spoken(self, characters: int, audio_ms: float) -> None:
        """Reply text synthesised and the audio it made (either may be 0)."""
        self._tts_chars += characters
        self._agent_audio_ms += audio_ms

    def add_cpu(self, component: str, seconds: float) -> None:
        """CPU seconds a local model spent (``"stt"``, ``"tts"``, ``"vad"``, …)."""
        self._cpu[component] = self._cpu.get(component, 0.0) + seconds

    def _stt_usd(self) -> float:
        stt = self._serving.stt
        return stt.per_minute * self._stt_ms / 60_000 if stt is not None else 0.0

    def _tts_usd(self) -> float:
        tts = self._serving.tts
        if tts is None:
            return 0.0
        return (
            tts.per_million_characters * self._tts_chars / 1_000_000
            + tts.per_audio_minute * self._agent_audio_ms / 60_000
        )

    def breakdown(self, duration_ms: float) -> CostBreakdown:
        """What the call has cost after ``duration_ms`` on the line."""
        line = self._telephony * duration_ms / 60_000 if self._telephony is not None else 0.0
        return CostBreakdown(
            realtime=self._realtime_usd,
            llm=self._chat_usd,
            stt=self._stt_usd_done + self._stt_usd(),
            tts=self._tts_usd_done + self._tts_usd(),
            telephony=line,
            cpu_seconds=dict(self._cpu),
            unpriced=tuple(dict.fromkeys(self._unpriced)),
        )

"""The end-of-turn model: signals in, one wait out.

The seam an engine calls at every pause, once the speculative transcript is in
(sans-I/O, pure Python, ~20–60 µs per call: safe on the event loop)::

    model = EndOfTurn(EndOfTurnConfig())              # or eagerness_config("low")
    decision = model.decide(EndOfTurnInput(
        transcript="My number is 555 123",            # what the caller said so far
        pause_ms=256.0,                               # silence so far (informational)
        last_agent_text="What's your phone number?",  # the dialogue context
        phase=None,                                   # a flow phase's PhasePolicy
        audio_p_finished=None,                        # Smart Turn's p, if it ran
    ))
    detector.set_end_of_turn_silence(decision.wait_ms)

The signals (each alone measurable by switching the others off in the config):

- ``syntax`` — :func:`~parley.endpointing.syntax.syntax_estimate`;
- ``context`` — :func:`~parley.endpointing.context.context_estimate` against what the
  agent asked (or what the phase expects);
- ``audio`` — an audio model's probability that the turn is finished
  (:class:`parley.providers.smart_turn.SmartTurn`); it is inference, so the engine
  runs it with ``run_blocking`` and passes the number in. Weight 0 by default: it is
  trained on human speech and on Piper's voice says "finished" at most mid-sentence
  pauses (see ``bench/turns.py``).

They are combined as weighted log-odds (:func:`~parley.endpointing.estimate.combine`)
into ``p`` = probability that the caller is done, and the wait follows ``p``
(adaptive silence): ``short_ms`` when surely finished (p ≥ ``p_high``), ``long_ms``
when surely unfinished (p ≤ ``p_low``), piecewise linear through ``unsure_ms`` at
p = 0.5 in between. ``pending_ms`` is the acoustic wait before any transcript is in
(the TurnDetector's ``end_of_turn_silence_ms``): long, because a fast transcript
(:mod:`parley.providers.quick_whisper`) is in ~100–200 ms after the pause anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, TypeAlias

from parley.endpointing.context import Expectation, context_estimate, expectation_from
from parley.endpointing.estimate import Estimate, combine
from parley.endpointing.syntax import syntax_estimate
from parley.errors import ConfigError
from parley.turns import TurnConfig

__all__ = [
    "EAGERNESS",
    "Decision",
    "Eagerness",
    "EndOfTurn",
    "EndOfTurnConfig",
    "EndOfTurnInput",
    "PhasePolicy",
    "Verdict",
    "eagerness_config",
]

Verdict: TypeAlias = Literal["complete", "incomplete", "unsure"]
Eagerness: TypeAlias = Literal["low", "medium", "high", "auto"]


@dataclass(frozen=True, slots=True)
class EndOfTurnConfig:
    """The wait curve (ms of silence after the end of speech) and the signal weights.

    ``syntax_weight`` / ``context_weight`` / ``audio_weight`` scale each signal's
    log-odds (0 switches it off). ``pending_ms`` is the wait while no transcript is
    in yet; put it into ``TurnConfig.end_of_turn_silence_ms`` (:meth:`EndOfTurn.pending_ms`).
    """

    short_ms: float = 160.0
    unsure_ms: float = 960.0
    long_ms: float = 1504.0
    pending_ms: float = 1504.0
    p_high: float = 0.9
    p_low: float = 0.2
    syntax_weight: float = 1.0
    context_weight: float = 1.0
    audio_weight: float = 0.0

    def __post_init__(self) -> None:
        for name in ("short_ms", "unsure_ms", "long_ms", "pending_ms"):
            if not getattr(self, name) > 0.0:  # also rejects NaN
                raise ConfigError("must be > 0", field=name)
        if not self.short_ms <= self.unsure_ms <= self.long_ms:
            raise ConfigError("must be short_ms ≤ unsure_ms ≤ long_ms", field="unsure_ms")
        if not 0.0 < self.p_low < 0.5 < self.p_high < 1.0:
            raise ConfigError("must be 0 < p_low < 0.5 < p_high < 1", field="p_high")
        for name in ("syntax_weight", "context_weight", "audio_weight"):
            if not getattr(self, name) >= 0.0:
                raise ConfigError("must be ≥ 0", field=name)

    def wait_for(self, p: float) -> float:
        """The silence (ms) that ends a turn finished with probability ``p``."""
        if p >= self.p_high:
            return self.short_ms
        if p <= self.p_low:
            return self.long_ms
        if p >= 0.5:
            f = (p - 0.5) / (self.p_high - 0.5)
            return self.unsure_ms + f * (self.short_ms - self.unsure_ms)
        f = (0.5 - p) / (0.5 - self.p_low)
        return self.unsure_ms + f * (self.long_ms - self.unsure_ms)


#: OpenAI ``semantic_vad`` ``eagerness`` → the model's wait curve. ``auto`` is
#: ``medium``; ``low`` lets the caller take their time (dictation), ``high`` answers
#: soonest and accepts more cut-offs (``bench/turns.py`` measures each).
EAGERNESS: dict[Eagerness, EndOfTurnConfig] = {
    "low": EndOfTurnConfig(
        short_ms=320.0, unsure_ms=1248.0, long_ms=2016.0, pending_ms=2016.0, p_high=0.93
    ),
    "medium": EndOfTurnConfig(),
    "auto": EndOfTurnConfig(),
    "high": EndOfTurnConfig(
        short_ms=96.0, unsure_ms=480.0, long_ms=992.0, pending_ms=992.0, p_high=0.75, p_low=0.25
    ),
}


def eagerness_config(eagerness: str | None, base: EndOfTurnConfig | None = None) -> EndOfTurnConfig:
    """The wait curve for an OpenAI ``semantic_vad`` eagerness (``None``/unknown → auto).

    ``base`` keeps its signal weights (e.g. Smart Turn switched on) and takes the
    eagerness' waits and thresholds.
    """
    curve = next((c for k, c in EAGERNESS.items() if k == eagerness), EAGERNESS["auto"])
    if base is None:
        return curve
    return replace(
        base,
        short_ms=curve.short_ms,
        unsure_ms=curve.unsure_ms,
        long_ms=curve.long_ms,
        pending_ms=curve.pending_ms,
        p_high=curve.p_high,
        p_low=curve.p_low,
    )


@dataclass(frozen=True, slots=True)
class PhasePolicy:
    """What a flow phase tells the end-of-turn model (data a phase can carry).

    ``expect`` replaces the expectation read from the agent's words ("collecting a
    phone number: wait for the digits" is ``PhasePolicy(Expectation.number(10))``);
    ``eagerness`` picks another wait curve; ``min_wait_ms`` / ``max_wait_ms`` clamp
    the wait this phase allows.
    """

    expect: Expectation | None = None
    eagerness: Eagerness | None = None
    min_wait_ms: float | None = None
    max_wait_ms: float | None = None

    @classmethod
    def collecting(cls, label: str, digits: int | None = None) -> PhasePolicy:
        """A phase that collects ``label`` (e.g. "phone number", 10 digits)."""
        kind = "email" if "mail" in label else "digits"
        return cls(expect=Expectation(kind, digits, label), eagerness="low")  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class EndOfTurnInput:
    """Everything the model may look at; only ``transcript`` is required."""

    transcript: str
    pause_ms: float = 0.0
    last_agent_text: str | None = None
    phase: PhasePolicy | None = None
    audio_p_finished: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """How long the silence must last (ms after the end of speech) to end this turn,
    the verdict it comes from, ``confidence`` = p(finished), and each signal's say."""

    wait_ms: float
    verdict: Verdict
    confidence: float
    signals: tuple[tuple[str, Estimate], ...] = field(default=())

    @property
    def reasons(self) -> str:
        return "; ".join(f"{name}: {e.reason} ({e.p_finished:.2f})" for name, e in self.signals)


class EndOfTurn:
    """Combines the signals into a :class:`Decision` (stateless: one per process is fine)."""

    def __init__(self, config: EndOfTurnConfig | None = None) -> None:
        self.config = config or EndOfTurnConfig()
        # The phase's eagerness curves, made once (decide() allocates no configs).
        self._curves = {k: eagerness_config(k, self.config) for k in EAGERNESS}

    @property
    def pending_ms(self) -> float:
        """The acoustic wait until a transcript is in (TurnConfig.end_of_turn_silence_ms)."""
        return self.config.pending_ms

    def pending_for(self, phase: PhasePolicy | None) -> float:
        """The acoustic wait until the transcript is in, under ``phase``'s curve and
        clamps (the model's own ``pending_ms`` without one)."""
        curve = self.config
        if phase is not None and phase.eagerness is not None:
            curve = self._curves[phase.eagerness]
        return _clamp(curve.pending_ms, phase)

    def turn_config(self, base: TurnConfig | None = None) -> TurnConfig:
        """``base`` (default ``TurnConfig()``) with this model's pending wait: what the
        TurnDetector should run with when this model sets the waits."""
        return replace(base or TurnConfig(), end_of_turn_silence_ms=self.config.pending_ms)

    def signals(self, inp: EndOfTurnInput) -> list[tuple[str, Estimate]]:
        """Each signal's opinion, already weighted by the config (silent ones left out)."""
        cfg = self.config
        out: list[tuple[str, Estimate]] = []
        if cfg.syntax_weight > 0 and (s := syntax_estimate(inp.transcript)) is not None:
            out.append(("syntax", replace(s, weight=s.weight * cfg.syntax_weight)))
        if cfg.context_weight > 0:
            expect = (
                inp.phase.expect
                if inp.phase is not None and inp.phase.expect is not None
                else expectation_from(inp.last_agent_text)
            )
            if (c := context_estimate(inp.transcript, expect)) is not None:
                out.append(("context", replace(c, weight=c.weight * cfg.context_weight)))
        if cfg.audio_weight > 0 and inp.audio_p_finished is not None:
            out.append(("audio", Estimate(inp.audio_p_finished, "audio model", cfg.audio_weight)))
        return out

    def decide(self, inp: EndOfTurnInput) -> Decision:
        signals = self.signals(inp)
        p = combine(e for _, e in signals) if signals else 0.5
        curve = self.config
        phase = inp.phase
        if phase is not None and phase.eagerness is not None:
            curve = self._curves[phase.eagerness]
        wait = _clamp(curve.wait_for(p), phase)
        verdict: Verdict = (
            "complete" if p >= curve.p_high else "incomplete" if p <= curve.p_low else "unsure"
        )
        return Decision(wait, verdict, p, tuple(signals))


def _clamp(wait: float, phase: PhasePolicy | None) -> float:
    if phase is not None:
        if phase.min_wait_ms is not None:
            wait = max(wait, phase.min_wait_ms)
        if phase.max_wait_ms is not None:
            wait = min(wait, phase.max_wait_ms)
    return wait

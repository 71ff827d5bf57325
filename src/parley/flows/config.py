"""``FlowConfig``: a guided conversation declared as phases with goals.

A flow is a goal, an initial phase and a list of phases. Each phase has the
instructions the model follows while in it, the success criteria it must mark as
met and the observations it must record before it may leave, the phases it may
move to next, and an optional turn budget. A phase with no next phases is final:
the flow is complete when a final phase's requirements are met.

    name: restaurant_ordering
    goal: Take a complete pickup order.
    initial: greeting
    phases:
      - name: greeting
        instructions: Greet the caller and ask for their name.
        observations: [customer_name]
        next: [ordering]
      - name: ordering
        instructions: Take the order item by item.
        criteria: [order_complete]
        next: [confirmation]
        max_turns: 8
      ...

A phase may set how the end of the caller's turn is judged while it runs
(``turn_taking``, a :class:`~parley.endpointing.PhasePolicy`): what answer it
collects (``expect: digits`` with ``digits: 10`` for a phone number, ``email``,
``date``, ``yes_no``, ``answer``), an OpenAI-style ``eagerness`` (low waits
longest) and ``min_wait_ms``/``max_wait_ms`` bounds. A phase collecting a phone
number then waits for the ten digits however long the caller pauses between them::

      - name: callback
        instructions: Ask for a callback number.
        turn_taking: {expect: digits, digits: 10, label: phone number, eagerness: low}

A phase's budget is ``max_turns`` (agent replies) and/or ``max_seconds`` (time in the
phase, checked at the end of each reply); when one is used up the flow moves to
``on_budget_exhausted`` if the phase names one, else the model is told to finish.

A phase may also branch on the caller's keypad: ``on_digit: {"1": sales, "2":
support}`` moves to that next phase when the digit is pressed (any phone
platform's DTMF), whatever its criteria say — the caller chose.

Everything is checked at load, and every error names the phase at fault: a next
phase that does not exist, a phase the initial phase can never reach, a phase
from which no final phase can be reached (a cycle without an exit), a missing or
unknown initial phase, duplicate names.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from parley.endpointing import Expectation, PhasePolicy
from parley.errors import ConfigError

__all__ = ["Criterion", "FlowConfig", "Phase", "load_flow"]

_NAME = r"^[A-Za-z_][A-Za-z0-9_\-]*$"
_DTMF = frozenset("0123456789*#ABCD")


@dataclass(frozen=True, slots=True)
class Criterion:
    """A success criterion of a phase: an identifier the model passes to
    ``mark_criterion_met`` and, optionally, what it means."""

    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    instructions: str
    criteria: tuple[Criterion, ...] = ()
    observations: tuple[str, ...] = ()  # keys that must be recorded before leaving
    next: tuple[str, ...] = ()  # allowed next phases; none = a final phase
    max_turns: int | None = None  # agent replies this phase may take
    max_seconds: float | None = None  # time this phase may take, checked after each reply
    on_budget_exhausted: str | None = None  # where to go when a budget is used up
    on_digit: Mapping[str, str] = field(default_factory=dict)  # DTMF digit -> next phase
    turn_taking: PhasePolicy | None = None  # the end-of-turn policy while in this phase

    @property
    def final(self) -> bool:
        return not self.next

    @property
    def criterion_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.criteria)


# -- the file format (pydantic: configuration is validated with pydantic) ----------------


class _CriterionModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=_NAME, max_length=100)
    description: str = Field(default="", max_length=2000)


class _TurnTakingModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expect: Literal["digits", "email", "yes_no", "date", "answer", "open"] | None = None
    digits: int | None = Field(default=None, ge=1, le=32)
    label: str = Field(default="", max_length=100)
    eagerness: Literal["low", "medium", "high", "auto"] | None = None
    min_wait_ms: float | None = Field(default=None, gt=0, le=10_000)
    max_wait_ms: float | None = Field(default=None, gt=0, le=10_000)

    @model_validator(mode="after")
    def _consistent(self) -> _TurnTakingModel:
        if self.digits is not None and self.expect != "digits":
            raise ValueError("digits needs expect: digits")
        lo, hi = self.min_wait_ms, self.max_wait_ms
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_wait_ms is longer than max_wait_ms")
        return self

    def policy(self) -> PhasePolicy:
        expect = None
        if self.expect is not None:
            expect = Expectation(self.expect, self.digits, self.label or self.expect)
        return PhasePolicy(expect, self.eagerness, self.min_wait_ms, self.max_wait_ms)


class _PhaseModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field(pattern=_NAME, max_length=100)
    instructions: str = Field(min_length=1, max_length=20_000)
    criteria: list[_CriterionModel] = Field(default_factory=list)
    observations: list[str] = Field(default_factory=list)
    next: list[str] = Field(default_factory=list)
    max_turns: int | None = Field(default=None, ge=1, le=1000)
    max_seconds: float | None = Field(default=None, gt=0, le=86_400)
    on_budget_exhausted: str | None = None
    on_digit: dict[str, str] = Field(default_factory=dict)
    turn_taking: _TurnTakingModel | None = None

    @field_validator("criteria", mode="before")
    @classmethod
    def _plain_strings(cls, value: Any) -> Any:
        # "- order_complete" is shorthand for "- name: order_complete".
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value


class _FlowModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="flow", min_length=1, max_length=100)
    goal: str = Field(min_length=1, max_length=5000)
    initial: str | None = None
    phases: list[dict[str, Any]] = Field(min_length=1)


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'flow'}: {err['msg']}" for err in exc.errors()
    )


@dataclass(frozen=True, slots=True)
class FlowConfig:
    """A validated flow. Build it with :meth:`from_dict`, :meth:`from_yaml` or
    :func:`load_flow`; the constructor validates too."""

    goal: str
    phases: tuple[Phase, ...]
    initial: str
    name: str = "flow"
    # Fewest phases still to enter from each phase to reach a final one (0 if final).
    _remaining: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_remaining", _validate(self))

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlowConfig:
        if not isinstance(data, Mapping):
            raise ConfigError(
                "a flow must be a mapping with goal, initial and phases", field="flow"
            )
        try:
            model = _FlowModel.model_validate(dict(data))
        except ValidationError as exc:
            raise ConfigError(_describe(exc), field="flow") from exc
        phases: list[Phase] = []
        for index, raw in enumerate(model.phases):
            label = raw.get("name") if isinstance(raw, dict) else None
            where = f"phase {label!r}" if isinstance(label, str) else f"phases.{index}"
            try:
                p = _PhaseModel.model_validate(raw)
            except ValidationError as exc:
                raise ConfigError(_describe(exc), field=where) from exc
            phases.append(
                Phase(
                    name=p.name,
                    instructions=p.instructions.strip(),
                    criteria=tuple(Criterion(c.name, c.description.strip()) for c in p.criteria),
                    observations=tuple(p.observations),
                    next=tuple(p.next),
                    max_turns=p.max_turns,
                    max_seconds=p.max_seconds,
                    on_budget_exhausted=p.on_budget_exhausted,
                    on_digit=dict(p.on_digit),
                    turn_taking=p.turn_taking.policy() if p.turn_taking is not None else None,
                )
            )
        if model.initial is None:
            raise ConfigError("the flow names no initial phase", field="initial")
        return cls(
            goal=model.goal.strip(), phases=tuple(phases), initial=model.initial, name=model.name
        )

    @classmethod
    def from_yaml(cls, text: str) -> FlowConfig:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"not valid YAML: {exc}", field="flow") from exc
        return cls.from_dict(data)

    # -- queries -------------------------------------------------------------------------

    def phase(self, name: str) -> Phase:
        for p in self.phases:
            if p.name == name:
                return p
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.phases)

    @property
    def phase_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.phases)

    def remaining_after(self, name: str) -> int:
        """How many phases at least are still to enter from ``name`` to finish."""
        return self._remaining[name]

    def as_dict(self) -> dict[str, Any]:
        """The flow as :meth:`from_dict` reads it (what the session store keeps)."""
        phases: list[dict[str, Any]] = []
        for p in self.phases:
            out: dict[str, Any] = {
                "name": p.name,
                "instructions": p.instructions,
                "criteria": [{"name": c.name, "description": c.description} for c in p.criteria],
                "observations": list(p.observations),
                "next": list(p.next),
            }
            optional = {
                "max_turns": p.max_turns,
                "max_seconds": p.max_seconds,
                "on_budget_exhausted": p.on_budget_exhausted,
            }
            out.update({k: v for k, v in optional.items() if v is not None})
            if p.on_digit:
                out["on_digit"] = dict(p.on_digit)
            phases.append(out)
        return {"name": self.name, "goal": self.goal, "initial": self.initial, "phases": phases}


def load_flow(source: str | Path | Mapping[str, Any] | FlowConfig) -> FlowConfig:
    """A flow from a YAML file path, a mapping, or a FlowConfig (returned as is)."""
    if isinstance(source, FlowConfig):
        return source
    if isinstance(source, Mapping):
        return FlowConfig.from_dict(source)
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read flow file {path}: {exc.strerror}", field="flow") from exc
    try:
        return FlowConfig.from_yaml(text)
    except ConfigError as exc:
        raise ConfigError(f"{path.name}: {exc}", field=exc.field) from exc


# -- validation --------------------------------------------------------------------------


def _validate(flow: FlowConfig) -> dict[str, int]:
    """Check the phase graph; returns the fewest phases left from each phase."""
    names = [p.name for p in flow.phases]
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ConfigError(f"phase {n!r} is defined twice", field=f"phase {n!r}")
        seen.add(n)
    if not flow.initial:
        raise ConfigError("the flow names no initial phase", field="initial")
    if flow.initial not in seen:
        raise ConfigError(
            f"initial phase {flow.initial!r} is not one of the phases ({', '.join(names)})",
            field="initial",
        )
    for p in flow.phases:
        where = f"phase {p.name!r}"
        for target in p.next:
            if target not in seen:
                raise ConfigError(f"next phase {target!r} is not defined", field=where)
        if p.name in p.next:
            raise ConfigError("a phase cannot list itself as its next phase", field=where)
        if len(set(p.criterion_names)) != len(p.criteria):
            raise ConfigError("a criterion is listed twice", field=where)
        if p.on_budget_exhausted is not None:
            if p.max_turns is None and p.max_seconds is None:
                raise ConfigError("on_budget_exhausted needs max_turns or max_seconds", field=where)
            if p.on_budget_exhausted not in p.next:
                raise ConfigError(
                    f"on_budget_exhausted {p.on_budget_exhausted!r} is not one of its next "
                    f"phases ({', '.join(p.next) or 'none: the phase is final'})",
                    field=where,
                )
        for digit, target in p.on_digit.items():
            if digit not in _DTMF:
                raise ConfigError(
                    f"on_digit {digit!r} is not a DTMF key (0-9 * # A-D)", field=where
                )
            if target not in p.next:
                raise ConfigError(
                    f"on_digit {digit!r} goes to {target!r}, which is not one of its next "
                    f"phases ({', '.join(p.next) or 'none: the phase is final'})",
                    field=where,
                )
    # Reachable from the initial phase (breadth first).
    graph = {p.name: p.next for p in flow.phases}
    reached = {flow.initial}
    queue = deque([flow.initial])
    while queue:
        for target in graph[queue.popleft()]:
            if target not in reached:
                reached.add(target)
                queue.append(target)
    for n in names:
        if n not in reached:
            raise ConfigError(
                f"phase {n!r} is unreachable from the initial phase {flow.initial!r}",
                field=f"phase {n!r}",
            )
    # Distance to a final phase, backwards from the final phases. A phase with none
    # is stuck: it can only lead round a cycle that never exits.
    incoming: dict[str, list[str]] = {n: [] for n in names}
    for src, targets in graph.items():
        for t in targets:
            incoming[t].append(src)
    remaining = {n: 0 for n in names if not graph[n]}
    queue = deque(remaining)
    while queue:
        cur = queue.popleft()
        for src in incoming[cur]:
            if src not in remaining:
                remaining[src] = remaining[cur] + 1
                queue.append(src)
    stuck = [n for n in names if n not in remaining]
    if stuck:
        first = stuck[0]
        cycle = _cycle_from(first, graph, set(stuck))
        raise ConfigError(
            f"phase {first!r} is in a cycle without an exit ({' -> '.join(cycle)}): "
            "no final phase (one with no next phases) can be reached from it",
            field=f"phase {first!r}",
        )
    return remaining


def _cycle_from(start: str, graph: Mapping[str, tuple[str, ...]], stuck: set[str]) -> list[str]:
    """A cycle among ``stuck`` phases reached from ``start``, for the error message.
    Every stuck phase has a stuck successor (else it would reach a final phase or be
    final itself), so following them must revisit a phase."""
    path = [start]
    index = {start: 0}
    cur = start
    while True:
        cur = next(t for t in graph[cur] if t in stuck)
        if cur in index:
            return [*path[index[cur] :], cur]
        index[cur] = len(path)
        path.append(cur)

"""``ProgressTracker``: where a guided conversation stands.

It holds what the model has recorded (observations), which criteria it has marked
as met in which phase, the phases entered so far and the replies spent in the
current one, and turns that into a :class:`Progress` snapshot with a completion
percentage.

The percentage counts phases: the phases left behind, plus the share of the
current phase's requirements (criteria and required observations) that is done,
over the phases left behind, the current one, and the fewest phases still to
enter before a final one. A flow is 100 % complete exactly when it stands in a
final phase whose requirements are all met.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from parley.flows.config import FlowConfig, Phase

__all__ = ["Progress", "ProgressTracker"]


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot, safe to hand to another task or serialise (:meth:`as_dict`)."""

    flow: str
    goal: str
    phase: str
    phases_visited: tuple[str, ...]
    completed_criteria: dict[str, tuple[str, ...]]  # phase → criteria met there
    pending_criteria: tuple[str, ...]  # of the current phase
    observations: dict[str, Any]
    missing_observations: tuple[str, ...]  # required by the current phase
    percent: float
    complete: bool
    turns_in_phase: int
    turn_budget: int | None
    seconds_in_phase: float = 0.0
    time_budget_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "goal": self.goal,
            "phase": self.phase,
            "phases_visited": list(self.phases_visited),
            "completed_criteria": {k: list(v) for k, v in self.completed_criteria.items()},
            "pending_criteria": list(self.pending_criteria),
            "observations": dict(self.observations),
            "missing_observations": list(self.missing_observations),
            "percent": self.percent,
            "complete": self.complete,
            "turns_in_phase": self.turns_in_phase,
            "turn_budget": self.turn_budget,
            "seconds_in_phase": self.seconds_in_phase,
            "time_budget_s": self.time_budget_s,
        }


class ProgressTracker:
    """The mutable state of one call's flow; :class:`FlowController` drives it."""

    def __init__(self, flow: FlowConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.flow = flow
        self._clock = clock
        self.entered_at = clock()
        self.phase: Phase = flow.phase(flow.initial)
        self.visited: list[str] = [flow.initial]
        self.observations: dict[str, Any] = {}
        self.met: dict[str, list[str]] = {}  # phase → criteria, in the order met
        self.turns_in_phase = 0

    # -- changes -------------------------------------------------------------------------

    def record(self, key: str, value: Any) -> None:
        self.observations[key] = value  # a newer value for a key replaces the older

    def mark(self, criterion: str) -> bool:
        """Mark a criterion of the current phase; False if it was already met."""
        done = self.met.setdefault(self.phase.name, [])
        if criterion in done:
            return False
        done.append(criterion)
        return True

    def enter(self, name: str) -> None:
        self.phase = self.flow.phase(name)
        self.visited.append(name)
        # Coming back to a phase starts it afresh: its criteria must be met again.
        self.met.pop(name, None)
        self.turns_in_phase = 0
        self.entered_at = self._clock()

    def count_turn(self) -> int:
        self.turns_in_phase += 1
        return self.turns_in_phase

    # -- queries -------------------------------------------------------------------------

    def pending_criteria(self) -> tuple[str, ...]:
        done = self.met.get(self.phase.name, [])
        return tuple(c for c in self.phase.criterion_names if c not in done)

    def missing_observations(self) -> tuple[str, ...]:
        return tuple(k for k in self.phase.observations if k not in self.observations)

    def phase_done(self) -> bool:
        return not self.pending_criteria() and not self.missing_observations()

    @property
    def seconds_in_phase(self) -> float:
        return self._clock() - self.entered_at

    @property
    def turns_exhausted(self) -> bool:
        budget = self.phase.max_turns
        return budget is not None and self.turns_in_phase >= budget

    @property
    def time_exhausted(self) -> bool:
        budget = self.phase.max_seconds
        return budget is not None and self.seconds_in_phase >= budget

    @property
    def budget_exhausted(self) -> bool:
        return self.turns_exhausted or self.time_exhausted

    def percent(self) -> float:
        phase = self.phase
        required = len(phase.criteria) + len(phase.observations)
        left = len(self.pending_criteria()) + len(self.missing_observations())
        share = 1.0 if required == 0 else (required - left) / required
        behind = len(self.visited) - 1
        total = behind + 1 + self.flow.remaining_after(phase.name)
        return round(100.0 * (behind + share) / total, 1)

    def snapshot(self) -> Progress:
        complete = self.phase.final and self.phase_done()
        return Progress(
            flow=self.flow.name,
            goal=self.flow.goal,
            phase=self.phase.name,
            phases_visited=tuple(self.visited),
            completed_criteria={k: tuple(v) for k, v in self.met.items() if v},
            pending_criteria=self.pending_criteria(),
            observations=dict(self.observations),
            missing_observations=self.missing_observations(),
            percent=100.0 if complete else min(self.percent(), 99.9),
            complete=complete,
            turns_in_phase=self.turns_in_phase,
            turn_budget=self.phase.max_turns,
            seconds_in_phase=round(self.seconds_in_phase, 3),
            time_budget_s=self.phase.max_seconds,
        )

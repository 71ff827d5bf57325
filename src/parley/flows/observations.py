"""``ObservationTracker``: the notes and user data of one guided conversation.

A thin view over the call's :class:`~parley.flows.controller.FlowController`, so what
the app records and what the model records (its ``record_observation`` tool) are the
same data, checked by the same rules: a phase cannot be left before its required
observations are recorded, whoever recorded them. Get a call's tracker from
``app.observations(session_id)`` or, in an event handler, ``self.observations``::

    tracker = app.observations(session_id)
    tracker.add_observation("party_size", 4)
    tracker.criteria_met("greeting_complete")
    tracker.observations            # {"party_size": 4}
    tracker.missing                 # what the current phase still needs
"""

from __future__ import annotations

from typing import Any

from parley.flows.controller import FlowController
from parley.flows.progress import Progress

__all__ = ["ObservationTracker"]


class ObservationTracker:
    def __init__(self, controller: FlowController) -> None:
        self.controller = controller

    @property
    def phase(self) -> str:
        """The current phase's name."""
        return self.controller.phase

    @property
    def observations(self) -> dict[str, Any]:
        """Everything recorded so far (a copy), key → value; a newer value replaces."""
        return dict(self.controller.tracker.observations)

    def get(self, key: str, default: Any = None) -> Any:
        return self.controller.tracker.observations.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.controller.tracker.observations

    @property
    def missing(self) -> tuple[str, ...]:
        """The current phase's required observations not yet recorded."""
        return self.controller.tracker.missing_observations()

    @property
    def pending_criteria(self) -> tuple[str, ...]:
        return self.controller.tracker.pending_criteria()

    def add_observation(self, key: str, value: Any) -> dict[str, Any]:
        """Record ``value`` under ``key``: the tool's answer (``ok``, or ``reason``)."""
        return self.controller.record_observation(key, value)

    def criteria_met(self, criterion: str) -> dict[str, Any]:
        """Mark a success criterion of the current phase as met (``ok`` or ``reason``)."""
        return self.controller.mark_criterion_met(criterion)

    def progress(self) -> Progress:
        return self.controller.progress()

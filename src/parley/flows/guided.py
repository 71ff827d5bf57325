"""``GuidedConversation``: seed 002's ``ConversationConfig``, the JSON body of ``POST
/conversations`` that gives one conversation its own guided flow.

The document's shape — a goal, an initial phase, system instructions and phases
keyed by name, each with instructions, success criteria, required observations and
next phases — is a spelling of :class:`~parley.flows.config.FlowConfig`, and
:meth:`GuidedConversation.to_flow` is the translation (validated like any flow: an
error names the phase at fault). Parley's own phase fields (``max_turns``,
``on_budget_exhausted``, ``on_digit``, criteria with descriptions) are accepted
too, so every Parley flow can be written this way (:meth:`from_flow`)::

    {"name": "AI Waiter", "goal": "Take a complete order", "initial_phase": "greeting",
     "system_instructions": "You are a friendly waiter.",
     "phases": {"greeting": {"name": "Greeting", "instructions": "Welcome the guest.",
                             "success_criteria": ["greeted"],
                             "required_observations": ["party_size"],
                             "next_phases": ["order"]}, ...},
     "max_duration_seconds": 1800, "voice": "alloy"}

What each field becomes: a phase's key is its name (``name`` is a title for people);
``max_duration_seconds`` of a phase is its time budget (``Phase.max_seconds``), of
the conversation the call's maximum length; the free-form ``completion_rules`` and
``completion_criteria`` are told to the model with the phase's instructions and the
goal (nothing can check free text).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from parley.errors import ConfigError
from parley.flows.config import FlowConfig

__all__ = ["MAX_PHASES", "ConversationPhase", "CriterionSpec", "GuidedConversation"]

#: Bounds of one body (issue 10): a flow is a page of instructions, not a corpus.
MAX_PHASES: Final = 50
_MAX_ITEMS: Final = 50
_MAX_RULES_BYTES: Final = 8 * 1024


def _valid_unicode(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text with a lone surrogate (not valid Unicode)") from None
    return value


def _small(value: dict[str, Any]) -> dict[str, Any]:
    try:
        size = len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("text with a lone surrogate (not valid Unicode)") from None
    if size > _MAX_RULES_BYTES:
        raise ValueError(f"{size} bytes of JSON, over the {_MAX_RULES_BYTES} allowed")
    return value


Text = Annotated[str, AfterValidator(_valid_unicode)]
Key = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_valid_unicode)]
Rules = Annotated[dict[Key, Any], AfterValidator(_small)]


class CriterionSpec(BaseModel):
    """A criterion with a description (Parley's; a plain string is a name alone)."""

    model_config = ConfigDict(extra="forbid")
    name: Key
    description: Text = Field(default="", max_length=2000)


class ConversationPhase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, max_length=200, description="a title for people")
    instructions: Text = Field(min_length=1, max_length=20_000)
    success_criteria: list[Key | CriterionSpec] = Field(default_factory=list, max_length=_MAX_ITEMS)
    required_observations: list[Key] = Field(default_factory=list, max_length=_MAX_ITEMS)
    next_phases: list[Key] = Field(default_factory=list, max_length=_MAX_ITEMS)
    max_duration_seconds: float | None = Field(default=None, gt=0, le=86_400)
    completion_rules: Rules = Field(default_factory=dict)
    # Parley's own phase fields (parley.flows.config)
    max_turns: int | None = Field(default=None, ge=1, le=1000)
    on_budget_exhausted: Key | None = None
    on_digit: dict[Annotated[str, Field(max_length=1)], Key] = Field(
        default_factory=dict, max_length=16
    )


class GuidedConversation(BaseModel):
    """The document's ``ConversationConfig`` (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, min_length=1, max_length=100)
    goal: Text = Field(min_length=1, max_length=5000)
    initial_phase: Key
    system_instructions: Text = Field(default="", max_length=20_000)
    phases: dict[Key, ConversationPhase] = Field(min_length=1, max_length=MAX_PHASES)
    max_duration_seconds: float | None = Field(default=None, gt=0, le=86_400)
    completion_criteria: Rules = Field(default_factory=dict)
    voice: Text | None = Field(default=None, min_length=1, max_length=100)

    @classmethod
    def parse(cls, data: Any) -> GuidedConversation:
        """Validate ``data`` (a mapping), raising ``ConfigError`` naming the field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "flow"
            raise ConfigError(str(err["msg"]), field=where) from exc

    def to_flow(self) -> FlowConfig:
        """The Parley flow this conversation follows (``ConfigError`` naming the phase
        at fault when the graph is wrong: an unknown next phase, an unreachable phase…)."""
        phases: list[dict[str, Any]] = []
        for key, p in self.phases.items():
            phase: dict[str, Any] = {
                "name": key,
                "instructions": _with_rules(p.instructions, p.completion_rules, "This phase"),
                "criteria": [
                    c if isinstance(c, str) else c.model_dump() for c in p.success_criteria
                ],
                "observations": list(p.required_observations),
                "next": list(p.next_phases),
                "max_turns": p.max_turns,
                "max_seconds": p.max_duration_seconds,
                "on_budget_exhausted": p.on_budget_exhausted,
                "on_digit": dict(p.on_digit),
            }
            phases.append(phase)
        return FlowConfig.from_dict(
            {
                "name": self.name or "flow",
                "goal": _with_rules(self.goal, self.completion_criteria, "The conversation"),
                "initial": self.initial_phase,
                "phases": phases,
            }
        )

    @classmethod
    def from_flow(
        cls,
        flow: FlowConfig,
        *,
        system_instructions: str = "",
        voice: str | None = None,
        max_duration_seconds: float | None = None,
    ) -> GuidedConversation:
        """A Parley flow in the document's shape (what ``POST /conversations`` takes)."""
        phases = {
            p.name: ConversationPhase(
                instructions=p.instructions,
                success_criteria=[
                    CriterionSpec(name=c.name, description=c.description)
                    if c.description
                    else c.name
                    for c in p.criteria
                ],
                required_observations=list(p.observations),
                next_phases=list(p.next),
                max_duration_seconds=p.max_seconds,
                max_turns=p.max_turns,
                on_budget_exhausted=p.on_budget_exhausted,
                on_digit=dict(p.on_digit),
            )
            for p in flow.phases
        }
        return cls(
            name=flow.name,
            goal=flow.goal,
            initial_phase=flow.initial,
            system_instructions=system_instructions,
            phases=phases,
            max_duration_seconds=max_duration_seconds,
            voice=voice,
        )

    def body(self) -> dict[str, Any]:
        """The JSON body of ``POST /conversations`` (unset fields left out)."""
        return self.model_dump(mode="json", exclude_defaults=True)


def _with_rules(text: str, rules: dict[str, Any], whose: str) -> str:
    """Free-form completion rules appended for the model to follow."""
    if not rules:
        return text
    said = "; ".join(
        f"{k}: {v}" if isinstance(v, str) else f"{k}: {json.dumps(v, default=str)}"
        for k, v in rules.items()
    )
    return f"{text}\n{whose} is complete when: {said}"

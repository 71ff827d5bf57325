"""``FlowController``: one call's guided flow, driven by the model through tools.

The controller is a :class:`~parley.engines.seams.ToolRunner`. It offers the model
three tools next to the app's own (which it runs by delegation):

- ``record_observation(key, value)`` — something learnt about the caller;
- ``mark_criterion_met(criterion)`` — a success criterion of the current phase;
- ``transition_to(phase)`` — move on; refused, with the reason as the tool's
  result, while the current phase's criteria or required observations are
  unmet, or when the phase is not one the current phase may move to.

On a phase change it calls ``engine.update(instructions=…, tools=self,
turn_taking=…)`` (the new phase's end-of-turn policy, :attr:`Phase.turn_taking
<parley.flows.config.Phase.turn_taking>`; the :class:`FlowEngine` gives the initial
phase's before the engine runs); both engines apply that to their next model call
without touching the reply in progress, so the call goes on (a hosted
speech-to-speech model decides its own turns: the policy is the cascade's). Its
tool list is computed per phase, and since the engine holds the controller itself,
even the model call that follows the ``transition_to`` result in the same reply
sees the new phase's tools.

``attach(engine)`` wraps the engine in a :class:`FlowEngine` that adds
:class:`~parley.events.PhaseChanged` to the engine's events (so it reaches the
conversation's event hooks like any other event) and counts the replies of each
phase for the turn budget (a reply counts when it said something). A phase whose
``max_turns`` replies (or ``max_seconds``, checked as each reply ends) are used up
moves to its ``on_budget_exhausted`` phase if it names one, else the model is told,
in its instructions, to finish the phase now.

    flow = load_flow("examples/restaurant_ordering.yaml")
    controller = FlowController(flow, base_instructions=prompt, tools=app_tools)
    engine = controller.attach(build_engine(instructions=controller.instructions,
                                            tools=controller))
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

from parley.audio.format import AudioFormat
from parley.endpointing import PhasePolicy
from parley.engines.seams import CallEngine, Engine, EngineStats, ToolRunner
from parley.engines.text_hooks import TextHook
from parley.errors import ConfigError
from parley.events import Event, PhaseChanged, ResponseDone, ToolCall, ToolResult
from parley.flows.config import FlowConfig
from parley.flows.progress import Progress, ProgressTracker
from parley.providers.seams import Message, ToolSpec

__all__ = ["FLOW_TOOLS", "FlowController", "FlowEngine", "FlowRegistry"]

#: The names of the tools a flow adds.
FLOW_TOOLS = ("record_observation", "mark_criterion_met", "transition_to")

_MAX_KEY = 100
_MAX_VALUE_CHARS = 4000  # an observation is a fact, not a document


class FlowController:
    """The flow of one call (see the module docstring). Not shared between calls."""

    def __init__(
        self,
        flow: FlowConfig,
        *,
        base_instructions: str = "",
        tools: ToolRunner | None = None,
    ) -> None:
        if tools is not None:
            clash = sorted(set(FLOW_TOOLS) & {s.name for s in tools.specs})
            if clash:
                raise ConfigError(
                    f"app tools {clash} clash with the guided-flow tools", field="tools"
                )
        self.flow = flow
        self.base_instructions = base_instructions
        self.tools = tools
        self.tracker = ProgressTracker(flow)
        #: Every phase change so far, in order.
        self.changes: list[PhaseChanged] = []
        self.engine: Engine | None = None
        # PhaseChanged not yet handed to the events, with the id of the tool call that
        # made it ("" when the turn budget did): it goes out just before that call's result.
        self._outbox: deque[tuple[str, Event]] = deque()
        self._call_id = ""  # the tool call being run
        self._budget_noted = False

    # -- state ---------------------------------------------------------------------------

    @property
    def phase(self) -> str:
        return self.tracker.phase.name

    def progress(self) -> Progress:
        return self.tracker.snapshot()

    @property
    def turn_taking(self) -> PhasePolicy:
        """The current phase's end-of-turn policy (``PhasePolicy()``: none of its own)."""
        return self.tracker.phase.turn_taking or PhasePolicy()

    @property
    def instructions(self) -> str:
        """What the model is told in the current phase (the app's prompt first)."""
        flow, phase, tracker = self.flow, self.tracker.phase, self.tracker
        lines = [
            f"## Guided conversation: {flow.name}",
            f"Goal: {flow.goal}",
            f"Current phase: {phase.name}",
            phase.instructions,
        ]
        needs: list[str] = []
        if phase.criteria:
            crit = "; ".join(
                f"{c.name} ({c.description})" if c.description else c.name for c in phase.criteria
            )
            needs.append(
                f"- success criteria, each marked with mark_criterion_met once met: {crit}"
            )
        if phase.observations:
            keys = ", ".join(phase.observations)
            needs.append(f"- observations to record with record_observation(key, value): {keys}")
        if needs:
            lines += ["Before leaving this phase:", *needs]
        if phase.final:
            lines.append("This is the final phase: once it is done, the goal is reached.")
        else:
            lines.append(f"Then call transition_to with the next phase: {', '.join(phase.next)}.")
        if tracker.turns_exhausted:
            lines.append(
                f"The turn budget of this phase ({phase.max_turns} replies) is used up: "
                "finish it now."
            )
        elif tracker.time_exhausted:
            lines.append(
                f"The time budget of this phase ({phase.max_seconds:g} s) is used up: "
                "finish it now."
            )
        section = "\n".join(lines)
        return f"{self.base_instructions}\n\n{section}" if self.base_instructions else section

    # -- the ToolRunner seam ------------------------------------------------------------

    @property
    def specs(self) -> Sequence[ToolSpec]:
        phase = self.tracker.phase
        keys = ", ".join(phase.observations)
        hint = f" This phase needs: {keys}." if keys else ""
        specs = [
            ToolSpec(
                "record_observation",
                "Record something learnt about the caller for the conversation's goal." + hint,
                {
                    "type": "object",
                    "properties": {
                        "key": {"type": "string", "description": "What was observed."},
                        "value": {"type": "string", "description": "The observed value."},
                    },
                    "required": ["key", "value"],
                },
            )
        ]
        if phase.criteria:
            specs.append(
                ToolSpec(
                    "mark_criterion_met",
                    f"Mark a success criterion of the phase {phase.name!r} as met.",
                    {
                        "type": "object",
                        "properties": {
                            "criterion": {"type": "string", "enum": list(phase.criterion_names)}
                        },
                        "required": ["criterion"],
                    },
                )
            )
        if not phase.final:
            specs.append(
                ToolSpec(
                    "transition_to",
                    f"Move from the phase {phase.name!r} to the next one, once this one is done.",
                    {
                        "type": "object",
                        "properties": {"phase": {"type": "string", "enum": list(phase.next)}},
                        "required": ["phase"],
                    },
                )
            )
        if self.tools is not None:
            specs.extend(self.tools.specs)
        return tuple(specs)

    async def run(self, call: ToolCall) -> ToolResult:
        if call.name not in FLOW_TOOLS:
            if self.tools is None:
                return _result(call, {"ok": False, "reason": f"unknown tool {call.name!r}"})
            return await self.tools.run(call)
        try:
            args = json.loads(call.arguments) if call.arguments.strip() else {}
        except json.JSONDecodeError as exc:
            return _result(call, {"ok": False, "reason": f"arguments are not valid JSON: {exc}"})
        if not isinstance(args, dict):
            return _result(call, {"ok": False, "reason": "arguments must be a JSON object"})
        try:
            if call.name == "record_observation":
                reply = self.record_observation(args["key"], args["value"])
            elif call.name == "mark_criterion_met":
                reply = self.mark_criterion_met(args["criterion"])
            else:
                self._call_id = call.call_id
                try:
                    reply = await self.transition_to(args["phase"])
                finally:
                    self._call_id = ""
        except KeyError as exc:
            reply = {"ok": False, "reason": f"missing argument {exc.args[0]!r}"}
        return _result(call, reply)

    # -- the three tools (also callable from Python) -----------------------------------

    def record_observation(self, key: object, value: object) -> dict[str, Any]:
        if not isinstance(key, str) or not key.strip() or len(key) > _MAX_KEY:
            return {"ok": False, "reason": f"key must be a non-empty string of at most {_MAX_KEY}"}
        if len(json.dumps(value, default=str)) > _MAX_VALUE_CHARS:
            return {"ok": False, "reason": f"value is longer than {_MAX_VALUE_CHARS} characters"}
        key = key.strip()
        self.tracker.record(key, value)
        return {
            "ok": True,
            "recorded": key,
            "missing_observations": list(self.tracker.missing_observations()),
        }

    def mark_criterion_met(self, criterion: object) -> dict[str, Any]:
        phase = self.tracker.phase
        if not isinstance(criterion, str) or criterion not in phase.criterion_names:
            known = ", ".join(phase.criterion_names) or "none"
            return {
                "ok": False,
                "reason": f"{criterion!r} is not a criterion of the phase {phase.name!r} "
                f"(its criteria: {known})",
            }
        self.tracker.mark(criterion)
        return {
            "ok": True,
            "met": criterion,
            "pending_criteria": list(self.tracker.pending_criteria()),
        }

    async def transition_to(self, phase: object) -> dict[str, Any]:
        current = self.tracker.phase
        reason = self._refusal(phase)
        if reason is not None:
            return {"ok": False, "phase": current.name, "reason": reason}
        assert isinstance(phase, str)  # _refusal checked it
        await self._change(phase)
        new = self.tracker.phase
        return {
            "ok": True,
            "phase": new.name,
            "previous": current.name,
            "pending_criteria": list(new.criterion_names),
            "missing_observations": list(self.tracker.missing_observations()),
        }

    def _refusal(self, target: object) -> str | None:
        current = self.tracker.phase
        if not isinstance(target, str) or target not in self.flow:
            names = ", ".join(self.flow.phase_names)
            return f"there is no phase {target!r} (the phases: {names})"
        if current.final:
            return f"the phase {current.name!r} is final: there is no next phase"
        if target not in current.next:
            return (
                f"cannot move from {current.name!r} to {target!r}: the allowed next phases "
                f"are {', '.join(current.next)}"
            )
        unmet = []
        pending = self.tracker.pending_criteria()
        if pending:
            unmet.append(f"criteria not met: {', '.join(pending)}")
        missing = self.tracker.missing_observations()
        if missing:
            unmet.append(f"observations not recorded: {', '.join(missing)}")
        if unmet:
            return f"the phase {current.name!r} is not done: {'; '.join(unmet)}"
        return None

    async def press(self, digit: str) -> PhaseChanged | None:
        """The caller pressed ``digit``: move to the phase the current one's ``on_digit``
        names for it (its criteria notwithstanding), or do nothing."""
        target = self.tracker.phase.on_digit.get(digit)
        if target is None:
            return None
        await self._change(target)
        return self.changes[-1]

    async def _change(self, target: str) -> None:
        previous = self.tracker.phase.name
        self.tracker.enter(target)  # state first: anything awaited below sees the new phase
        self._budget_noted = False
        change = PhaseChanged(previous, target)
        self.changes.append(change)
        self._outbox.append((self._call_id, change))
        if self.engine is not None:
            await self.engine.update(
                instructions=self.instructions, tools=self, turn_taking=self.turn_taking
            )

    # -- the engine side -----------------------------------------------------------------

    def attach(self, engine: CallEngine) -> FlowEngine:
        """Drive ``engine`` (built with ``instructions`` and ``tools=self``)."""
        self.engine = engine
        return FlowEngine(engine, self)

    async def observe(self, event: Event) -> None:
        """Count the current phase's replies; act when its turn budget is used up."""
        # A turn is a reply that said something: a realtime response that only calls
        # a function (no text) is not one, so both engines count alike.
        if not isinstance(event, ResponseDone) or event.status != "completed":
            return
        if not event.text.strip():
            return
        tracker = self.tracker
        tracker.count_turn()
        if not tracker.budget_exhausted or self._budget_noted:
            return
        self._budget_noted = True
        target = tracker.phase.on_budget_exhausted
        if target is not None:
            await self._change(target)  # the budget overrides unmet criteria
        elif self.engine is not None:
            await self.engine.update(instructions=self.instructions)

    def take_events(self, before: Event | None = None) -> list[Event]:
        """Phase changes due before ``before`` (an engine event), oldest first: those
        made by the tool call ``before`` is the result of, those made by nothing in
        particular (the turn budget), and, at the end of a reply or of the events
        (``before=None``), all."""
        outbox = self._outbox
        if not outbox:
            return []
        flush_all = before is None or isinstance(before, ResponseDone)
        result_of = before.call_id if isinstance(before, ToolResult) else None
        out: list[Event] = []
        keep: deque[tuple[str, Event]] = deque()
        for call_id, event in outbox:
            if flush_all or not call_id or call_id == result_of:
                out.append(event)
            else:
                keep.append((call_id, event))
        self._outbox = keep
        return out


def _result(call: ToolCall, reply: dict[str, Any]) -> ToolResult:
    output = json.dumps(reply, ensure_ascii=False, default=str)
    return ToolResult(call.call_id, call.name, output, is_error=not reply.get("ok", False))


class FlowEngine:
    """An engine with a flow: its events plus :class:`PhaseChanged`, each phase change
    delivered ahead of the engine event that follows it (a tool call's change comes
    before that call's :class:`~parley.events.ToolResult`). Everything else is the
    wrapped engine's, forwarded member by member (:class:`CallEngine`)."""

    def __init__(self, engine: CallEngine, controller: FlowController) -> None:
        self.inner = engine
        self.flow = controller

    @property
    def input_format(self) -> AudioFormat:
        return self.inner.input_format

    def stats(self) -> EngineStats:
        return self.inner.stats()

    async def run(self) -> None:
        await self.inner.update(turn_taking=self.flow.turn_taking)  # the initial phase's
        await self.inner.run()

    async def events(self) -> AsyncIterator[Event]:
        flow = self.flow
        async for event in self.inner.events():
            if flow._outbox:
                for change in flow.take_events(event):
                    yield change
            yield event
            if isinstance(event, ResponseDone):
                await flow.observe(event)
                for change in flow.take_events():
                    yield change
        for change in flow.take_events():
            yield change

    async def send_audio(self, pcm: bytes) -> None:
        await self.inner.send_audio(pcm)

    async def send_text(self, text: str) -> None:
        await self.inner.send_text(text)

    async def report_playback(self, response_id: str, played_ms: float) -> None:
        await self.inner.report_playback(response_id, played_ms)

    async def inject_context(self, key: str, data: object) -> None:
        await self.inner.inject_context(key, data)

    async def update(
        self,
        *,
        instructions: str | None = None,
        tools: ToolRunner | None = None,
        turn_taking: PhasePolicy | None = None,
    ) -> None:
        """The app's own prompt or tools changed: the flow's phase section and tools stay."""
        flow = self.flow
        if instructions is not None:
            flow.base_instructions = instructions
        if tools is not None:
            flow.tools = tools
        await self.inner.update(
            instructions=flow.instructions if instructions is not None else None,
            tools=flow if tools is not None else None,
            turn_taking=turn_taking,  # until the next phase change sets the phase's
        )

    async def close(self) -> None:
        await self.inner.close()

    def seed_history(self, messages: Sequence[Message]) -> None:
        self.inner.seed_history(messages)

    async def cancel_response(self, response_id: str) -> None:
        await self.inner.cancel_response(response_id)

    async def greet(self, text: str) -> None:
        await self.inner.greet(text)

    def set_text_hooks(
        self, *, request: TextHook | None = None, response: TextHook | None = None
    ) -> None:
        self.inner.set_text_hooks(request=request, response=response)


class FlowRegistry:
    """The flow controllers of this process by conversation id, for the progress
    route. Bounded: beyond ``keep`` the oldest are forgotten (ended calls' progress
    stays readable for a while, like their transcripts)."""

    def __init__(self, *, keep: int = 1000) -> None:
        self.keep = keep
        self._flows: OrderedDict[str, FlowController] = OrderedDict()

    def add(self, conversation_id: str, controller: FlowController) -> FlowController:
        self._flows[conversation_id] = controller
        self._flows.move_to_end(conversation_id)
        while len(self._flows) > self.keep:
            self._flows.popitem(last=False)
        return controller

    def get(self, conversation_id: str) -> FlowController | None:
        return self._flows.get(conversation_id)

    def __len__(self) -> int:
        return len(self._flows)

"""Guided flows driven start to finish by a scripted model that calls the flow's tools
over the real wire formats: Chat Completions SSE for the cascade engine (a live
Conversation over the in-memory transport), the Realtime protocol for the realtime
engine. Asserts what the model was sent in each phase, the PhaseChanged events, the
refusals and the progress — and the progress REST route over a real server."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from parley.conversation import Conversation, ToolRegistry
from parley.engines import CascadeConfig, CascadeEngine, Engine
from parley.engines.realtime import RealtimeConfig, RealtimeEngine
from parley.errors import ConfigError
from parley.events import Event, PhaseChanged, ResponseDone, ToolResult
from parley.flows import FLOW_TOOLS, FlowConfig, FlowController, FlowEngine, FlowRegistry, load_flow
from parley.protocols.openai_realtime import ConversationItemCreate, SessionUpdate
from parley.providers.openai_llm import OpenAILLM
from parley.server.flows import flows_router
from parley.testing import (
    FakeSTT,
    FakeTTS,
    FakeVAD,
    OpenAIWireServer,
    RealtimeUpstream,
    ScriptedFunctionCall,
    ScriptedReply,
    ScriptedResponse,
    ScriptedToolCall,
    memory_transport_pair,
    split_words,
)
from servers import LoopServer, free_port, start_serving

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
RATE = 16000
BASE = "You work for the business."


def call(name: str, **args: Any) -> ScriptedToolCall:
    return ScriptedToolCall(name, (json.dumps(args),))


@dataclass(frozen=True)
class Step:
    """One user turn: the model calls ``tools`` (one reply), then says ``reply``."""

    user: str
    tools: tuple[ScriptedToolCall, ...]
    reply: str


# -- a live cascade call over the in-memory transport --------------------------------------


class Call:
    def __init__(self, conversation: Conversation, peer: Any) -> None:
        self.conversation = conversation
        self.peer = peer
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    async def on_event(self, _conv: Conversation, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def until(self, predicate: Callable[[], bool], limit_s: float = 10.0) -> None:
        async with asyncio.timeout(limit_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def say(self, text: str) -> None:
        done = len(self.of(ResponseDone))
        await self.peer.send_text(text)
        await self.until(lambda: len(self.of(ResponseDone)) > done)


@asynccontextmanager
async def cascade_call(
    server: OpenAIWireServer, controller: FlowController
) -> AsyncIterator[tuple[Call, FlowEngine]]:
    llm = OpenAILLM("gpt-4o-mini", base_url=server.openai_base_url, api_key="test")
    inner = CascadeEngine(
        FakeVAD(RATE), FakeSTT(), llm, FakeTTS(RATE),
        CascadeConfig(instructions=controller.instructions), tools=controller,
    )  # fmt: skip
    engine = controller.attach(inner)
    assert isinstance(engine, Engine)
    stream, peer = memory_transport_pair()
    holder: list[Call] = []

    async def on_event(conv: Conversation, event: Event) -> None:
        await holder[0].on_event(conv, event)

    conversation = Conversation(stream, engine, on_event=on_event)
    c = Call(conversation, peer)
    holder.append(c)

    async def drain() -> None:
        async for _ in peer:
            pass

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(conversation.run())
            tg.create_task(drain())
            yield c, engine
            await peer.hangup()
    finally:
        await llm.aclose()


def system_of(request: dict[str, Any]) -> str:
    first = request["messages"][0]
    assert first["role"] == "system"
    return str(first["content"])


def tools_of(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["function"]["name"]: t["function"]["parameters"] for t in request.get("tools", [])}


def expected_tools(flow: FlowConfig, phase: str, extra: set[str]) -> set[str]:
    p = flow.phase(phase)
    names = {"record_observation"} | extra
    if p.criteria:
        names.add("mark_criterion_met")
    if not p.final:
        names.add("transition_to")
    return names


async def drive(
    flow: FlowConfig,
    steps: list[Step],
    phases: list[str],
    *,
    app_tools: ToolRegistry | None = None,
) -> tuple[FlowController, list[Any], Call]:
    """Run ``steps`` (one per phase) and check every request against ``phases``."""
    controller = FlowController(flow, base_instructions=BASE, tools=app_tools)
    extra = {s.name for s in app_tools.specs} if app_tools is not None else set()
    async with OpenAIWireServer() as server:
        for step in steps:
            server.script(
                ScriptedReply(tool_calls=step.tools), ScriptedReply(text=split_words(step.reply))
            )
        async with cascade_call(server, controller) as (c, _engine):
            for step in steps:
                await c.say(step.user)
        requests = server.chat_requests
    assert len(requests) == 2 * len(steps)
    for i, _step in enumerate(steps):
        before = phases[i]
        after = phases[i + 1] if i + 1 < len(phases) else phases[-1]
        first, second = requests[2 * i], requests[2 * i + 1]
        for request, phase in ((first, before), (second, after)):
            system = system_of(request)
            # The app's prompt stays first; the phase's own instructions follow it.
            assert system.startswith(BASE) and f"Current phase: {phase}\n" in system
            assert flow.phase(phase).instructions in system
            tools = tools_of(request)
            assert set(tools) == expected_tools(flow, phase, extra), (phase, set(tools))
            if "transition_to" in tools:
                enum = tools["transition_to"]["properties"]["phase"]["enum"]
                assert enum == list(flow.phase(phase).next)
        # Every flow tool call of the step was accepted, and the model saw that.
        results = [m for m in second["messages"] if m["role"] == "tool"][-len(steps[i].tools) :]
        flow_results = [
            json.loads(m["content"])
            for m, tc in zip(results, steps[i].tools, strict=True)
            if tc.name in FLOW_TOOLS
        ]
        assert flow_results and all(r["ok"] is True for r in flow_results), flow_results
    return controller, requests, c


# -- the three example flows on the cascade engine ------------------------------------------


async def test_restaurant_ordering_runs_start_to_finish() -> None:
    flow = load_flow(EXAMPLES / "restaurant_ordering.yaml")
    menu = ToolRegistry()

    @menu.register
    async def price_of(item: str) -> float:
        """The menu price of an item."""
        return {"margherita": 11.5, "lemonade": 3.0}[item]

    items = "1 large margherita, 1 lemonade"
    steps = [
        Step(
            "Hi, this is Ana.",
            (call("record_observation", key="customer_name", value="Ana"),
             call("transition_to", phase="ordering")),
            "Hi Ana! What would you like?",
        ),
        Step(
            "A large margherita and a lemonade, that's all.",
            (call("price_of", item="margherita"),
             call("record_observation", key="items", value=items),
             call("mark_criterion_met", criterion="order_complete"),
             call("transition_to", phase="confirmation")),
            "That's 14.50. Shall I confirm it?",
        ),
        Step(
            "Yes, I'll pick it up at six.",
            (call("record_observation", key="pickup_time", value="18:00"),
             call("mark_criterion_met", criterion="order_confirmed"),
             call("transition_to", phase="farewell")),
            "Great, see you at six.",
        ),
        Step(
            "Thanks!",
            (call("mark_criterion_met", criterion="goodbye_said"),),
            "Goodbye Ana!",
        ),
    ]  # fmt: skip
    phases = ["greeting", "ordering", "confirmation", "farewell"]
    controller, _requests, c = await drive(flow, steps, phases, app_tools=menu)
    assert c.of(PhaseChanged) == [
        PhaseChanged("greeting", "ordering"),
        PhaseChanged("ordering", "confirmation"),
        PhaseChanged("confirmation", "farewell"),
    ]
    # The app's own tool ran by delegation, next to the flow's.
    price = next(r for r in c.of(ToolResult) if r.name == "price_of")
    assert price.output == "11.5" and not price.is_error
    progress = controller.progress()
    assert progress.complete and progress.percent == 100.0
    assert progress.observations == {"customer_name": "Ana", "items": items, "pickup_time": "18:00"}
    assert progress.completed_criteria["confirmation"] == ("order_confirmed",)
    # Each PhaseChanged came before the result of the transition_to call that made it.
    kinds = [
        ("change", e.current) if isinstance(e, PhaseChanged) else ("result", e.name)
        for e in c.events
        if isinstance(e, PhaseChanged | ToolResult)
    ]
    assert kinds[:3] == [
        ("result", "record_observation"),
        ("change", "ordering"),
        ("result", "transition_to"),
    ]


async def test_language_assessment_runs_start_to_finish() -> None:
    flow = load_flow(EXAMPLES / "language_assessment.yaml")
    steps = [
        Step(
            "I'm Sam, I'm learning Spanish, and I'm ready.",
            (call("record_observation", key="learner_name", value="Sam"),
             call("record_observation", key="target_language", value="Spanish"),
             call("mark_criterion_met", criterion="learner_ready"),
             call("transition_to", phase="vocabulary")),
            "¡Vamos! ¿Cómo se dice 'table'?",
        ),
        Step(
            "Mesa. Y mi casa tiene una cocina grande.",
            (call("record_observation", key="vocabulary_level", value="B1"),
             call("mark_criterion_met", criterion="vocabulary_tested"),
             call("transition_to", phase="grammar")),
            "¿Qué hiciste ayer?",
        ),
        Step(
            "Ayer fui al mercado y mañana iré al cine.",
            (call("record_observation", key="grammar_level", value="B1"),
             call("mark_criterion_met", criterion="grammar_tested"),
             call("transition_to", phase="free_conversation")),
            "¿De qué quieres hablar?",
        ),
        Step(
            "Del fútbol, me encanta el Real Madrid.",
            (call("record_observation", key="fluency_level", value="B2"),
             call("mark_criterion_met", criterion="fluency_assessed"),
             call("transition_to", phase="results")),
            "Your results are ready.",
        ),
        Step(
            "So how did I do?",
            (call("record_observation", key="overall_level", value="B1"),
             call("mark_criterion_met", criterion="level_reported")),
            "You're a solid B1. Practise the subjunctive next.",
        ),
    ]  # fmt: skip
    phases = ["welcome", "vocabulary", "grammar", "free_conversation", "results"]
    controller, _requests, c = await drive(flow, steps, phases)
    assert [(p.previous, p.current) for p in c.of(PhaseChanged)] == list(itertools.pairwise(phases))
    progress = controller.progress()
    assert progress.complete and progress.percent == 100.0
    assert progress.phases_visited == tuple(phases)
    assert progress.observations["overall_level"] == "B1"


async def test_financial_advisor_runs_start_to_finish() -> None:
    flow = load_flow(EXAMPLES / "financial_advisor.yaml")
    facts = {"age": "41", "income": "85000", "savings_goal": "retirement", "time_horizon": "24y"}
    steps = [
        Step(
            "Hello, I'm Priya.",
            (call("mark_criterion_met", criterion="disclaimer_given"),
             call("record_observation", key="client_name", value="Priya"),
             call("transition_to", phase="discovery")),
            "Thanks Priya. How old are you?",
        ),
        Step(
            "41, I earn 85k and I'm saving for retirement in about 24 years.",
            (*(call("record_observation", key=k, value=v) for k, v in facts.items()),
             call("transition_to", phase="risk_assessment")),
            "How would you feel about a 20 % fall?",
        ),
        Step(
            "I'd hold on; I've invested before.",
            (call("mark_criterion_met", criterion="risk_questions_asked"),
             call("record_observation", key="risk_tolerance", value="medium"),
             call("transition_to", phase="recommendation")),
            "A 70/30 mix of global shares and bonds could fit.",
        ),
        Step(
            "That makes sense, I understand the risk.",
            (call("mark_criterion_met", criterion="recommendation_explained"),
             call("transition_to", phase="summary")),
            "Let me sum up.",
        ),
        Step(
            "Please book me with an adviser.",
            (call("record_observation", key="next_step", value="meeting"),
             call("mark_criterion_met", criterion="next_steps_agreed")),
            "Booked. Thank you, Priya.",
        ),
    ]  # fmt: skip
    phases = ["introduction", "discovery", "risk_assessment", "recommendation", "summary"]
    controller, requests, c = await drive(flow, steps, phases)
    assert len(c.of(PhaseChanged)) == 4
    progress = controller.progress()
    assert progress.complete and progress.percent == 100.0
    assert {k: progress.observations[k] for k in facts} == facts
    # The discovery phase's tool description names what it still needs.
    discovery = next(
        t for t in requests[2]["tools"] if t["function"]["name"] == "record_observation"
    )
    assert "age, income, savings_goal, time_horizon" in discovery["function"]["description"]


# -- refusals ------------------------------------------------------------------------------


async def test_refused_tool_calls_return_the_reason_to_the_model() -> None:
    flow = load_flow(EXAMPLES / "restaurant_ordering.yaml")
    controller = FlowController(flow)
    async with OpenAIWireServer() as server:
        server.script(
            ScriptedReply(
                tool_calls=(
                    call("transition_to", phase="ordering"),  # no customer_name yet
                    call("transition_to", phase="farewell"),  # not a next phase
                    call("transition_to", phase="dessert"),  # no such phase
                    call("mark_criterion_met", criterion="order_complete"),  # not this phase's
                    ScriptedToolCall("transition_to", ("{}",)),  # no argument
                    ScriptedToolCall("record_observation", ('{"key": ',)),  # broken JSON
                )
            ),
            ScriptedReply(text=split_words("May I have your name?")),
            ScriptedReply(
                tool_calls=(
                    call("record_observation", key="customer_name", value="Bo"),
                    call("transition_to", phase="ordering"),
                    call("record_observation", key="items", value="soup"),
                    call("transition_to", phase="confirmation"),  # order_complete unmet
                )
            ),
            ScriptedReply(text=split_words("Anything else?")),
        )
        async with cascade_call(server, controller) as (c, _engine):
            await c.say("I'd like to order.")
            assert not c.of(PhaseChanged) and controller.phase == "greeting"
            await c.say("Bo.")
        second, fourth = server.chat_requests[1], server.chat_requests[3]
    refusals = [json.loads(m["content"]) for m in second["messages"] if m["role"] == "tool"]
    assert all(r["ok"] is False for r in refusals)
    reasons = [r["reason"] for r in refusals]
    assert reasons[0] == (
        "the phase 'greeting' is not done: observations not recorded: customer_name"
    )
    assert reasons[1] == (
        "cannot move from 'greeting' to 'farewell': the allowed next phases are ordering"
    )
    assert reasons[2].startswith("there is no phase 'dessert'")
    assert "'order_complete' is not a criterion of the phase 'greeting'" in reasons[3]
    assert reasons[4] == "missing argument 'phase'"
    assert reasons[5].startswith("arguments are not valid JSON")
    assert all(r.is_error for r in c.of(ToolResult)[:6])
    last = json.loads([m for m in fourth["messages"] if m["role"] == "tool"][-1]["content"])
    assert last == {
        "ok": False,
        "phase": "ordering",
        "reason": "the phase 'ordering' is not done: criteria not met: order_complete",
    }
    assert c.of(PhaseChanged) == [PhaseChanged("greeting", "ordering")]
    assert controller.phase == "ordering"
    assert 0 < controller.progress().percent < 100 and not controller.progress().complete


def test_app_tools_cannot_shadow_the_flow_tools() -> None:
    flow = load_flow(EXAMPLES / "restaurant_ordering.yaml")
    tools = ToolRegistry()

    @tools.register
    def transition_to(phase: str) -> str:
        """Mine."""
        return phase

    with pytest.raises(ConfigError, match="clash with the guided-flow tools"):
        FlowController(flow, tools=tools)


# -- turn budget ---------------------------------------------------------------------------


BUDGET_FLOW = {
    "name": "budget",
    "goal": "Chat a little, then wrap up.",
    "initial": "chat",
    "phases": [
        {
            "name": "chat",
            "instructions": "Chat.",
            "criteria": ["topic_found"],
            "next": ["wrap_up", "nudge"],
            "max_turns": 2,
            "on_budget_exhausted": "wrap_up",
        },
        {"name": "nudge", "instructions": "Unused.", "next": ["wrap_up"]},
        {"name": "wrap_up", "instructions": "Wrap up.", "criteria": ["done"], "max_turns": 1},
    ],
}


async def test_turn_budget_moves_on_or_tells_the_model_to_finish() -> None:
    controller = FlowController(FlowConfig.from_dict(BUDGET_FLOW))
    async with OpenAIWireServer() as server:
        server.script(*(ScriptedReply(text=split_words(f"Reply {i}.")) for i in range(4)))
        async with cascade_call(server, controller) as (c, _engine):
            await c.say("one")
            assert controller.phase == "chat" and controller.progress().turns_in_phase == 1
            await c.say("two")  # the second reply uses up the budget: on to wrap_up
            await c.until(lambda: bool(c.of(PhaseChanged)))
            await c.say("three")  # wrap_up's single reply: no exit, so a nudge
            await c.say("four")
        systems = [system_of(r) for r in server.chat_requests]
    assert c.of(PhaseChanged) == [PhaseChanged("chat", "wrap_up")]  # criteria overridden
    assert "Current phase: chat" in systems[1] and "Current phase: wrap_up" in systems[2]
    assert "used up" not in systems[2]
    assert "turn budget of this phase (1 replies) is used up" in systems[3]


# -- the realtime engine ---------------------------------------------------------------------


async def test_restaurant_flow_on_the_realtime_engine() -> None:
    flow = load_flow(EXAMPLES / "restaurant_ordering.yaml")
    controller = FlowController(flow, base_instructions=BASE)
    fc = [
        ("record_observation", {"key": "customer_name", "value": "Ana"}),
        ("transition_to", {"phase": "ordering"}),
        ("record_observation", {"key": "items", "value": "1 margherita"}),
        ("mark_criterion_met", {"criterion": "order_complete"}),
        ("transition_to", {"phase": "confirmation"}),
        ("record_observation", {"key": "pickup_time", "value": "18:00"}),
        ("mark_criterion_met", {"criterion": "order_confirmed"}),
        ("transition_to", {"phase": "farewell"}),
        ("mark_criterion_met", {"criterion": "goodbye_said"}),
    ]
    async with RealtimeUpstream() as up:
        up.script(
            *(
                ScriptedResponse(
                    user_transcript="Hi, Ana here, one margherita for six please."
                    if i == 0
                    else "",
                    function_call=ScriptedFunctionCall(name, json.dumps(args), call_id=f"call_{i}"),
                )
                for i, (name, args) in enumerate(fc)
            ),
            ScriptedResponse("Thanks Ana, see you at six."),
        )
        cfg = RealtimeConfig(
            url=up.url, api_key="sk-test", instructions=controller.instructions,
            connect_attempts=3, backoff_initial_s=0.01, connect_timeout_s=2.0,
        )  # fmt: skip
        engine = controller.attach(RealtimeEngine(cfg, tools=controller))
        events: list[Event] = []
        replied = asyncio.Event()

        async def pump() -> None:
            async for ev in engine.events():
                events.append(ev)
                if isinstance(ev, ResponseDone) and ev.text:
                    replied.set()

        task = asyncio.create_task(engine.run())
        pumping = asyncio.create_task(pump())
        try:
            await engine.send_audio(bytes(200 * 48))  # 200 ms at 24 kHz: one user turn
            async with asyncio.timeout(10):
                await replied.wait()
        finally:
            await engine.close()
            await asyncio.wait_for(task, 5)
            await asyncio.wait_for(pumping, 5)
        sent = up.current.events
    assert [(e.previous, e.current) for e in events if isinstance(e, PhaseChanged)] == [
        ("greeting", "ordering"),
        ("ordering", "confirmation"),
        ("confirmation", "farewell"),
    ]
    assert controller.progress().complete and controller.progress().percent == 100.0
    updates = [(i, e) for i, e in enumerate(sent) if isinstance(e, SessionUpdate)]
    outputs = {
        e.item.call_id: (i, json.loads(str(e.item.output)))
        for i, e in enumerate(sent)
        if isinstance(e, ConversationItemCreate) and e.item.type == "function_call_output"
    }
    assert len(outputs) == len(fc)
    assert all(out["ok"] is True for _, out in outputs.values())
    # The first session carried the initial phase; each transition's session.update
    # (new instructions and tools) went up before that call's function_call_output.
    first = updates[0][1].session
    assert isinstance(first.instructions, str) and "Current phase: greeting\n" in first.instructions
    for call_index, phase in ((1, "ordering"), (4, "confirmation"), (7, "farewell")):
        out_at, out = outputs[f"call_{call_index}"]
        assert out["phase"] == phase
        update = next(
            e.session
            for i, e in reversed(updates)
            if i < out_at and isinstance(e.session.instructions, str)
        )
        assert isinstance(update.instructions, str)
        assert f"Current phase: {phase}\n" in update.instructions
        assert update.instructions.startswith(BASE)
        assert isinstance(update.tools, list)
        names = {t.name for t in update.tools}
        assert names == expected_tools(flow, phase, set())
        if phase != "farewell":
            (tt,) = (t for t in update.tools if t.name == "transition_to")
            assert isinstance(tt.parameters, dict)
            assert tt.parameters["properties"]["phase"]["enum"] == list(flow.phase(phase).next)


# -- the progress route over a real server --------------------------------------------------


@asynccontextmanager
async def serve(api: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(api, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    server = LoopServer(config)
    task = await start_serving(server)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 5)


async def test_progress_route_over_http() -> None:
    flows = FlowRegistry()
    controller = flows.add(
        "conv_1", FlowController(load_flow(EXAMPLES / "restaurant_ordering.yaml"))
    )
    api = FastAPI()
    api.include_router(flows_router(flows.get, exists=lambda cid: cid in {"conv_1", "conv_2"}))
    async with serve(api) as base, httpx.AsyncClient(base_url=base) as http:
        r = await http.get("/conversations/conv_1/progress")
        assert r.status_code == 200
        body = r.json()
        assert body["id"] == "conv_1" and body["phase"] == "greeting"
        assert body["percent"] == 0.0 and body["complete"] is False
        assert body["missing_observations"] == ["customer_name"]
        controller.record_observation("customer_name", "Ana")
        assert (await controller.transition_to("ordering"))["ok"] is True
        body = (await http.get("/conversations/conv_1/progress")).json()
        assert body["phase"] == "ordering" and body["phases_visited"] == ["greeting", "ordering"]
        assert body["observations"] == {"customer_name": "Ana"}
        assert body["percent"] == 25.0 and body["pending_criteria"] == ["order_complete"]
        r = await http.get("/conversations/conv_2/progress")
        assert r.status_code == 404 and "has no guided flow" in r.json()["detail"]
        r = await http.get("/conversations/nope/progress")
        assert r.status_code == 404 and r.json()["detail"] == "no conversation 'nope'"

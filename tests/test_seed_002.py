"""Seed 002 (Guided Conversation Framework): the document's usage, over the real wire.

The document's steps, as written: ``export OPENAI_API_KEY=…`` (its dummy key: the
brain is a loopback server answering in OpenAI's Chat Completions format, scripted
to call the flow's tools), ``POST /conversations`` with a JSON ``ConversationConfig``
(httpx to uvicorn on 127.0.0.1), then the WebSocket ``/realtime/{session_id}``
carrying PCM16 at 24 kHz as OpenAI Realtime events (``websockets``; the speech is
Piper's, heard by Silero and Whisper, the reply spoken by Piper). Also: the three
example modules, the ``ObservationTracker``, event handlers a user extends, and the
refusals of a claim. Names → Parley: /work/notes/seeds-002.md.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import httpx
import jwt
import numpy as np
import pytest
import soxr
import websockets

from parley.app import Parley
from parley.config import ConversationConfig, EngineKind, ParleySettings
from parley.events import ResponseDone, ToolCall, TranscriptFinal
from parley.flows import (
    ConversationEventHandler,
    FlowController,
    GuidedConversation,
    ObservationTracker,
    load_flow,
)
from parley.security.principal import Permission
from parley.testing import OpenAIWireServer, ScriptedReply, ScriptedToolCall, split_words
from servers import serve_app
from speech import normalise, speak

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SAID = "Please book a table for two people tonight."
WELCOME = "Welcome! A table for two. What would you like to drink?"

#: A ConversationConfig as the document describes it: phases with instructions,
#: success criteria, required observations, next phases; an initial phase; a goal.
DOCUMENT_CONFIG: dict[str, Any] = {
    "name": "AI Waiter",
    "goal": "Take a table's order from greeting to confirmation",
    "initial_phase": "greeting",
    "system_instructions": "You are a friendly waiter at a small bistro.",
    "phases": {
        "greeting": {
            "name": "Greeting",
            "instructions": "Welcome the guests and ask how many they are.",
            "success_criteria": ["guests_greeted"],
            "required_observations": ["party_size"],
            "next_phases": ["ordering"],
            "max_duration_seconds": 120,
            "completion_rules": {},
        },
        "ordering": {
            "name": "Ordering",
            "instructions": "Take the drinks and the mains.",
            "success_criteria": ["order_taken"],
            "required_observations": ["order"],
            "next_phases": ["confirmation"],
            "max_duration_seconds": 300,
            "completion_rules": {},
        },
        "confirmation": {
            "name": "Confirmation",
            "instructions": "Read the order back and confirm it.",
            "success_criteria": ["order_confirmed"],
            "required_observations": ["confirmed"],
            "next_phases": [],
            "max_duration_seconds": 120,
            "completion_rules": {"global": "the guests said the order is right"},
        },
    },
    "max_duration_seconds": 1800,
    "completion_criteria": {"global": "The order is confirmed"},
    "voice": "alloy",
}


def call(name: str, **args: Any) -> ScriptedToolCall:
    return ScriptedToolCall(name, (json.dumps(args),))


@pytest.fixture
async def llm() -> AsyncIterator[OpenAIWireServer]:
    async with OpenAIWireServer() as server:
        yield server


def guided_app(llm: OpenAIWireServer, **settings: Any) -> Parley:
    """The offline cascade with the loopback OpenAI brain (the document's key)."""
    return Parley(
        settings=ParleySettings(
            engine=EngineKind.LOCAL,
            brain="openai:gpt-4o-mini",
            llm_base_url=llm.openai_base_url,
            **settings,
        )
    )


def pcm24k(text: str) -> bytes:
    pcm, rate = speak(text)
    samples = np.frombuffer(pcm, dtype="<i2")
    return bytes(soxr.resample(samples, rate, 24000).astype("<i2").tobytes())


async def send_audio(ws: Any, pcm: bytes, *, chunk_ms: int = 20) -> None:
    """``input_audio_buffer.append`` events of base64 PCM16 24 kHz, in real time."""
    step = 24 * chunk_ms * 2
    for i in range(0, len(pcm), step):
        chunk = base64.b64encode(pcm[i : i + step]).decode()
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
        await asyncio.sleep(chunk_ms / 1000)  # a microphone's pace


async def events_until(ws: Any, done: str, *, within: float = 15.0) -> list[dict[str, Any]]:
    """Server events up to and including the first of type ``done``."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        while True:
            event = json.loads(await ws.recv())
            assert event["type"] != "error", event
            seen.append(event)
            if event["type"] == done:
                return seen


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


# -- the document's usage: create, connect, talk -------------------------------------------


async def test_create_a_conversation_then_talk_over_realtime_in_pcm16_24khz(
    llm: OpenAIWireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "YOUR_OPENAI_API_KEY")  # the document's step 3
    llm.script(
        ScriptedReply(
            tool_calls=(
                call("record_observation", key="party_size", value="2"),
                call("mark_criterion_met", criterion="guests_greeted"),
                call("transition_to", phase="ordering"),
            )
        ),
        ScriptedReply(text=split_words(WELCOME)),
    )
    app = guided_app(llm)
    async with serve_app(app) as server, httpx.AsyncClient(base_url=server.url) as http:
        # 1. Create a Conversation Session: POST /conversations, a ConversationConfig.
        created = await http.post("/conversations", json=DOCUMENT_CONFIG)
        assert created.status_code == 201, created.text
        body = created.json()
        session_id = body["session_id"]
        assert body["id"] == session_id and body["status"] == "pending"
        assert body["realtime_path"] == f"/realtime/{session_id}"
        assert body["realtime_url"] == server.ws_url(f"/realtime/{session_id}")
        assert (body["flow"], body["phase"]) == ("AI Waiter", "greeting")
        # "alloy" is an OpenAI voice: the offline cascade keeps its own, and says so
        assert body["voice"] == "joe" and "'alloy'" in body["warnings"][0]
        progress = (await http.get(f"/conversations/{session_id}/progress")).json()
        assert progress["phase"] == "greeting" and progress["time_budget_s"] == 120

        # 2. Connect via WebSocket /realtime/{session_id}; send PCM16 at 24 kHz.
        async with websockets.connect(server.ws_url(f"/realtime/{session_id}")) as ws:
            created_event = json.loads(await ws.recv())
            assert created_event["type"] == "session.created"
            fmt = created_event["session"]["audio"]["input"]["format"]
            assert fmt == {"type": "audio/pcm", "rate": 24000}
            await send_audio(ws, bytes(24000) + pcm24k(SAID) + bytes(48000))
            events = await events_until(ws, "response.done")
        record = app.calls.get(session_id)

        heard = of(events, "conversation.item.input_audio_transcription.completed")
        assert normalise(heard[0]["transcript"]) == normalise(SAID)
        for kind in ("input_audio_buffer.speech_started", "input_audio_buffer.committed"):
            assert of(events, kind), kind
        spoken = b"".join(
            base64.b64decode(e["delta"]) for e in of(events, "response.output_audio.delta")
        )
        assert len(spoken) > 24000  # over half a second of reply audio, PCM16 24 kHz
        (said,) = of(events, "response.output_audio_transcript.done")
        assert said["transcript"] == WELCOME

        # The brain was asked with the document's key, the conversation's own flow
        # (its system instructions, phase, criteria, observations) and the flow's tools.
        first, second = llm.requests_to("/v1/chat/completions")[:2]
        assert first.headers["authorization"] == "Bearer YOUR_OPENAI_API_KEY"
        system = first.json_body["messages"][0]["content"]
        assert system.startswith("You are a friendly waiter at a small bistro.")
        assert "Current phase: greeting" in system and "party_size" in system
        assert "The conversation is complete when: global: The order is confirmed" in system
        tools = {t["function"]["name"] for t in first.json_body["tools"]}
        assert tools == {"record_observation", "mark_criterion_met", "transition_to"}
        assert "Current phase: ordering" in second.json_body["messages"][0]["content"]

        progress = (await http.get(f"/conversations/{session_id}/progress")).json()
        assert progress["phase"] == "ordering"
        assert progress["phases_visited"] == ["greeting", "ordering"]
        assert progress["observations"] == {"party_size": "2"}
        assert progress["completed_criteria"] == {"greeting": ["guests_greeted"]}
        assert record is not None
        await app.calls.wait_finished([record], 5)
        info = (await http.get(f"/conversations/{session_id}")).json()
    assert info["kind"] == "realtime" and info["status"] == "ended"
    assert [t["role"] for t in info["turns"]] == ["user", "assistant"]
    assert normalise(info["turns"][0]["text"]) == normalise(SAID)


# -- who may claim a conversation, and what a refusal says ---------------------------------

SECRET = "seed-002-test-secret-0123456789abcdef"


def jwt_for(user: str) -> str:
    claims = {
        "sub": user,
        "tenant": "t1",
        "permissions": [p.value for p in Permission if p is not Permission.ADMIN],
        "exp": int(time.time()) + 600,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def refused(url: str, token: str) -> tuple[dict[str, Any], int | None, str]:
    """What a refused claim says: the Realtime ``error`` event, then the close."""
    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(url, additional_headers=headers) as ws:
        error = json.loads(await ws.recv())
        await ws.wait_closed()
    return error, ws.close_code, ws.close_reason or ""


async def test_a_pending_conversation_is_claimed_by_its_owner_once_with_clear_refusals() -> None:
    settings = ParleySettings(
        engine=EngineKind.LOOPBACK, auth={"jwt": {"secret": SECRET, "algorithms": ["HS256"]}}
    )
    app = Parley(ConversationConfig(enable_auth=True), settings=settings)
    alice, bob = jwt_for("alice"), jwt_for("bob")
    async with serve_app(app) as server, httpx.AsyncClient(base_url=server.url) as http:
        made = await http.post(
            "/conversations", json=DOCUMENT_CONFIG, headers={"Authorization": f"Bearer {alice}"}
        )
        assert made.status_code == 201, made.text
        url = made.json()["realtime_url"]
        # no credentials: the handshake is refused with OpenAI's 401 body
        with pytest.raises(websockets.InvalidStatus) as no_key:
            async with websockets.connect(url):
                pass
        assert no_key.value.response.status_code == 401
        # another user's conversation is answered exactly as an unknown one
        unknown = server.ws_url("/realtime/no-such-id")
        for who, where in ((bob, url), (alice, unknown)):
            error, code, reason = await refused(where, who)
            assert error["type"] == "error" and error["error"]["code"] == "unknown_conversation"
            assert code == 1008 and reason.startswith("unknown_conversation: no conversation")
        headers = {"Authorization": f"Bearer {alice}"}
        async with websockets.connect(url, additional_headers=headers) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            error, code, reason = await refused(url, alice)  # claimed already
            assert error["error"]["code"] == "conversation_taken" and code == 1008
            assert reason == f"conversation_taken: conversation {made.json()['id']!r} is live"
            record = app.calls.get(made.json()["id"])
            assert record is not None and record.kind == "realtime"
            assert record.owner_id == "alice" and record.flow is not None
    assert record.status == "ended"


# -- event handlers a user extends, and the ObservationTracker ----------------------------


class Notes(ConversationEventHandler):
    """The document's "extend the event handlers": partial transcripts, function calls,
    and user data kept with the ObservationTracker."""

    made: ClassVar[list[Notes]] = []

    def __init__(self, session_id: str, observations: ObservationTracker | None) -> None:
        super().__init__(session_id, observations)
        self.partial = ""
        self.heard: list[str] = []
        self.calls: list[str] = []
        self.replies: list[str] = []
        Notes.made.append(self)

    async def on_text_delta(self, event: Any) -> None:
        self.partial += event.text

    async def on_transcript(self, event: TranscriptFinal) -> None:
        if event.role == "user":
            self.heard.append(event.text)
            if self.observations is not None and "two" in event.text:
                self.observations.add_observation("party_size", 2)

    async def on_function_call(self, event: ToolCall) -> None:
        self.calls.append(event.name)

    async def on_response_done(self, event: ResponseDone) -> None:
        self.replies.append(event.text)


async def say_text(ws: Any, text: str) -> list[dict[str, Any]]:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
    await ws.send(json.dumps({"type": "response.create"}))
    return await events_until(ws, "response.done")


async def test_event_handlers_and_the_observation_tracker(llm: OpenAIWireServer) -> None:
    llm.script(
        ScriptedReply(text=split_words("Welcome! How many are you?")),
        ScriptedReply(
            tool_calls=(
                call("mark_criterion_met", criterion="guests_greeted"),
                call("transition_to", phase="ordering"),
            )
        ),
        ScriptedReply(text=split_words("Lovely. What would you like?")),
    )
    app = guided_app(llm, llm_api_key="k")
    app.event_handler(Notes)
    Notes.made.clear()
    async with serve_app(app) as server, httpx.AsyncClient(base_url=server.url) as http:
        session_id = (await http.post("/conversations", json=DOCUMENT_CONFIG)).json()["session_id"]
        async with websockets.connect(server.ws_url(f"/realtime/{session_id}")) as ws:
            await ws.recv()  # session.created
            update = {
                "type": "session.update",
                "session": {"type": "realtime", "output_modalities": ["text"]},
            }
            await ws.send(json.dumps(update))
            await events_until(ws, "session.updated")
            first = await say_text(ws, "Hi, we are two.")
            tracker = app.observations(session_id)
            assert tracker is not None and tracker.observations == {"party_size": 2}
            assert tracker.missing == () and tracker.pending_criteria == ("guests_greeted",)
            second = await say_text(ws, "We would like to order.")
            assert tracker.phase == "ordering" and tracker.missing == ("order",)
            assert tracker.add_observation("order", "two soups")["ok"] is True
            assert tracker.criteria_met("no_such")["ok"] is False
            progress = (await http.get(f"/conversations/{session_id}/progress")).json()
    (notes,) = Notes.made
    assert notes.session_id == session_id and notes.observations is not None
    assert notes.heard == ["Hi, we are two.", "We would like to order."]
    assert notes.calls == ["mark_criterion_met", "transition_to"]
    assert notes.partial == "Welcome! How many are you?Lovely. What would you like?"
    assert notes.replies == ["Welcome! How many are you?", "Lovely. What would you like?"]
    # the server ran the flow's tools itself: the client saw no function call to answer
    assert not [e for e in first + second if e["type"].startswith("response.function_call")]
    assert progress["observations"] == {"party_size": 2, "order": "two soups"}
    assert progress["missing_observations"] == []


def test_a_handler_must_be_a_conversation_event_handler() -> None:
    app = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK))
    with pytest.raises(Exception, match="not a ConversationEventHandler subclass"):
        app.event_handler(dict)  # type: ignore[type-var]


# -- the three configuration examples ------------------------------------------------------


def example(name: str) -> ModuleType:
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "name", ["language_assessment", "restaurant_ordering", "financial_advisor"]
)
async def test_each_example_module_creates_its_conversation(name: str) -> None:
    module = example(name)
    flow = load_flow(EXAMPLES / f"{name}.yaml")
    assert module.config.to_flow() == flow  # the module is its YAML, in the document's shape
    app = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK))
    async with serve_app(app) as server, httpx.AsyncClient(base_url=server.url) as http:
        made = await asyncio.to_thread(module.create, server.url)
        assert (made["flow"], made["phase"]) == (flow.name, flow.initial)
        progress = (await http.get(f"/conversations/{made['session_id']}/progress")).json()
        assert progress["phase"] == flow.initial and progress["goal"] == flow.goal
        record = app.calls.get(made["session_id"])
        assert record is not None and record.flow == flow
        assert record.system_prompt == module.config.system_instructions
        assert record.max_seconds == module.config.max_duration_seconds
        # and as a script: `python examples/NAME.py URL`
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLES / f"{name}.py"),
            server.url,
            stdout=asyncio.subprocess.PIPE,
            env={"PYTHONPATH": str(EXAMPLES.parent / "src"), "PATH": "/usr/bin:/bin"},
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    lines = out.decode().splitlines()
    assert lines[0].startswith("session_id: ") and lines[1].startswith(
        "talk to it: parley talk ws://"
    )


# -- the configuration is validated, and bounded --------------------------------------------


def with_phase(**changes: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(DOCUMENT_CONFIG))
    body["phases"]["ordering"].update(changes)
    return body


async def test_a_bad_conversation_config_is_refused_naming_what_is_wrong() -> None:
    app = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK))
    many = {f"p{i}": {"instructions": "x", "next_phases": []} for i in range(51)}
    cases: list[tuple[dict[str, Any], str]] = [
        (with_phase(next_phases=["dessert"]), "next phase 'dessert' is not defined"),
        (with_phase(tone="warm"), "Extra inputs are not permitted"),
        ({**DOCUMENT_CONFIG, "initial_phase": "bar"}, "initial phase 'bar' is not one of"),
        ({k: v for k, v in DOCUMENT_CONFIG.items() if k != "goal"}, "goal: Field required"),
        ({**DOCUMENT_CONFIG, "system_prompt": "x"}, "system_prompt or system_instructions"),
        ({**DOCUMENT_CONFIG, "phases": many, "initial_phase": "p0"}, "at most 50"),
        ({**DOCUMENT_CONFIG, "max_duration_seconds": 0}, "greater than 0"),
        ({"goal": "talk"}, '"loc":["body","initial_phase"],"msg":"initial_phase: Field required"'),
    ]
    async with serve_app(app) as server, httpx.AsyncClient(base_url=server.url) as http:
        for body, said in cases:
            r = await http.post("/conversations", json=body)
            assert r.status_code == 422, (said, r.text)
            assert said in r.text, (said, r.text)
        plain = await http.post("/conversations", json={"system_instructions": "Be brief."})
        assert plain.status_code == 201 and plain.json()["flow"] is None
        record = app.calls.get(plain.json()["id"])
        assert record is not None and record.system_prompt == "Be brief."
        no_flow = await http.get(f"/conversations/{plain.json()['id']}/progress")
        assert no_flow.status_code == 404 and "has no guided flow" in no_flow.text


# -- durations: the conversation's and each phase's ------------------------------------------


async def test_max_duration_seconds_ends_the_call() -> None:
    app = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK))
    async with serve_app(app) as server, httpx.AsyncClient(base_url=server.url) as http:
        body = {**DOCUMENT_CONFIG, "max_duration_seconds": 0.5}
        made = (await http.post("/conversations", json=body)).json()
        started = time.monotonic()
        async with websockets.connect(made["realtime_url"]) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            await asyncio.wait_for(ws.wait_closed(), 5)
        assert 0.5 <= time.monotonic() - started < 3
        assert ws.close_code == 1008
        assert (ws.close_reason or "").startswith(
            "max_duration: the call reached its limit of 0.5 s"
        )
        info = (await http.get(f"/conversations/{made['id']}")).json()
    assert info["end_reason"] == "max_duration"


async def test_a_phase_max_duration_seconds_is_its_time_budget() -> None:
    config = with_phase(max_duration_seconds=0.2, on_budget_exhausted="confirmation")
    config["phases"]["greeting"]["max_duration_seconds"] = 0.2
    controller = FlowController(GuidedConversation.parse(config).to_flow())
    assert "time budget" not in controller.instructions
    await asyncio.sleep(0.25)  # the clock under test: the phase's 0.2 s budget passes
    await controller.observe(ResponseDone("r1", text="Hello!"))
    # greeting has no way out on its budget: the model is told to finish
    assert controller.phase == "greeting"
    assert "The time budget of this phase (0.2 s) is used up" in controller.instructions
    controller.record_observation("party_size", 2)
    controller.mark_criterion_met("guests_greeted")
    assert (await controller.transition_to("ordering"))["ok"] is True
    await controller.observe(ResponseDone("r2", text="What will it be?"))
    assert controller.phase == "ordering"  # its budget starts afresh
    await asyncio.sleep(0.25)  # and runs out on the clock
    await controller.observe(ResponseDone("r3", text="Anything else?"))
    assert controller.phase == "confirmation"  # ordering's budget moved it on
    assert controller.progress().phases_visited == ("greeting", "ordering", "confirmation")


# -- another node claims it: the flow is in the shared store -------------------------------


async def test_a_conversation_made_on_one_node_runs_its_flow_on_another(tmp_path: Path) -> None:
    def node(name: str) -> Parley:
        return Parley(
            settings=ParleySettings(
                engine=EngineKind.LOOPBACK,
                session_store="sqlite",
                session_db=tmp_path / "sessions.db",
                node_id=name,
            )
        )

    made_on, run_on = node("a"), node("b")
    async with serve_app(made_on) as a, serve_app(run_on) as b:
        async with httpx.AsyncClient(base_url=a.url) as http:
            made = (await http.post("/conversations", json=DOCUMENT_CONFIG)).json()
        flow = GuidedConversation.parse(DOCUMENT_CONFIG).to_flow()
        stored = await made_on.session(made["id"])
        assert stored is not None and stored.record.config["flow"] == flow.as_dict()
        async with websockets.connect(b.ws_url(made["realtime_path"])) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            controller = run_on.flow_controller(made["id"])
            assert controller is not None and controller.flow == flow
            assert controller.base_instructions == DOCUMENT_CONFIG["system_instructions"]

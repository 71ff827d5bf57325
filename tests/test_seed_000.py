"""Seed 000 (Parley, "intelligent AI voice chat backends"): every code example of the
document, verbatim, offline.

The document's ``ParleyBackend`` is :class:`parley.app.Parley`; its keywords are thin
layers over Parley's settings (docs/seeds.md, 000). Where an example names an API key,
the key is the document's dummy and the API is a loopback server answering in that
API's real streaming wire format (``parley.testing.OpenAIWireServer`` /
``AnthropicWireServer``), named by the environment the way a user would point the SDKs
elsewhere (``PARLEY_LLM_BASE_URL``, ``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL``).
Without a key the brain is the offline echo and the voice Piper's. Each backend serves
at least one call over a real socket (the talk page's ``/ws/audio``, typed text, Piper
speaking the reply). What a test adds around an example — names the document uses but
never defines (``fetch_user_orders``, ``OrderContextTrigger``, ``processed_audio``, …),
the call, the assertions — is marked as such.
"""

# The examples keep the document's spelling (typing.List/Dict, its comments, its blanks).
# ruff: noqa: UP006, UP035, W293, I001

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

import httpx
import pytest
import websockets

from parley import (
    AnalyticsResult,
    AnthropicProvider,
    ConversationConfig,
    ConversationMetrics,
    OpenAIProvider,
    ParleyBackend,
    RedisSessionStore,
    Session,
    Turn,
)
from parley.conversation.pii import redact_pii
from parley.errors import ConfigError, ProviderError
from parley.events import Role
from parley.protocols.browser import (
    ErrorMessage,
    PCMFormat,
    PlaybackMessage,
    ReadyMessage,
    ResponseDoneMessage,
    StartMessage,
    UserTextMessage,
    encode_client_message,
    parse_server_frame,
)
from parley.providers.fallback import FallbackLLM
from parley.providers.seams import Message
from parley.store.compliance import generate_key
from parley.testing import AnthropicWireServer, OpenAIWireServer, ScriptedReply, split_words
from parley.testing.redis_server import RedisServer
from parley.testing.wire_base import ScriptedError
from servers import free_port, serve_app

ROOT = Path(__file__).resolve().parents[1]
KEY = "pk_seed000_test_key_0123456789"  # the settings' API key when enable_auth is on


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A clean environment: no keys or endpoints from the machine, files in tmp_path,
    ``start()`` on a free port."""
    for name in list(os.environ):
        if name.startswith("PARLEY_") or name in (
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_BASE_URL",
        ):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # parley.db, parley-analytics.sqlite3
    monkeypatch.setenv("PARLEY_PORT", "0")


async def until(cond: Callable[[], object], within: float = 15.0) -> None:
    # For a trigger's injection into a live call's context: the document's handlers are
    # verbatim and ContextManager has no change event.
    deadline = time.monotonic() + within
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@dataclass
class Browser:
    """The talk page's side of ``/ws/audio``: start, typed text, PCM16 audio."""

    ws: websockets.ClientConnection
    session_id: str = ""
    audio: bytearray = field(default_factory=bytearray)
    errors: list[ErrorMessage] = field(default_factory=list)

    async def next_done(self, within: float = 30.0) -> ResponseDoneMessage:
        async with asyncio.timeout(within):
            async for frame in self.ws:
                if isinstance(frame, bytes):
                    self.audio += frame
                    continue
                message = parse_server_frame(frame)
                if isinstance(message, ErrorMessage):
                    self.errors.append(message)
                elif isinstance(message, ResponseDoneMessage):
                    return message
        raise AssertionError("the socket closed before the reply was done")

    async def say(self, text: str) -> str:
        """Type ``text``; the whole reply's text, once all its audio has arrived (and
        is reported played, as the talk page does: the next turn is no barge-in)."""
        before = len(self.audio)
        await self.ws.send(encode_client_message(UserTextMessage(text)))
        done = await self.next_done()
        assert done.status == "completed", (done, self.errors)
        spoken = len(self.audio) - before
        assert spoken > 3200, "the reply was not spoken"
        played = PlaybackMessage(done.response_id, played_ms=spoken / 32.0, done=True)
        await self.ws.send(encode_client_message(played))
        return done.text


@contextlib.asynccontextmanager
async def browser(
    port: int, *, user_id: str = "user-1", metadata: dict[str, str] | None = None
) -> AsyncIterator[Browser]:
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/audio", max_size=None) as ws:
        start = StartMessage(
            user_id=user_id, format=PCMFormat(sample_rate=16000), metadata=metadata or {}
        )
        await ws.send(encode_client_message(start))
        ready = parse_server_frame(await asyncio.wait_for(ws.recv(), 30))
        assert isinstance(ready, ReadyMessage)
        yield Browser(ws, ready.session_id)


def system_text(body: dict[str, Any]) -> str:
    return "\n".join(m["content"] for m in body["messages"] if m["role"] == "system")


# -- Quick Start: Basic Usage -----------------------------------------------------------


async def test_basic_usage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with OpenAIWireServer() as wire:
        monkeypatch.setenv("PARLEY_LLM_BASE_URL", wire.openai_base_url)  # "OpenAI", offline
        wire.script(ScriptedReply(text=split_words("Hello John, how can I help?")))

        # ---- the document's example ----------------------------------------------------
        # fmt: off
        from parley import ParleyBackend, ConversationConfig

        # Initialize backend
        backend = ParleyBackend(
            openai_api_key="your-api-key",
            config=ConversationConfig(
                system_prompt="You are a helpful assistant",
                enable_analytics=True
            )
        )

        # Set up context provider
        @backend.context_provider
        async def get_user_context(user_id: str):  # type: ignore[no-untyped-def]
            # Fetch from your database
            return {
                "user_name": "John",
                "preferences": ["concise answers"],
                "history": ["previous_conversation_summary"]
            }

        # Handle conversation events
        @backend.on_conversation_start
        async def on_start(session_id: str, user_id: str):  # type: ignore[no-untyped-def]
            print(f"Conversation started: {session_id}")

        # Start the backend
        await backend.start()
        # fmt: on
        # --------------------------------------------------------------------------------
        port = backend.port
        assert port is not None
        try:
            async with browser(port, user_id="john") as call:
                reply = await call.say("Hi there")
        finally:
            await backend.stop()
        assert reply == "Hello John, how can I help?"
        (request,) = wire.requests_to("/v1/chat/completions")
        assert request.headers["authorization"] == "Bearer your-api-key"
        body = request.json_body
        assert body["model"] == "gpt-4o-mini" and body["stream"] is True
        system = system_text(body)
        assert "You are a helpful assistant" in system
        assert '"user_name":"John"' in system  # the provider's data, in the model's context
        assert body["messages"][-1] == {"role": "user", "content": "Hi there"}
        assert f"Conversation started: {call.session_id}" in capsys.readouterr().out
        async with httpx.AsyncClient() as http:
            with pytest.raises(httpx.TransportError):  # stop() closed the socket
                await http.get(f"http://127.0.0.1:{port}/healthz", timeout=1)


# -- Advanced Context Injection -----------------------------------------------------------


async def fetch_user_orders(session_id: str) -> list[dict[str, str]]:  # the test's database
    return [{"id": "#4521", "status": "shipped Tuesday"}]


async def get_queue_status() -> str:
    return "2 minutes"


async def check_agents() -> int:
    return 3


async def test_advanced_context_injection(monkeypatch: pytest.MonkeyPatch) -> None:
    async with OpenAIWireServer() as wire:
        monkeypatch.setenv("PARLEY_LLM_BASE_URL", wire.openai_base_url)
        wire.script(
            ScriptedReply(text=split_words("Let me look that up.")),
            ScriptedReply(text=split_words("Order #4521 shipped on Tuesday.")),
        )

        # ---- the document's example ----------------------------------------------------
        # fmt: off
        from parley import ParleyBackend, ContextTrigger, TriggerType

        backend = ParleyBackend(api_key="...")

        # Semantic trigger - inject context when certain topics arise
        @backend.context_trigger(
            trigger_type=TriggerType.SEMANTIC,
            keywords=["order", "purchase", "buy"]
        )
        async def inject_order_context(session_id: str, detected_keywords: List[str]):  # type: ignore[no-untyped-def]
            orders = await fetch_user_orders(session_id)
            return {
                "recent_orders": orders,
                "shipping_address": "...",
                "payment_methods": ["..."]
            }

        # Periodic trigger - update context every 30 seconds
        @backend.context_trigger(
            trigger_type=TriggerType.PERIODIC,
            interval_seconds=30
        )
        async def update_live_data(session_id: str):  # type: ignore[no-untyped-def]
            return {
                "current_wait_time": await get_queue_status(),
                "agent_availability": await check_agents()
            }

        # Event-based trigger
        @backend.context_trigger(
            trigger_type=TriggerType.EVENT,
            event="user_authenticated"
        )
        async def inject_auth_context(session_id: str, user_data: dict):  # type: ignore[no-untyped-def, type-arg]
            return {
                "user_tier": user_data["subscription_level"],
                "permissions": user_data["permissions"]
            }
        # fmt: on
        # --------------------------------------------------------------------------------
        assert isinstance(backend.context_triggers[0], ContextTrigger)
        periodic = backend.context_triggers[1]
        assert periodic.type is TriggerType.PERIODIC and periodic.interval_seconds == 30
        async with serve_app(backend) as server, browser(server.port) as call:
            await call.say("I want to check on my order please")
            context = backend.context_of(call.session_id)
            assert context is not None
            await until(lambda: "inject_order_context" in context.entries)
            ran = await backend.fire(
                call.session_id,
                "user_authenticated",
                {"subscription_level": "gold", "permissions": ["orders"]},
            )
            assert ran == 1
            assert await call.say("When will it arrive?") == "Order #4521 shipped on Tuesday."
        first, second = wire.chat_requests
        assert wire.requests[0].headers["authorization"] == "Bearer ..."
        assert "#4521" not in system_text(first)  # the trigger fired on that turn's words
        system = system_text(second)
        assert '"recent_orders":[{"id":"#4521","status":"shipped Tuesday"}]' in system
        assert '"user_tier":"gold"' in system and '"permissions":["orders"]' in system
        # A 30-second trigger does not fire in a short call; its handler is the user's:
        assert await update_live_data("s") == {
            "current_wait_time": "2 minutes",
            "agent_availability": 3,
        }


# -- Monitoring and Analytics -------------------------------------------------------------


def analyze_sentiment(transcript: List[Turn]) -> float:
    return 0.9 if any("thank" in t.text.lower() for t in transcript) else 0.0


def extract_topics(transcript: List[Turn]) -> List[str]:
    return ["booking"] if any("table" in t.text.lower() for t in transcript) else []


def check_resolution(transcript: List[Turn]) -> bool:
    return any(t.role is Role.ASSISTANT and t.text for t in transcript)


async def test_monitoring_and_analytics(capsys: pytest.CaptureFixture[str]) -> None:
    backend = ParleyBackend(config=ConversationConfig(enable_analytics=True, track_costs=True))

    # ---- the document's example ---------------------------------------------------------
    # fmt: off
    # Real-time metrics
    @backend.on_metrics_update
    async def handle_metrics(metrics: ConversationMetrics):  # type: ignore[no-untyped-def]
        print(f"Latency: {metrics.voice_to_voice_ms}ms")
        print(f"Cost: ${metrics.estimated_cost}")
        print(f"Engagement: {metrics.engagement_score}")

    # Custom analytics
    @backend.analytics_processor
    async def process_conversation(transcript: List[Turn]) -> AnalyticsResult:
        sentiment = analyze_sentiment(transcript)
        topics = extract_topics(transcript)
        return AnalyticsResult(
            sentiment=sentiment,
            topics=topics,
            resolution_status="resolved" if check_resolution(transcript) else "ongoing"
        )
    # fmt: on
    # ------------------------------------------------------------------------------------
    feed = backend.analytics.feed.subscribe()
    async with serve_app(backend) as server:
        async with browser(server.port) as call:
            reply = await call.say("A table for two tonight, thank you")
        assert reply == "You said: A table for two tonight, thank you"  # the offline echo

        async with asyncio.timeout(30):  # the processor runs off the call's path
            while (message := await feed.get()) is not None and message[0] != "analytics":
                pass
        async with httpx.AsyncClient(base_url=server.url) as http:
            stored = (await http.get(f"/analytics/calls/{call.session_id}")).json()
    assert stored["analytics"]["topics"] == ["booking"]
    assert stored["analytics"]["sentiment"] == 0.9
    assert stored["analytics"]["resolution_status"] == "resolved"
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("Latency: ")]  # each turn, and the call
    costs = [line for line in out if line.startswith("Cost: $")]
    assert costs and all(float(c.removeprefix("Cost: $")) >= 0 for c in costs)
    assert [line for line in out if line.startswith("Engagement: ")]


# -- Middleware Pipeline --------------------------------------------------------------------


def remove_pii(text: str) -> str:  # the document's helpers, made of Parley's redaction
    return redact_pii(text)[0]


def add_user_name(text: str, user_name: str | None) -> str:
    return text.replace("{name}", user_name or "there")


async def test_middleware_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    async with OpenAIWireServer() as wire:
        monkeypatch.setenv("PARLEY_LLM_BASE_URL", wire.openai_base_url)
        wire.script(
            ScriptedReply(text=split_words("Your card 4111 1111 1111 1111 is on file, {name}."))
        )
        backend = ParleyBackend(openai_api_key="sk-test")

        @backend.context_provider
        async def profile(user_id: str | None) -> dict[str, Any]:  # the test's data
            return {"user_name": "John", "plan": "gold"}

        # ---- the document's example ----------------------------------------------------
        # fmt: off
        # Request middleware - modify AI input
        @backend.request_middleware
        async def enhance_request(text: str, context: Dict) -> str:  # type: ignore[type-arg]
            # Add context to user message
            enhanced = f"Context: {json.dumps(context)}\nUser: {text}"
            return enhanced

        # Response middleware - process AI output
        @backend.response_middleware
        async def process_response(text: str, session: Session) -> str:
            # Filter sensitive information
            filtered = remove_pii(text)
            # Add personalization
            personalized = add_user_name(filtered, session.user_name)
            return personalized
        # fmt: on
        # --------------------------------------------------------------------------------
        async with serve_app(backend) as server, browser(server.port) as call:
            reply = await call.say("Is my card saved?")
        assert reply == "Your card [redacted card number] is on file, John."
        (body,) = wire.chat_requests
        user = body["messages"][-1]["content"]
        assert user == (
            'Context: {"profile": {"user_name": "John", "plan": "gold"}}\nUser: Is my card saved?'
        )


# -- Configuration: ConversationConfig ------------------------------------------------------


async def test_conversation_config_as_shown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # enable_auth=True needs keys: the deployment's settings, as docs/compliance.md says.
    monkeypatch.setenv("PARLEY_AUTH", json.dumps({"api_keys": [{"key": KEY, "user_id": "app"}]}))

    # ---- the document's example ---------------------------------------------------------
    # fmt: off
    config = ConversationConfig(
        # AI Configuration
        system_prompt="Your assistant personality",
        voice="alloy",
        model="gpt-4",
        
        # Context Settings
        max_context_size=4000,  # tokens
        context_window_minutes=30,
        enable_async_injection=True,
        
        # Performance
        target_latency_ms=200,
        enable_caching=True,
        cache_ttl_seconds=300,
        
        # Analytics
        enable_analytics=True,
        track_costs=True,
        track_engagement=True,
        
        # Security
        enable_auth=True,
        rate_limit_per_minute=60
    )
    # fmt: on
    # ------------------------------------------------------------------------------------
    assert (config.voice, config.model, config.max_context_size) == ("alloy", "gpt-4", 4000)
    backend = ParleyBackend(config=config)
    # Offline: no key for gpt-4 and no Piper voice "alloy" — mapped, and said once at start.
    assert backend.settings.brain == "echo" and backend.config.voice == "joe"
    caplog.set_level(logging.INFO)
    async with serve_app(backend) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            refused = await http.post("/conversations", json={})
            made = await http.post(
                "/conversations", json={}, headers={"Authorization": f"Bearer {KEY}"}
            )
        assert refused.status_code == 401
        assert made.status_code == 201, made.text
        async with browser(server.port, metadata={"token": KEY}) as call:
            assert await call.say("Hello") == "You said: Hello"
    notes = [r.getMessage() for r in caplog.records if "ConversationConfig:" in r.getMessage()]
    assert len(notes) == 1
    assert "model='gpt-4'" in notes[0] and "openai_api_key" in notes[0]
    assert "voice='alloy'" in notes[0] and "'joe'" in notes[0]


def test_conversation_config_values_parley_cannot_honour_say_what_it_offers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match=r"auth\.api_keys or auth\.jwt"):
        ParleyBackend(config=ConversationConfig(enable_auth=True))
    with pytest.raises(ConfigError, match=r"available: joe"):  # not an OpenAI voice either
        ParleyBackend(config=ConversationConfig(voice="nobody"))
    # With a key the model is the brain; a brain set in the settings wins over model=.
    hosted = ParleyBackend(openai_api_key="sk", config=ConversationConfig(model="gpt-4"))
    assert hosted.settings.brain == "openai:gpt-4" and hosted.switchboard.notes == ()
    claude = ParleyBackend(api_key="sk", config=ConversationConfig(model="claude-3-5-haiku"))
    assert claude.settings.brain == "anthropic:claude-3-5-haiku"
    monkeypatch.setenv("PARLEY_BRAIN", "template")
    pinned = ParleyBackend(openai_api_key="sk", config=ConversationConfig(model="gpt-4"))
    assert pinned.settings.brain == "template"
    assert "model='gpt-4' is not used" in pinned.switchboard.notes[0]


# -- Analytics Dashboard ----------------------------------------------------------------------

DASHBOARD = """
from parley import ParleyBackend
backend = ParleyBackend()

# ---- the document's example (the port: the test's own) ----
from parley.dashboard import create_dashboard

app = create_dashboard(backend)
app.run(port={port})
"""


def test_analytics_dashboard(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "dashboard.log").open("wb")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", DASHBOARD.format(port=port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 30
        page = None
        while page is None:
            assert proc.poll() is None, (tmp_path / "dashboard.log").read_text()
            assert time.monotonic() < deadline, "the dashboard did not start"
            with contextlib.suppress(httpx.TransportError):
                page = httpx.get(f"http://localhost:{port}/", timeout=1)
            time.sleep(0.05)  # another process: it shows it is up only over HTTP
        assert page.status_code == 200 and "Parley" in page.text
        script = httpx.get(f"http://localhost:{port}/static/dashboard.js", timeout=5)
        assert script.status_code == 200
        summary = httpx.get(f"http://localhost:{port}/api/summary", timeout=5)
        assert summary.status_code == 200 and "live" in summary.json()
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C, as run() is stopped
        code = proc.wait(15)
        log.close()
    assert code == 0, (tmp_path / "dashboard.log").read_text()


# -- Use Cases --------------------------------------------------------------------------------
# The document names these triggers but never defines them: the application's own
# subclasses of ContextTrigger, one per kind.
from parley import ContextTrigger, TriggerType  # noqa: E402


class OrderContextTrigger(ContextTrigger):
    def __init__(self) -> None:
        super().__init__(TriggerType.SEMANTIC, self.orders, keywords=["order", "refund"])

    async def orders(self, session_id: str, detected: list[str]) -> dict[str, Any]:
        return {"last_order": "#4521, shipped Tuesday", "asked_about": detected}


class AccountContextTrigger(ContextTrigger):
    def __init__(self) -> None:
        super().__init__(TriggerType.EVENT, self.account, event="user_authenticated")

    async def account(self, session_id: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"tier": data["tier"]}


class TicketHistoryTrigger(ContextTrigger):
    def __init__(self) -> None:
        super().__init__(TriggerType.PERIODIC, self.tickets, interval_seconds=0.2)

    async def tickets(self, session_id: str) -> dict[str, Any]:
        return {"open_tickets": 1}


class CalendarContextTrigger(OrderContextTrigger):
    def __init__(self) -> None:
        ContextTrigger.__init__(self, TriggerType.SEMANTIC, self.calendar, keywords=["meeting"])

    async def calendar(self, session_id: str, detected: list[str]) -> dict[str, Any]:
        return {"next_meeting": "10:30 with Ana"}


class EmailContextTrigger(AccountContextTrigger):
    pass


class TaskContextTrigger(TicketHistoryTrigger):
    pass


class MedicalHistoryTrigger(ContextTrigger):
    def __init__(self) -> None:
        super().__init__(TriggerType.SEMANTIC, self.history, keywords=["medication"])

    async def history(self, session_id: str, detected: list[str]) -> dict[str, Any]:
        return {"allergies": ["penicillin"]}


class AppointmentTrigger(AccountContextTrigger):
    pass


class MedicationReminderTrigger(TicketHistoryTrigger):
    pass


async def check_triggers(backend: Any, say: str, semantic_key: str) -> None:
    """One call: the semantic trigger fires on ``say``, the periodic one by itself, the
    event one when fired; each injects into the live call's context."""
    async with serve_app(backend) as server, browser(server.port) as call:
        assert await call.say(say) == f"You said: {say}"
        context = backend.context_of(call.session_id)
        assert context is not None
        assert await backend.fire(call.session_id, "user_authenticated", {"tier": "gold"}) == 1
        await until(lambda: {semantic_key, "account", "tickets"} <= set(context.entries))
        assert context.entries["account"].text == '{"tier":"gold"}'


async def test_customer_support_bot() -> None:
    # ---- the document's example ---------------------------------------------------------
    # fmt: off
    backend = ParleyBackend(
        system_prompt="You are a helpful customer support agent",
        context_triggers=[
            OrderContextTrigger(),
            AccountContextTrigger(),
            TicketHistoryTrigger()
        ]
    )
    # fmt: on
    # ------------------------------------------------------------------------------------
    assert backend.config.system_prompt == "You are a helpful customer support agent"
    await check_triggers(backend, "Where is my refund", "orders")


async def test_personal_assistant() -> None:
    # ---- the document's example ---------------------------------------------------------
    # fmt: off
    backend = ParleyBackend(
        system_prompt="You are a personal AI assistant",
        context_triggers=[
            CalendarContextTrigger(),
            EmailContextTrigger(),
            TaskContextTrigger()
        ]
    )
    # fmt: on
    # ------------------------------------------------------------------------------------
    await check_triggers(backend, "When is my next meeting", "calendar")


async def test_healthcare_companion(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="PARLEY_ENCRYPTION_KEY"):
        ParleyBackend(compliance_mode="HIPAA")
    monkeypatch.setenv("PARLEY_ENCRYPTION_KEY", generate_key())  # the deployment's key

    # ---- the document's example ---------------------------------------------------------
    # fmt: off
    backend = ParleyBackend(
        system_prompt="You are a healthcare companion",
        context_triggers=[
            MedicalHistoryTrigger(),
            AppointmentTrigger(),
            MedicationReminderTrigger()
        ],
        compliance_mode="HIPAA"
    )
    # fmt: on
    # ------------------------------------------------------------------------------------
    said = "My medication is due, my card is 4111 1111 1111 1111"
    await check_triggers(backend, said, "history")
    sessions = await backend.switchboard.storage.sessions.list(tenant=None)
    (stored,) = [await backend.session(r.session_id) for r in sessions]
    assert stored is not None
    user = stored.turns[0].text  # HIPAA: what is kept is redacted (and encrypted at rest)
    assert user == "My medication is due, my card is [redacted card number]"


def test_context_triggers_takes_context_triggers_only() -> None:
    async def handler(session_id: str) -> dict[str, Any]:
        return {}

    with pytest.raises(ConfigError, match="ContextTrigger instances"):
        ParleyBackend(context_triggers=[handler])  # type: ignore[list-item]


# -- Advanced Features: Multi-Provider Support ------------------------------------------------


@contextlib.asynccontextmanager
async def two_apis(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Any, Any]]:
    async with OpenAIWireServer() as openai_api, AnthropicWireServer() as anthropic_api:
        monkeypatch.setenv("OPENAI_BASE_URL", openai_api.openai_base_url)  # read by the SDKs
        monkeypatch.setenv("ANTHROPIC_BASE_URL", anthropic_api.url)
        yield openai_api, anthropic_api


async def test_multi_provider_latency_based(monkeypatch: pytest.MonkeyPatch) -> None:
    async with two_apis(monkeypatch) as (openai_api, anthropic_api):
        # OpenAI is slow to begin (0.4 s before each chunk), Anthropic quick; Anthropic's
        # third answer is an error.
        slow = 0.4
        openai_api.script(
            ScriptedReply(text=("From OpenAI.",), chunk_delay_s=slow),
            ScriptedReply(text=("OpenAI again.",), chunk_delay_s=slow),
        )
        anthropic_api.script(
            ScriptedReply(text=("From Claude.",)),
            ScriptedReply(text=("Claude again.",)),
            ScriptedError(400, "scripted refusal"),
        )

        # ---- the document's example ----------------------------------------------------
        # fmt: off
        backend = ParleyBackend(
            providers=[
                OpenAIProvider(api_key="..."),
                AnthropicProvider(api_key="..."),  # Fallback
            ],
            fallback_strategy="latency_based"
        )
        # fmt: on
        # --------------------------------------------------------------------------------
        assert "latency_based fallback over gpt-4o-mini" in backend.engine_choice().banner()
        async with serve_app(backend) as server, browser(server.port) as call:
            assert await call.say("one") == "From OpenAI."  # neither measured: in order
            assert await call.say("two") == "From Claude."  # Anthropic, not measured yet
            assert await call.say("three") == "Claude again."  # the quicker one
            assert await call.say("four") == "OpenAI again."  # Anthropic failed: fallback
        assert openai_api.requests[0].headers["authorization"] == "Bearer ..."
        sent = anthropic_api.requests[0].headers  # the SDK sends the key one way or the other
        assert "..." in (sent.get("x-api-key"), sent.get("authorization", "")[len("Bearer ") :])
        # Each provider is given the whole conversation, whoever answered before.
        last = openai_api.chat_requests[-1]["messages"]
        assert [(m["role"], m["content"]) for m in last[1:]] == [
            ("user", "one"),
            ("assistant", "From OpenAI."),
            ("user", "two"),
            ("assistant", "From Claude."),
            ("user", "three"),
            ("assistant", "Claude again."),
            ("user", "four"),
        ]


async def test_multi_provider_ordered_and_all_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    async with two_apis(monkeypatch) as (openai_api, anthropic_api):
        openai_api.script(
            ScriptedReply(text=("OpenAI.",)),
            ScriptedError(400, "down"),
            ScriptedError(400, "still down"),
        )
        anthropic_api.script(ScriptedReply(text=("Claude.",)), ScriptedError(400, "also down"))
        llm = FallbackLLM.of(
            [OpenAIProvider(api_key="a"), AnthropicProvider(api_key="b")], "ordered"
        )
        ask = [Message(Role.USER, "hi")]
        try:
            assert "".join([str(c) async for c in llm.stream(ask)]) == "OpenAI."
            assert "".join([str(c) async for c in llm.stream(ask)]) == "Claude."
            # OpenAI failed last time, so it is tried last; then both fail.
            assert llm.order() == ["anthropic:claude-3-5-haiku-latest", "openai:gpt-4o-mini"]
            with pytest.raises(ProviderError, match="every provider failed"):
                _ = [c async for c in llm.stream(ask)]
        finally:
            await llm.aclose()
    with pytest.raises(ConfigError, match="'ordered' or 'latency_based'"):
        ParleyBackend(providers=[OpenAIProvider(api_key="a")], fallback_strategy="cheapest")
    with pytest.raises(ConfigError, match="providers"):
        ParleyBackend(fallback_strategy="ordered")


# -- Advanced Features: Session Persistence ---------------------------------------------------


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with RedisServer() as server:  # its own redis-server on a free port
        yield server.url


async def test_session_persistence(redis_url: str) -> None:
    # ---- the document's example (the URL: the test's own redis-server) ------------------
    # fmt: off
    backend = ParleyBackend(
        session_store=RedisSessionStore(url=redis_url),
        persist_conversations=True
    )
    # fmt: on
    # ------------------------------------------------------------------------------------
    async with serve_app(backend) as server, browser(server.port) as call:
        assert await call.say("Remember me") == "You said: Remember me"
    elsewhere = RedisSessionStore(url=redis_url)  # another node, reading the same Redis
    try:
        stored = await elsewhere.load(call.session_id)
    finally:
        await elsewhere.aclose()
    assert stored is not None
    assert [(t.role, t.text) for t in stored.turns] == [
        ("user", "Remember me"),
        ("assistant", "You said: Remember me"),
    ]


# -- Advanced Features: Custom Voice Processing -----------------------------------------------


async def test_custom_voice_processing(monkeypatch: pytest.MonkeyPatch) -> None:
    # The loopback engine says back what it hears: what comes back is what the
    # preprocessor made of the caller's audio.
    monkeypatch.setenv("PARLEY_ENGINE", "loopback")
    backend = ParleyBackend()
    processed_audio = (b"\x10\x00\xf0\xff" * 160)[:640]  # the test's "processed" 20 ms
    heard: list[int] = []

    # ---- the document's example ---------------------------------------------------------
    # fmt: off
    @backend.audio_preprocessor
    async def process_audio(audio_data: bytes) -> bytes:
        # Noise reduction, normalization, etc.
        return processed_audio
    # fmt: on
    # ------------------------------------------------------------------------------------

    @backend.audio_preprocessor
    def count(pcm: bytes) -> bytes:  # after it, in order (a synchronous one may follow)
        heard.append(len(pcm))
        return pcm

    noise = os.urandom(640)
    async with serve_app(backend) as server, browser(server.port) as call:
        for _ in range(10):
            await call.ws.send(noise)
        async with asyncio.timeout(10):
            while len(call.audio) < 10 * 640:
                frame = await call.ws.recv()
                if isinstance(frame, bytes):
                    call.audio += frame
    assert bytes(call.audio[: 10 * 640]) == processed_audio * 10
    assert heard == [640] * 10

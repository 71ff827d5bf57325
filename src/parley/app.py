"""The ``Parley`` facade: the object a user builds a voice backend on.

    from parley import Parley, ConversationConfig
    from parley.events import TranscriptFinal

    app = Parley(ConversationConfig(system_prompt="You are a helpful support agent"))

    @app.tool
    async def order_status(order_id: str) -> str:
        '''Look up an order.

        Args:
            order_id: The order number the caller read out.
        '''
        return "shipped"

    @app.on_event(TranscriptFinal)
    async def heard(session_id: str, event: TranscriptFinal) -> None: ...

    app.run()          # or: uvicorn "myapp:app.asgi"

Hooks are plain async functions: ``on_conversation_start`` / ``on_conversation_end``
get ``(session_id, user_id)``, ``on_event(EventType)`` gets ``(session_id, event)``
with ``event`` of that type. A hook that raises is logged and the call goes on: a
bug in user code must not drop a phone call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, get_args, overload

from parley.config import ConversationConfig, EngineKind, ParleySettings, load_settings
from parley.conversation.session import Conversation
from parley.conversation.tools import ToolRegistry
from parley.engines.factory import EngineChoice, EngineFactory, describe_engine
from parley.engines.seams import Engine, ToolRunner
from parley.errors import ConfigError
from parley.events import Event
from parley.server.auth import TwilioTokens
from parley.server.registry import CallKind, CallRecord, CallRegistry

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = [
    "EngineRequest",
    "EventHandler",
    "LifecycleHandler",
    "Parley",
    "ParleyBackend",
]

log = logging.getLogger("parley.app")

E = TypeVar("E")
LifecycleHandler = Callable[[str, "str | None"], Awaitable[None]]
EventHandler = Callable[[str, E], Awaitable[None]]
_F = TypeVar("_F", bound=Callable[..., Any])
_EVENT_TYPES: frozenset[type] = frozenset(get_args(Event))


@dataclass(frozen=True, slots=True)
class EngineRequest:
    """What a custom ``engine_factory`` is asked to build for one call."""

    conversation_id: str
    engine: EngineKind
    brain: str
    voice: str
    instructions: str
    tools: ToolRunner | None
    sample_rate: int  # the transport's input rate (8000 for Twilio)


class Parley:
    """Decorators and registries of one voice app, its ASGI app and its server."""

    def __init__(
        self,
        config: ConversationConfig | None = None,
        *,
        settings: ParleySettings | None = None,
        engine_factory: Callable[[EngineRequest], Engine] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        self.config = config if config is not None else self.settings.conversation
        self.tools = ToolRegistry()
        self.engines = EngineFactory(self.settings)
        self.calls = CallRegistry(max_calls=self.settings.max_calls)
        self._engine_factory = engine_factory
        self._on_start: list[LifecycleHandler] = []
        self._on_end: list[LifecycleHandler] = []
        self._handlers: dict[type, list[Callable[[str, Any], Awaitable[None]]]] = {}
        token = self.settings.twilio_auth_token
        self.twilio_tokens: TwilioTokens | None = (
            TwilioTokens(
                token.get_secret_value(), ttl_seconds=self.settings.twilio_token_ttl_seconds
            )
            if token is not None
            else None
        )
        #: True once a graceful shutdown began: new calls are refused.
        self.draining = False
        self._asgi: FastAPI | None = None
        if self._engine_factory is None:
            s = self.settings
            self.engines.check(s.engine, s.brain, self.config.voice)

    # -- decorators --------------------------------------------------------------------

    def on_conversation_start(self, fn: LifecycleHandler) -> LifecycleHandler:
        """``async def f(session_id: str, user_id: str | None) -> None``, when a call starts."""
        self._on_start.append(fn)
        return fn

    def on_conversation_end(self, fn: LifecycleHandler) -> LifecycleHandler:
        """``async def f(session_id: str, user_id: str | None) -> None``, after a call ended."""
        self._on_end.append(fn)
        return fn

    def on_event(self, event_type: type[E]) -> Callable[[EventHandler[E]], EventHandler[E]]:
        """``@app.on_event(TranscriptFinal)`` → ``async def f(session_id, event)``."""
        if event_type not in _EVENT_TYPES:
            names = ", ".join(sorted(t.__name__ for t in _EVENT_TYPES))
            raise ConfigError(f"{event_type!r} is not a Parley event ({names})", field="on_event")

        def register(fn: EventHandler[E]) -> EventHandler[E]:
            self._handlers.setdefault(event_type, []).append(fn)
            return fn

        return register

    @overload
    def tool(self, fn: _F, /) -> _F: ...

    @overload
    def tool(
        self, fn: None = None, /, *, name: str | None = None, description: str | None = None
    ) -> Callable[[_F], _F]: ...

    def tool(
        self,
        fn: _F | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> _F | Callable[[_F], _F]:
        """Register a function the model may call (schema from hints and docstring)."""

        def add(f: _F) -> _F:
            self.tools.register(name=name, description=description)(f)
            return f

        return add(fn) if fn is not None else add

    # -- serving -----------------------------------------------------------------------

    @property
    def asgi(self) -> FastAPI:
        """The FastAPI app (built once): ``uvicorn "myapp:app.asgi"``."""
        if self._asgi is None:
            from parley.server.app import create_app

            self._asgi = create_app(self)
        return self._asgi

    def engine_choice(self) -> EngineChoice:
        return describe_engine(self.settings)

    def run(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        workers: int | None = None,
        app_import: str | None = None,
    ) -> None:
        """Serve with uvicorn. ``workers > 1`` needs ``app_import``: an import string of
        a zero-argument factory returning a FastAPI app (each worker builds its own)."""
        from parley.server.run import run_server

        run_server(
            self,
            host=host or self.settings.host,
            port=self.settings.port if port is None else port,
            workers=workers or self.settings.workers,
            app_import=app_import,
        )

    def get_health_status(self) -> dict[str, Any]:
        """Active connections, audio handlers, the engine and queue depths of each call."""
        active = self.calls.active()
        return {
            "status": "draining" if self.draining else "ok",
            "active_connections": self.calls.connections,
            "active_audio_handlers": sum(1 for r in active if r.status == "live"),
            "open_conversations": self.calls.open_count(),
            "max_calls": self.calls.max_calls,
            "engine": self.settings.engine.value,
            "brain": self.settings.brain,
            "calls": [r.health() for r in active],
            "time": time.time(),
        }

    # -- used by serve_call and the routes ---------------------------------------------

    def refusal(self) -> str | None:
        """Why a new call must be refused now, or None."""
        if self.draining:
            return "server is shutting down"
        if self.calls.open_count() >= self.calls.max_calls:
            return f"server is at capacity ({self.calls.max_calls} calls)"
        return None

    def new_record(
        self,
        *,
        kind: CallKind | None = None,
        user_id: str | None = None,
        system_prompt: str | None = None,
        voice: str | None = None,
        engine: EngineKind | None = None,
        brain: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> CallRecord:
        """Register a conversation with this app's defaults for what is not given."""
        record = CallRecord(
            id=self.calls.new_id(),
            engine=engine or self.settings.engine,
            brain=brain or self.settings.brain,
            voice=voice or self.config.voice,
            system_prompt=self.config.system_prompt if system_prompt is None else system_prompt,
            kind=kind,
            user_id=user_id,
            metadata=dict(metadata or {}),
        )
        if self._engine_factory is None:
            self.engines.check(record.engine, record.brain, record.voice)
        return self.calls.add(record)

    def make_engine(
        self, record: CallRecord, sample_rate: int, line_encoding: str = "pcm16"
    ) -> Engine:
        tools = self.tools if len(self.tools) else None
        if self._engine_factory is not None:
            return self._engine_factory(
                EngineRequest(
                    record.id,
                    record.engine,
                    record.brain,
                    record.voice,
                    record.system_prompt,
                    tools,
                    sample_rate,
                )
            )
        return self.engines.build(
            engine=record.engine,
            brain=record.brain,
            voice=record.voice,
            instructions=record.system_prompt,
            tools=tools,
            sample_rate=sample_rate,
            line_encoding=line_encoding,
        )

    def conversation(self, session_id: str) -> Conversation | None:
        record = self.calls.get(session_id)
        return record.conversation if record is not None else None

    def start_hook(self, record: CallRecord) -> Callable[[Conversation], Awaitable[None]] | None:
        return self._lifecycle(self._on_start, record, "on_conversation_start")

    def end_hook(self, record: CallRecord) -> Callable[[Conversation], Awaitable[None]] | None:
        return self._lifecycle(self._on_end, record, "on_conversation_end")

    def _lifecycle(
        self, hooks: list[LifecycleHandler], record: CallRecord, what: str
    ) -> Callable[[Conversation], Awaitable[None]] | None:
        if not hooks:
            return None

        async def run(conv: Conversation) -> None:
            for hook in hooks:
                await _guarded(hook(record.id, record.user_id), what, record.id)

        return run

    def event_dispatcher(self, session_id: str) -> Callable[[Event], Awaitable[None]] | None:
        """The per-call event fan-out, or None when no handler is registered (the hot
        path then pays nothing per audio chunk)."""
        handlers = self._handlers
        if not handlers:
            return None

        async def dispatch(event: Event) -> None:
            for fn in handlers.get(type(event), ()):
                await _guarded(fn(session_id, event), "on_event", session_id)

        return dispatch

    async def end_call(self, session_id: str) -> bool:
        """End a call (DELETE); False if there is no such conversation."""
        record = self.calls.get(session_id)
        if record is None:
            return False
        record.end_requested = True
        if record.conversation is not None:
            await record.conversation.end()
            # Answer once the call is over (the socket closed, on_end ran), bounded.
            await self.calls.wait_finished([record], 5.0)
        elif record.status == "pending":
            self.calls.ended(record)
        return True


async def _guarded(call: Awaitable[None], what: str, session_id: str) -> None:
    try:
        await call
    except Exception:  # the user-code boundary: a failing hook must not drop the call
        log.exception("%s hook failed for %s", what, session_id)


#: The name the seed documents use.
ParleyBackend = Parley

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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_args, overload

from parley.config import ConversationConfig, EngineKind, ParleySettings, load_settings
from parley.conversation.context import ContextManager, ContextProvider, InjectResult, ProviderFn
from parley.conversation.middleware import (
    AudioPreprocessor,
    Middleware,
    MiddlewareRegistry,
    TextMiddleware,
    TextTransform,
)
from parley.conversation.session import Conversation
from parley.conversation.tools import ToolRegistry
from parley.conversation.triggers import (
    ContextTrigger,
    Embedder,
    TriggerHandler,
    TriggerRunner,
    TriggerType,
)
from parley.engines.factory import EngineChoice, EngineFactory, describe_engine
from parley.engines.seams import Engine, ToolRunner
from parley.engines.text_hooks import MiddlewareHost
from parley.errors import ConfigError
from parley.events import Event, Interrupted, ResponseDone, ResponseStarted, Role, TranscriptFinal
from parley.flows import FlowConfig, FlowController, FlowRegistry, load_flow
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
# What the context layer watches: transcripts (SEMANTIC triggers) and reply boundaries.
_CONTEXT_EVENTS: frozenset[type] = frozenset(
    {TranscriptFinal, ResponseStarted, ResponseDone, Interrupted}
)


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
        flow: FlowConfig | str | Path | Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        #: A guided multi-phase conversation every call follows (None: free talk).
        self.flow = load_flow(flow) if flow is not None else None
        self.flows = FlowRegistry()
        self.config = config if config is not None else self.settings.conversation
        self.tools = ToolRegistry()
        self.middleware = MiddlewareRegistry()
        self.engines = EngineFactory(self.settings)
        self.calls = CallRegistry(max_calls=self.settings.max_calls)
        self._engine_factory = engine_factory
        self._on_start: list[LifecycleHandler] = []
        self._on_end: list[LifecycleHandler] = []
        self._handlers: dict[type, list[Callable[[str, Any], Awaitable[None]]]] = {}
        self.context_providers: list[ContextProvider] = []
        self.context_triggers: list[ContextTrigger] = []
        self._runners: dict[str, TriggerRunner] = {}  # live calls' context layers
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

    @overload
    def context_provider(self, fn: ProviderFn, /) -> ProviderFn: ...

    @overload
    def context_provider(
        self, fn: None = None, /, *, ttl_seconds: float | None = None, key: str | None = None
    ) -> Callable[[ProviderFn], ProviderFn]: ...

    def context_provider(
        self,
        fn: ProviderFn | None = None,
        /,
        *,
        ttl_seconds: float | None = None,
        key: str | None = None,
    ) -> ProviderFn | Callable[[ProviderFn], ProviderFn]:
        """``async def f(user_id: str | None) -> dict | None``: blended into the model's
        context at conversation start and again whenever the user's cached data expires
        (``ttl_seconds``, default ``ConversationConfig.cache_ttl_seconds``)."""

        def add(f: ProviderFn) -> ProviderFn:
            ttl = self.config.cache_ttl_seconds if ttl_seconds is None else ttl_seconds
            self.context_providers.append(ContextProvider(f, ttl_seconds=ttl, key=key or ""))
            return f

        return add(fn) if fn is not None else add

    def context_trigger(
        self,
        trigger_type: TriggerType,
        *,
        keywords: list[str] | tuple[str, ...] = (),
        interval_seconds: float | None = None,
        event: str | None = None,
        key: str | None = None,
        roles: tuple[Role, ...] = (Role.USER, Role.ASSISTANT),
        embedder: Embedder | None = None,
        similarity_threshold: float = 0.5,
        cooldown_seconds: float = 0.0,
    ) -> Callable[[TriggerHandler], TriggerHandler]:
        """``@app.context_trigger(TriggerType.SEMANTIC, keywords=["refund"])`` and the
        PERIODIC / EVENT kinds (see :mod:`parley.conversation.triggers`). What the
        handler returns is injected under ``key`` (default: the handler's name)."""

        def register(fn: TriggerHandler) -> TriggerHandler:
            self.context_triggers.append(
                ContextTrigger(
                    TriggerType(trigger_type),
                    fn,
                    keywords=tuple(keywords),
                    interval_seconds=interval_seconds,
                    event=event,
                    key=key or "",
                    roles=frozenset(roles),
                    embedder=embedder,
                    similarity_threshold=similarity_threshold,
                    cooldown_seconds=cooldown_seconds,
                )
            )
            return fn

        return register

    # -- context of live calls -----------------------------------------------------------

    def context_events(self) -> frozenset[str]:
        """The names EVENT triggers listen for."""
        return frozenset(
            t.event for t in self.context_triggers if t.type is TriggerType.EVENT and t.event
        )

    def context_of(self, session_id: str) -> ContextManager | None:
        """The live call's context, or None when the call is not live."""
        runner = self._runners.get(session_id)
        return runner.manager if runner is not None else None

    async def inject_context(
        self, session_id: str, key: str, data: object, *, source: str = "app"
    ) -> InjectResult | None:
        """Blend ``data`` into a live call's context; None when the call is not live."""
        runner = self._runners.get(session_id)
        if runner is None:
            return None
        return await runner.manager.inject(key, data, source=source)

    async def fire(
        self, session_id: str, event: str, data: dict[str, Any] | None = None
    ) -> int | None:
        """Fire the EVENT triggers named ``event`` on a live call: how many ran (None
        when the call is not live)."""
        runner = self._runners.get(session_id)
        if runner is None:
            return None
        return await runner.fire(event, data)

    def _context_runner(self, record: CallRecord, conv: Conversation) -> TriggerRunner:
        cfg = self.config
        manager = ContextManager(
            conv.engine,
            max_tokens=cfg.max_context_size,
            window_seconds=cfg.context_window_minutes * 60,
            async_injection=cfg.enable_async_injection,
        )
        return TriggerRunner(
            record.id,
            manager,
            triggers=tuple(self.context_triggers),
            providers=tuple(self.context_providers),
            user_id=record.user_id,
        )

    # -- middleware (parley.conversation.middleware) ---------------------------------------

    def request_middleware(self, fn: TextMiddleware) -> TextMiddleware:
        """``async def f(text: str, ctx: MiddlewareContext) -> str``: the user's text
        before the model (``ctx.context`` holds the call's injected context). On the
        realtime engine: typed text only (spoken turns reach the model as audio)."""
        self.middleware.add(TextTransform(fn), request=True, response=False)
        return fn

    def response_middleware(self, fn: TextMiddleware) -> TextMiddleware:
        """``async def f(text: str, ctx: MiddlewareContext) -> str``: each sentence of
        the model's reply before it is spoken (cascade) or shown (realtime: transcripts
        and text only — audio synthesised upstream cannot be changed)."""
        self.middleware.add(TextTransform(fn), request=False, response=True)
        return fn

    @overload
    def audio_preprocessor(self, fn: AudioPreprocessor, /) -> AudioPreprocessor: ...

    @overload
    def audio_preprocessor(
        self, fn: None = None, /, *, per_call: bool = False
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...

    def audio_preprocessor(
        self, fn: Callable[..., Any] | None = None, /, *, per_call: bool = False
    ) -> Callable[..., Any]:
        """``def f(pcm: bytes) -> bytes`` (synchronous, fast: it runs per chunk): the
        caller's PCM16 mono at the engine's rate, before VAD/STT. With
        ``per_call=True`` the function is a factory ``f(sample_rate) -> (pcm -> pcm)``
        called once per call, for filters that keep state."""

        def add(f: Callable[..., Any]) -> Callable[..., Any]:
            self.middleware.add_audio(f, per_call=per_call)
            return f

        return add(fn) if fn is not None else add

    def add_middleware(
        self, middleware: Middleware, *, request: bool = True, response: bool = True
    ) -> None:
        """A chain-form middleware (``process(context, next)``), e.g.
        ``app.add_middleware(PIIRedactionMiddleware(), request=False)``."""
        self.middleware.add(middleware, request=request, response=response)

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

    def flow_controller(self, session_id: str) -> FlowController | None:
        """The call's guided-flow state (made on first use, so a call's progress can be
        read before its socket connects), or None without a flow or such a call."""
        if self.flow is None:
            return None
        controller = self.flows.get(session_id)
        if controller is None:
            record = self.calls.get(session_id)
            if record is None:
                return None
            tools = self.tools if len(self.tools) else None
            controller = self.flows.add(
                session_id,
                FlowController(self.flow, base_instructions=record.system_prompt, tools=tools),
            )
        return controller

    def make_engine(
        self, record: CallRecord, sample_rate: int, line_encoding: str = "pcm16"
    ) -> Engine:
        tools: ToolRunner | None = self.tools if len(self.tools) else None
        instructions = record.system_prompt
        controller = self.flow_controller(record.id)
        if controller is not None:
            # The flow's tools (record_observation, mark_criterion_met, transition_to)
            # wrap the app's own; its phase instructions follow the system prompt.
            tools, instructions = controller, controller.instructions
        engine: Engine
        if self._engine_factory is not None:
            engine = self._engine_factory(
                EngineRequest(
                    record.id,
                    record.engine,
                    record.brain,
                    record.voice,
                    instructions,
                    tools,
                    sample_rate,
                )
            )
        else:
            engine = self.engines.build(
                engine=record.engine,
                brain=record.brain,
                voice=record.voice,
                instructions=instructions,
                tools=tools,
                sample_rate=sample_rate,
                line_encoding=line_encoding,
            )
        if controller is not None:
            engine = controller.attach(engine)
        return self._attach_middleware(engine, record)

    def _attach_middleware(self, engine: Engine, record: CallRecord) -> Engine:
        """Give the engine this call's request/response middleware (nothing to do, and
        nothing paid per turn, when none is registered)."""
        session_id = record.id

        def context() -> dict[str, str]:
            manager = self.context_of(session_id)
            return {} if manager is None else {k: e.text for k, e in manager.entries.items()}

        pipeline = self.middleware.pipeline(
            conversation_id=session_id,
            user_id=record.user_id,
            metadata=record.metadata,
            context=context,
        )
        if pipeline is None:
            return engine
        if isinstance(engine, MiddlewareHost):
            engine.set_text_hooks(
                request=pipeline.request if pipeline.has_request else None,
                response=pipeline.response if pipeline.has_response else None,
            )
        else:
            log.warning(
                "call %s: engine %s takes no text middleware", session_id, type(engine).__name__
            )
        return engine

    def audio_preprocessor_for(self, engine: Engine) -> AudioPreprocessor | None:
        """The call's ``@app.audio_preprocessor`` chain at the engine's input rate, or
        None (the inbound path then does no extra work)."""
        return self.middleware.audio_chain(engine.input_format.sample_rate)

    def conversation(self, session_id: str) -> Conversation | None:
        record = self.calls.get(session_id)
        return record.conversation if record is not None else None

    def start_hook(self, record: CallRecord) -> Callable[[Conversation], Awaitable[None]] | None:
        user = self._lifecycle(self._on_start, record, "on_conversation_start")

        async def start(conv: Conversation) -> None:
            # The context layer first: the providers' data is there before the first turn.
            runner = self._context_runner(record, conv)
            self._runners[record.id] = runner
            conv.context = runner
            await runner.start()
            if user is not None:
                await user(conv)

        return start

    def end_hook(self, record: CallRecord) -> Callable[[Conversation], Awaitable[None]] | None:
        user = self._lifecycle(self._on_end, record, "on_conversation_end")

        async def end(conv: Conversation) -> None:
            runner = self._runners.pop(record.id, None)
            if runner is not None:
                conv.context = None
                await runner.close()
            if user is not None:
                await user(conv)

        return end

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
        # The context layer watches transcripts for SEMANTIC triggers, and reply
        # boundaries when injections wait for the end of a reply.
        watch = not self.config.enable_async_injection or any(
            t.type is TriggerType.SEMANTIC for t in self.context_triggers
        )
        if not handlers and not watch:
            return None
        runners = self._runners

        async def dispatch(event: Event) -> None:
            if watch and type(event) in _CONTEXT_EVENTS:
                runner = runners.get(session_id)
                if runner is not None:
                    await runner.observe(event)
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

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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_args, overload

from parley.analytics.hub import AnalyticsHub, MetricsHandler
from parley.analytics.processor import AnalyticsProcessor
from parley.config import (
    ConversationConfig,
    ParleySettings,
    choose_hosted,
    engine_spec,
    load_settings,
    provider_options,
)
from parley.conversation.context import ContextManager, ContextProvider, InjectResult, ProviderFn
from parley.conversation.middleware import (
    AsyncAudioPreprocessor,
    AudioPreprocessor,
    Middleware,
    MiddlewareRegistry,
    OnError,
    TextMiddleware,
    TextTransform,
)
from parley.conversation.session import Conversation
from parley.conversation.tools import ToolRegistry
from parley.conversation.triggers import (
    ContextTrigger,
    Embedder,
    TriggerHandler,
    TriggerType,
)
from parley.engines.factory import EngineChoice, EngineFactory
from parley.engines.seams import Engine
from parley.engines.spec import EngineRequest
from parley.errors import ConfigError
from parley.events import Event, Role
from parley.flows import (
    ConversationEventHandler,
    FlowConfig,
    FlowController,
    FlowRegistry,
    ObservationTracker,
    load_flow,
)
from parley.providers.fallback import FallbackLLM, HostedProvider
from parley.providers.registry import ProviderRegistry
from parley.server.auth import TwilioTokens
from parley.server.calls import CallRecord, CallRegistry
from parley.server.persistence import Storage
from parley.server.setup import CallSetup, EventHandler, LifecycleHandler
from parley.server.switchboard import Switchboard
from parley.store.records import SessionStore, StoredSession

if TYPE_CHECKING:
    from fastapi import FastAPI

    from parley.server.run import BackgroundServer

__all__ = [
    "EngineRequest",
    "EventHandler",
    "LifecycleHandler",
    "Parley",
    "ParleyBackend",
]

log = logging.getLogger("parley.app")

E = TypeVar("E")
H = TypeVar("H", bound=ConversationEventHandler)
_F = TypeVar("_F", bound=Callable[..., Any])
_TM = TypeVar("_TM", bound=TextMiddleware)
_EVENT_TYPES: frozenset[type] = frozenset(get_args(Event))


class Parley:
    """Decorators and registries of one voice app, its ASGI app and its server.

    Calls themselves are the switchboard's (:mod:`parley.server.switchboard`): it
    creates, refuses, runs and ends them, for every route. The app only registers
    what calls are built with and delegates the rest.
    """

    def __init__(
        self,
        config: ConversationConfig | None = None,
        *,
        settings: ParleySettings | None = None,
        engine_factory: Callable[[EngineRequest], Engine] | None = None,
        flow: FlowConfig | str | Path | Mapping[str, Any] | None = None,
        session_store: SessionStore | None = None,
        persist_conversations: bool | None = None,
        compliance_mode: str | None = None,
        system_prompt: str | None = None,
        context_triggers: Sequence[ContextTrigger] = (),
        openai_api_key: str | None = None,
        api_key: str | None = None,
        providers: Sequence[HostedProvider] = (),
        fallback_strategy: str | None = None,
    ) -> None:
        """``session_store`` (e.g. ``RedisSessionStore(url=…)``) and
        ``persist_conversations`` (finished turns and ended calls kept: SQLite beside
        the app unless a store is given) override the settings of the same names, as
        does ``compliance_mode="HIPAA"`` (docs/compliance.md).

        The seed documents' keywords (docs/seeds.md, 000): ``system_prompt`` (over
        ``config``'s), ``context_triggers`` (:class:`ContextTrigger` instances, e.g. of
        your subclasses), ``openai_api_key`` / ``api_key`` (the hosted brain's key;
        with one and no brain configured, the brain is ``config.model`` on OpenAI —
        see :func:`parley.config.choose_hosted`), ``providers=[OpenAIProvider(…),
        AnthropicProvider(…)]`` with ``fallback_strategy`` ``"ordered"`` (default) or
        ``"latency_based"`` (:mod:`parley.providers.fallback`)."""
        if openai_api_key is not None and api_key is not None and openai_api_key != api_key:
            raise ConfigError(
                "openai_api_key and api_key are the same key: give one", field="api_key"
            )
        if fallback_strategy is not None and not providers:
            raise ConfigError(
                "fallback_strategy chooses among providers=[OpenAIProvider(…), "
                "AnthropicProvider(…)]: give them",
                field="fallback_strategy",
            )
        settings = settings if settings is not None else load_settings()
        config = config if config is not None else settings.conversation
        if system_prompt is not None:
            config = config.model_copy(update={"system_prompt": system_prompt})
        brain: FallbackLLM | None = None
        if providers:
            brain = FallbackLLM.of(providers, fallback_strategy or "ordered")
            settings = settings.model_copy(update={"brain": providers[0].spec})
        choice = choose_hosted(settings, config, api_key=openai_api_key or api_key)
        self.settings, self.config = choice.settings, choice.config
        #: What every call is built with; the decorators below add to it.
        self.setup = CallSetup(
            self.config,
            flow=load_flow(flow) if flow is not None else None,
            engine_maker=engine_factory,
        )
        self.setup.context_triggers.extend(_checked_triggers(context_triggers))
        storage = Storage.from_settings(
            self.settings,
            session_store=session_store,
            persist=True if session_store is not None else persist_conversations,
            compliance_mode=compliance_mode,
        )
        factory: EngineFactory | None = None
        if brain is not None:
            registry = ProviderRegistry(provider_options(self.settings, self.config))
            registry.provide_brain(
                self.settings.brain,
                brain,
                description=brain.describe(providers),
                close=brain.aclose,
            )
            factory = EngineFactory(engine_spec(self.settings, self.config), registry)
        self.switchboard = Switchboard(
            self.settings,
            self.setup,
            factory=factory,
            storage=storage,
            notes=(choice.note,) if choice.note else (),
        )
        self._asgi: FastAPI | None = None
        self._background: BackgroundServer | None = None

    # -- the registries (read by the switchboard at each call) ----------------------------

    @property
    def tools(self) -> ToolRegistry:
        return self.setup.tools

    @property
    def middleware(self) -> MiddlewareRegistry:
        return self.setup.middleware

    @property
    def context_providers(self) -> list[ContextProvider]:
        return self.setup.context_providers

    @property
    def context_triggers(self) -> list[ContextTrigger]:
        return self.setup.context_triggers

    @property
    def flow(self) -> FlowConfig | None:
        """The guided multi-phase conversation every call follows (None: free talk)."""
        return self.setup.flow

    # -- the switchboard's state, for code and tests that look at it ----------------------

    @property
    def calls(self) -> CallRegistry:
        return self.switchboard.calls

    @property
    def flows(self) -> FlowRegistry:
        return self.switchboard.flows

    @property
    def engines(self) -> EngineFactory:
        return self.switchboard.factory

    @property
    def twilio_tokens(self) -> TwilioTokens | None:
        return self.switchboard.twilio_tokens

    @property
    def analytics(self) -> AnalyticsHub:
        """Every call's metrics, the analytics results and their history (what
        ``parley.dashboard.create_dashboard(app)`` shows)."""
        return self.switchboard.analytics

    @property
    def draining(self) -> bool:
        """True once a graceful shutdown began: new calls are refused."""
        return self.switchboard.draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self.switchboard.draining = value

    # -- decorators --------------------------------------------------------------------

    def on_conversation_start(self, fn: LifecycleHandler) -> LifecycleHandler:
        """``async def f(session_id: str, user_id: str | None) -> None``, when a call starts."""
        self.setup.on_start.append(fn)
        return fn

    def on_conversation_end(self, fn: LifecycleHandler) -> LifecycleHandler:
        """``async def f(session_id: str, user_id: str | None) -> None``, after a call ended."""
        self.setup.on_end.append(fn)
        return fn

    def on_event(self, event_type: type[E]) -> Callable[[EventHandler], EventHandler]:
        """``@app.on_event(TranscriptFinal)`` → ``async def f(session_id, event)``."""
        if event_type not in _EVENT_TYPES:
            names = ", ".join(sorted(t.__name__ for t in _EVENT_TYPES))
            raise ConfigError(f"{event_type!r} is not a Parley event ({names})", field="on_event")

        def register(fn: EventHandler) -> EventHandler:
            self.setup.handlers.setdefault(event_type, []).append(fn)
            return fn

        return register

    def event_handler(self, cls: type[H]) -> type[H]:
        """``@app.event_handler class Notes(ConversationEventHandler): ...``: one instance
        per call sees every event of it (``parley.flows.handlers``)."""
        if not (isinstance(cls, type) and issubclass(cls, ConversationEventHandler)):
            raise ConfigError(
                f"{cls!r} is not a ConversationEventHandler subclass", field="event_handler"
            )
        self.setup.event_handlers.append(cls)
        return cls

    def on_metrics_update(self, fn: MetricsHandler) -> MetricsHandler:
        """``async def f(metrics: ConversationMetrics) -> None`` after every turn of every
        call, and once more with the call's summary (``metrics.final``). Run off the
        call's path: a slow or failing handler never delays or breaks a call."""
        self.setup.metrics_handlers.append(fn)
        return fn

    def analytics_processor(self, fn: AnalyticsProcessor) -> AnalyticsProcessor:
        """``async def f(transcript: list[Turn]) -> AnalyticsResult`` when a call ends
        (``enable_analytics=True``), on the analytics worker's own thread and loop;
        replaces the built-in processor (sentiment, topics, resolution). Its result is
        stored with the call and shown on the dashboard."""
        if not self.config.enable_analytics:
            log.warning("an analytics_processor is registered but enable_analytics is off")
        self.setup.analytics_processor = fn
        return fn

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
        return self.switchboard.context_events()

    def context_of(self, session_id: str) -> ContextManager | None:
        """The live call's context, or None when the call is not live."""
        return self.switchboard.context_of(session_id)

    async def inject_context(
        self, session_id: str, key: str, data: object, *, source: str = "app"
    ) -> InjectResult | None:
        """Blend ``data`` into a live call's context; None when the call is not live."""
        return await self.switchboard.inject_context(session_id, key, data, source=source)

    async def invalidate_context(
        self, user_id: str, *, tenant: str = "default", provider: str | None = None
    ) -> None:
        """Drop a user's cached context-provider results (``enable_caching``) now, e.g.
        after their data changed: the next call asks the providers again."""
        await self.switchboard.caching.invalidate(user_id, tenant=tenant, provider=provider)

    async def fire(
        self, session_id: str, event: str, data: dict[str, Any] | None = None
    ) -> int | None:
        """Fire the EVENT triggers named ``event`` on a live call: how many ran (None
        when the call is not live)."""
        return await self.switchboard.fire(session_id, event, data)

    # -- middleware (parley.conversation.middleware) ---------------------------------------

    def request_middleware(self, fn: _TM) -> _TM:
        """``async def f(text: str, ctx: MiddlewareContext) -> str``: the user's text
        before the model (``ctx.context`` holds the call's injected context). On the
        realtime engine: typed text only (spoken turns reach the model as audio).
        A second parameter annotated ``dict`` (seed 000's ``context: Dict``) gets the
        injected context as data, one annotated ``Session`` a
        :class:`~parley.conversation.middleware.Session`."""
        self.middleware.add(TextTransform(fn), request=True, response=False)
        return fn

    def response_middleware(self, fn: _TM) -> _TM:
        """``async def f(text: str, ctx: MiddlewareContext) -> str``: each sentence of
        the model's reply before it is spoken (cascade) or shown (realtime: transcripts
        and text only — audio synthesised upstream cannot be changed). The second
        parameter may be a ``dict`` or a ``Session`` as for :meth:`request_middleware`
        (seed 000: ``async def f(text: str, session: Session) -> str``)."""
        self.middleware.add(TextTransform(fn), request=False, response=True)
        return fn

    @overload
    def audio_preprocessor(self, fn: AudioPreprocessor, /) -> AudioPreprocessor: ...

    @overload
    def audio_preprocessor(self, fn: AsyncAudioPreprocessor, /) -> AsyncAudioPreprocessor: ...

    @overload
    def audio_preprocessor(
        self, fn: None = None, /, *, per_call: bool = False
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...

    def audio_preprocessor(
        self, fn: Callable[..., Any] | None = None, /, *, per_call: bool = False
    ) -> Callable[..., Any]:
        """``def f(pcm: bytes) -> bytes`` (fast: it runs per chunk): the caller's PCM16
        mono at the engine's rate, before VAD/STT; ``async def`` too (seed 000's form,
        awaited per chunk: keep it quick, it holds up the caller's audio). With
        ``per_call=True`` the function is a factory ``f(sample_rate) -> (pcm -> pcm)``
        called once per call, for filters that keep state."""

        def add(f: Callable[..., Any]) -> Callable[..., Any]:
            self.middleware.add_audio(f, per_call=per_call)
            return f

        return add(fn) if fn is not None else add

    def add_middleware(
        self,
        middleware: Middleware,
        *,
        request: bool = True,
        response: bool = True,
        on_error: OnError | None = None,
    ) -> None:
        """A chain-form middleware (``process(context, next)``), e.g.
        ``app.add_middleware(PIIRedactionMiddleware(), request=False, on_error="strict")``.
        ``on_error`` overrides ``ConversationConfig.middleware_errors`` for this one (see
        :mod:`parley.conversation.middleware`: "skip" or "strict")."""
        self.middleware.add(middleware, request=request, response=response, on_error=on_error)

    # -- serving -----------------------------------------------------------------------

    @property
    def asgi(self) -> FastAPI:
        """The FastAPI app (built once): ``uvicorn "myapp:app.asgi"``."""
        if self._asgi is None:
            from parley.server.app import create_app

            self._asgi = create_app(self.switchboard)
        return self._asgi

    def engine_choice(self) -> EngineChoice:
        return self.switchboard.engine_choice()

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

        self.switchboard.security.check_exposure(host or self.settings.host)
        run_server(
            None if app_import is not None else self.asgi,
            host=host or self.settings.host,
            port=self.settings.port if port is None else port,
            workers=workers or self.settings.workers,
            app_import=app_import,
            drain_seconds=self.settings.drain_seconds,
        )

    async def start(self, *, host: str | None = None, port: int | None = None) -> None:
        """Serve on the running event loop and return once listening (seed 000's
        ``await backend.start()``); ``await stop()`` ends it. ``port=0`` (or
        ``PARLEY_PORT=0``) takes a free port: :attr:`port` says which."""
        if self._background is not None:
            raise ConfigError("the backend is already started: await stop() first")
        from parley.server.run import BackgroundServer

        where = host or self.settings.host
        self.switchboard.security.check_exposure(where)
        server = BackgroundServer(
            self.asgi,
            host=where,
            port=self.settings.port if port is None else port,
            drain_seconds=self.settings.drain_seconds,
        )
        await server.start()
        self._background = server

    async def stop(self) -> None:
        """Stop what :meth:`start` serves: live calls drain, then the server closes."""
        server, self._background = self._background, None
        if server is not None:
            await server.stop()

    @property
    def port(self) -> int | None:
        """The port :meth:`start` listens on (None: not started)."""
        return self._background.port if self._background is not None else None

    def get_health_status(self) -> dict[str, Any]:
        """Active connections, audio handlers, the engine and queue depths of each call."""
        return self.switchboard.health()

    # -- calls (the switchboard's) ---------------------------------------------------------

    def refusal(self) -> str | None:
        """Why a new call must be refused now, or None."""
        return self.switchboard.refusal()

    def new_record(self, **fields: Any) -> CallRecord:
        """Register a conversation (``user_id``, ``system_prompt``, ``voice``, ``engine``,
        ``brain``, ``metadata``); what is not given takes this app's defaults."""
        return self.switchboard.new_record(**fields)

    def flow_controller(self, session_id: str) -> FlowController | None:
        """The call's guided-flow state, or None without a flow or such a call."""
        return self.switchboard.flow_controller(session_id)

    def observations(self, session_id: str) -> ObservationTracker | None:
        """The guided call's observations (``parley.flows.observations``), or None
        without a flow or such a call."""
        controller = self.switchboard.flow_controller(session_id)
        return ObservationTracker(controller) if controller is not None else None

    async def session(self, session_id: str) -> StoredSession | None:
        """A conversation as the session store keeps it (ended calls live only there):
        its record and finished turns, or None."""
        return await self.switchboard.persistence.load(session_id)

    def conversation(self, session_id: str) -> Conversation | None:
        record = self.calls.get(session_id)
        return record.conversation if record is not None else None

    async def end_call(self, session_id: str) -> bool:
        """End a call (DELETE); False if there is no such conversation."""
        return await self.switchboard.end_call(session_id)


def _checked_triggers(triggers: Sequence[ContextTrigger]) -> list[ContextTrigger]:
    for trigger in triggers:
        if not isinstance(trigger, ContextTrigger):
            raise ConfigError(
                f"context_triggers takes ContextTrigger instances (subclass it, or use "
                f"@app.context_trigger), not {type(trigger).__name__}",
                field="context_triggers",
            )
    return list(triggers)


#: The name the seed documents use.
ParleyBackend = Parley

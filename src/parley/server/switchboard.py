"""The switchboard: the one place a call is created, refused, given its engine, run
and ended — for every route and every host.

Every WebSocket reaches it through an :class:`Endpoint` (generated from the
platform registry, :mod:`parley.server.platforms`, plus the OpenAI-Realtime-
compatible ``/v1/realtime``): the FastAPI app, the ``websockets`` server, Django
Channels and Socket.IO all mount the same endpoints. A phone or browser call
runs as a :class:`~parley.conversation.Conversation` over the platform's stream;
a ``/v1/realtime`` session runs the Realtime protocol
(:func:`parley.realtime_server.serve_realtime`) over the same kind of engine. Both
count against ``max_calls``, are refused while draining, appear in the call
registry and the health report, and get the app's brain, tools, middleware,
context and flow through one :class:`~parley.engines.factory.EngineFactory`.

Logging: one line per call start and end (id, platform, engine, duration, turns)
and per refused socket (the reason); errors and failovers are logged once, naming
the call, by :class:`~parley.server.call.LiveCall`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from parley.analytics.hub import AnalyticsHub, CallMetrics, HubOptions
from parley.analytics.plans import cost_plan
from parley.audio.format import AudioFormat
from parley.config import ConversationConfig, ParleySettings, engine_spec, provider_options
from parley.conversation.context import ContextManager, InjectResult
from parley.conversation.journal import Journal
from parley.conversation.middleware import Middleware
from parley.conversation.session import Conversation
from parley.conversation.triggers import TriggerType
from parley.engines.factory import EngineChoice, EngineFactory
from parley.engines.seams import CallEngine, ToolRunner, missing_capabilities
from parley.engines.spec import EngineKind, EngineRequest
from parley.errors import AuthError, ConfigError, RemoteProtocolError
from parley.events import DTMFReceived, ErrorEvent, Event
from parley.flows import FlowController, FlowRegistry
from parley.providers.registry import ProviderRegistry
from parley.realtime_server import RealtimeBackend, admission, serve_realtime
from parley.server.auth import TwilioTokens
from parley.server.call import LiveCall
from parley.server.calls import CallRecord, CallRegistry, CallStatus
from parley.server.platforms import platforms
from parley.server.setup import CallSetup
from parley.server.tokens import phone_tokens
from parley.transports.platform import Accept, Connection, Platform, PlatformStream, Refusal
from parley.transports.socket import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    WireSocket,
)

__all__ = ["HANDSHAKE_TIMEOUT_S", "REALTIME_PATH", "Endpoint", "Switchboard", "analytics_options"]

log = logging.getLogger("parley.server")

#: A peer that connects but sends no ``start`` within this time is closed (1008).
HANDSHAKE_TIMEOUT_S = 10.0
#: Where the OpenAI-Realtime-compatible endpoint is served.
REALTIME_PATH = "/v1/realtime"
_CLOSE_INTERNAL = 1011
_DEFAULT_REALTIME_MODEL = "parley-realtime"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What a host mounts: a name, path templates, the check before accepting, and
    the coroutine that serves an accepted socket until the call ends."""

    name: str
    routes: tuple[str, ...]
    admit: Callable[[Connection], Accept | Refusal]
    serve: Callable[[WireSocket, Connection], Awaitable[None]]
    #: Why new calls are refused now (draining, full), or None. ``serve`` closes such a
    #: socket with 1013 itself; a host that has a refusal of its own at connect time
    #: (Socket.IO's connect_error) may ask first.
    refusal: Callable[[], str | None]


class Switchboard:
    """See the module docstring. Built by the :class:`~parley.app.Parley` facade."""

    def __init__(
        self,
        settings: ParleySettings,
        setup: CallSetup,
        *,
        factory: EngineFactory | None = None,
    ) -> None:
        self.settings = settings
        self.setup = setup
        self.factory = factory or EngineFactory(
            engine_spec(settings, setup.config),
            ProviderRegistry(provider_options(settings, setup.config)),
        )
        self.calls = CallRegistry(max_calls=settings.max_calls)
        self.flows = FlowRegistry()
        #: True once a graceful shutdown began: new calls are refused.
        self.draining = False
        token = settings.twilio_auth_token
        self.twilio_tokens: TwilioTokens | None = (
            TwilioTokens(token.get_secret_value(), ttl_seconds=settings.twilio_token_ttl_seconds)
            if token is not None
            else None
        )
        #: One-time stream tokens of Telnyx, Vonage and Plivo (those configured).
        self.stream_tokens = phone_tokens(settings)
        self.platforms: tuple[Platform, ...] = platforms(self.twilio_tokens, self.stream_tokens)
        self._live: dict[str, LiveCall] = {}
        #: Every call's meter, /metrics, traces, analytics and their history.
        self.analytics = AnalyticsHub(
            analytics_options(settings, setup.config),
            processor=lambda: setup.analytics_processor,
            handlers=setup.metrics_handlers,
        )
        self._realtime_backend: RealtimeBackend | None = None
        self._endpoints: tuple[Endpoint, ...] | None = None
        if setup.engine_maker is None:
            self.factory.check(settings.engine, settings.brain, setup.config.voice)

    # -- what the server says and loads at start ------------------------------------------

    def engine_choice(self) -> EngineChoice:
        if self.setup.engine_maker is not None:
            return EngineChoice(self.settings.engine, self.settings.brain, "custom engine_factory")
        return self.factory.describe()

    def startup_messages(self) -> list[tuple[int, str]]:
        """(level, message) pairs the server logs at start."""
        choice = self.engine_choice()
        msgs = [(logging.INFO, choice.banner())]
        msgs += [(logging.WARNING, w) for w in choice.warnings]
        if self.twilio_tokens is None:
            msgs.append(
                (
                    logging.WARNING,
                    "Twilio requests are NOT authenticated: set PARLEY_TWILIO_AUTH_TOKEN to "
                    "check X-Twilio-Signature and the stream's one-time tokens",
                )
            )
        else:
            msgs.append(
                (logging.INFO, "Twilio requests are authenticated (signature + one-time token)")
            )
        open_phones = [p for p in ("telnyx", "vonage", "plivo") if p not in self.stream_tokens]
        if open_phones:
            msgs.append(
                (
                    logging.WARNING,
                    f"{', '.join(open_phones)} streams and webhooks are NOT authenticated: set "
                    "PARLEY_TELNYX_API_KEY + PARLEY_TELNYX_PUBLIC_KEY, "
                    "PARLEY_VONAGE_SIGNATURE_SECRET, PARLEY_PLIVO_AUTH_TOKEN",
                )
            )
        if self.settings.realtime_server_api_key is None:
            msgs.append(
                (
                    logging.WARNING,
                    f"{REALTIME_PATH} accepts any client: set PARLEY_REALTIME_SERVER_API_KEY "
                    "to require a key",
                )
            )
        return msgs

    async def warmup(self) -> None:
        """Load the configured local models now, not during the first call (nothing
        for a custom engine factory: it builds its own)."""
        if self.setup.engine_maker is None:
            await self.factory.warmup()

    async def aclose(self) -> None:
        await self.analytics.aclose()
        await self.factory.aclose()

    # -- admission ------------------------------------------------------------------------

    def refusal(self) -> str | None:
        """Why a new call must be refused now, or None."""
        if self.draining:
            return "server is shutting down"
        if self.calls.open_count() >= self.calls.max_calls:
            return f"server is at capacity ({self.calls.max_calls} calls)"
        return None

    def endpoints(self) -> tuple[Endpoint, ...]:
        """Every WebSocket endpoint, for the hosts to mount (made once)."""
        if self._endpoints is None:
            self._endpoints = self._make_endpoints()
        return self._endpoints

    def _make_endpoints(self) -> tuple[Endpoint, ...]:

        def stream_endpoint(platform: Platform) -> Endpoint:
            async def serve(socket: WireSocket, connection: Connection) -> None:
                await self.serve(platform, socket, connection)

            return Endpoint(platform.name, platform.routes, platform.admit, serve, self.refusal)

        realtime = Endpoint(
            "realtime", (REALTIME_PATH,), self.admit_realtime, self.serve_realtime, self.refusal
        )
        # A platform without routes (WebRTC: set up over REST) has no socket to mount.
        return (*(stream_endpoint(p) for p in self.platforms if p.routes), realtime)

    def _refused(self, what: str, connection: Connection, reason: str) -> None:
        log.info("refused %s socket %s%s: %s", what, connection.path, _peer(connection), reason)

    # -- records --------------------------------------------------------------------------

    def new_record(
        self,
        *,
        kind: str | None = None,
        user_id: str | None = None,
        system_prompt: str | None = None,
        voice: str | None = None,
        engine: EngineKind | None = None,
        brain: str | None = None,
        metadata: dict[str, str] | None = None,
        record_id: str | None = None,
    ) -> CallRecord:
        """Register a conversation with this app's defaults for what is not given
        (``record_id``: the platform's own session id, e.g. Discord's
        ``guild:channel:user``; a fresh one by default)."""
        cfg = self.setup.config
        record = CallRecord(
            id=record_id or self.calls.new_id(),
            engine=engine or self.settings.engine,
            brain=brain or self.settings.brain,
            voice=voice or cfg.voice,
            system_prompt=cfg.system_prompt if system_prompt is None else system_prompt,
            kind=kind,
            user_id=user_id,
            metadata=dict(metadata or {}),
        )
        if self.setup.engine_maker is None:
            self.factory.check(record.engine, record.brain, record.voice)
        return self.calls.add(record)

    def flow_controller(self, session_id: str) -> FlowController | None:
        """The call's guided-flow state (made on first use, so a call's progress can be
        read before its socket connects), or None without a flow or such a call."""
        flow = self.setup.flow
        if flow is None:
            return None
        controller = self.flows.get(session_id)
        if controller is None:
            record = self.calls.get(session_id)
            if record is None:
                return None
            tools = self.setup.tools if len(self.setup.tools) else None
            controller = self.flows.add(
                session_id,
                FlowController(flow, base_instructions=record.system_prompt, tools=tools),
            )
        return controller

    # -- live calls -----------------------------------------------------------------------

    def context_of(self, session_id: str) -> ContextManager | None:
        """The live call's context, or None when the call is not live."""
        live = self._live.get(session_id)
        return live.context.manager if live is not None else None

    def context_events(self) -> frozenset[str]:
        """The names EVENT triggers listen for."""
        return frozenset(
            t.event for t in self.setup.context_triggers if t.type is TriggerType.EVENT and t.event
        )

    async def inject_context(
        self, session_id: str, key: str, data: object, *, source: str = "app"
    ) -> InjectResult | None:
        """Blend ``data`` into a live call's context; None when the call is not live."""
        live = self._live.get(session_id)
        if live is None:
            return None
        return await live.context.manager.inject(key, data, source=source)

    async def fire(
        self, session_id: str, event: str, data: dict[str, Any] | None = None
    ) -> int | None:
        """Fire the EVENT triggers named ``event`` on a live call: how many ran (None
        when the call is not live)."""
        live = self._live.get(session_id)
        if live is None:
            return None
        return await live.context.fire(event, data)

    async def end_call(self, session_id: str) -> bool:
        """End a call (DELETE); False if there is no such conversation."""
        record = self.calls.get(session_id)
        if record is None:
            return False
        record.end_requested = True
        engine = record.live_engine
        if engine is not None:
            await engine.close()
            # Answer once the call is over (the socket closed, on_end ran), bounded.
            await self.calls.wait_finished([record], 5.0)
        elif record.status is CallStatus.PENDING:
            self.calls.ended(record)
        return True

    async def end_all(self, reason: str) -> None:
        """Close every call now (shutdown after the drain time)."""
        for record in self.calls.active():
            if record.stream is not None:
                await record.stream.end(CLOSE_GOING_AWAY, reason)
            if record.live_engine is not None:
                await record.live_engine.close()

    def health(self) -> dict[str, Any]:
        """Active connections, audio handlers, the engine and queue depths of each call."""
        active = self.calls.active()
        return {
            "status": "draining" if self.draining else "ok",
            "active_connections": self.calls.connections,
            "active_audio_handlers": sum(1 for r in active if r.status is CallStatus.LIVE),
            "open_conversations": self.calls.open_count(),
            "max_calls": self.calls.max_calls,
            "engine": self.settings.engine.value,
            "brain": self.settings.brain,
            "calls": [r.health() for r in active],
            "time": time.time(),
        }

    # -- phone and browser calls ----------------------------------------------------------

    async def serve(self, platform: Platform, socket: WireSocket, connection: Connection) -> None:
        """Serve one accepted socket of ``platform`` until the call ends; never raises
        for a peer's fault (the stream closes the socket with the reason)."""
        self.calls.connections += 1
        try:
            refusal = self.refusal()
            if refusal is not None:
                self._refused(platform.name, connection, refusal)
                await socket.close(CLOSE_TRY_AGAIN, refusal)
                return
            await self._serve_stream(platform, platform.open(socket, connection), connection)
        except (RemoteProtocolError, AuthError) as exc:
            self._refused(platform.name, connection, str(exc))
        finally:
            self.calls.connections -= 1

    def _claim(self, conversation_id: str) -> CallRecord | tuple[str, str]:
        record = self.calls.get(conversation_id)
        if record is None:
            return "unknown_conversation", f"no conversation {conversation_id!r}"
        if record.status is not CallStatus.PENDING:
            return "conversation_taken", f"conversation {conversation_id!r} is {record.status}"
        record.move(CallStatus.CONNECTING)  # claimed: a second socket for this id is refused
        return record

    async def _serve_stream(
        self, platform: Platform, stream: PlatformStream, connection: Connection
    ) -> None:
        record: CallRecord | None = None
        claim = connection.params.get("conversation_id")
        if claim is not None:
            claimed = self._claim(claim)
            if isinstance(claimed, tuple):
                self._refused(platform.name, connection, claimed[1])
                await stream.reject(claimed[0], claimed[1], CLOSE_POLICY)
                return
            record = claimed
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                caller = await stream.handshake()
        except TimeoutError:
            caller = None
            reason = f"no 'start' within {HANDSHAKE_TIMEOUT_S:g} s"
            self._refused(platform.name, connection, reason)
            await stream.end(CLOSE_POLICY, reason)
        except (RemoteProtocolError, AuthError):
            if record is not None:
                record.move(CallStatus.PENDING)  # a bad peer does not use up the conversation
            raise
        if caller is None:
            if record is not None:
                record.move(CallStatus.PENDING)  # the peer left before starting: it may retry
            return
        if record is None:
            record = self.new_record(kind=platform.name, user_id=caller.user_id)
            record.move(CallStatus.CONNECTING)
        record.kind = caller.platform or platform.name
        record.user_id = record.user_id or caller.user_id
        record.call_sid = caller.call_sid
        record.metadata.update(caller.metadata)
        await stream.ready(record.id)
        await self.run_call(record, stream)

    async def run_call(self, record: CallRecord, stream: PlatformStream) -> None:
        """Run ``record``'s call over a stream whose handshake is done, until it ends
        (what every platform's socket comes to; tests use it with the in-memory pair)."""
        if record.status is CallStatus.PENDING:
            record.move(CallStatus.CONNECTING)
        fmt = stream.input_format
        try:
            engine = self._engine_for(record, fmt, record.engine)
        except ConfigError as exc:
            log.error("call %s: cannot build the engine: %s", record.id, exc)
            self.calls.ended(record)
            await stream.end(_CLOSE_INTERNAL, f"engine unavailable: {exc}")
            return
        live = self._live[record.id] = self._live_call(record, engine.engine)

        controller = self.flow_controller(record.id)

        async def on_event(conv: Conversation, event: Event) -> None:
            await stream.show(event, conv.state)
            await live.observe(event)
            if controller is not None and isinstance(event, DTMFReceived):
                await controller.press(event.digit)  # a phase may branch on the keypad

        async def on_start(_conv: Conversation) -> None:
            await live.start()

        async def on_end(_conv: Conversation) -> None:
            await live.end()

        conversation = Conversation(
            stream,
            engine.engine,
            conversation_id=record.id,
            on_start=on_start,
            on_end=on_end,
            on_event=on_event,
            audio_preprocessor=self.setup.middleware.audio_chain(
                engine.engine.input_format.sample_rate
            ),
            on_playback=live.playback,
        )
        engine.report_to(conversation.report)
        record.conversation, record.journal = conversation, conversation.journal
        conversation.journal.serving = engine.engine.stats().serving
        await self._run(record, stream, engine.engine, conversation.run)

    async def _run(
        self,
        record: CallRecord,
        stream: PlatformStream | None,
        engine: CallEngine,
        run: Callable[[], Awaitable[None]],
    ) -> None:
        record.stream, record.live_engine = stream, engine
        record.move(CallStatus.LIVE)
        record.started_at = time.time()
        log.info(
            "call %s started: platform=%s engine=%s user=%s",
            record.id,
            record.kind,
            record.serving,
            record.user_id or "-",
        )
        try:
            if record.end_requested:  # DELETE arrived during the handshake
                await engine.close()
            await run()
        finally:
            self._live.pop(record.id, None)
            serving = record.serving
            self.calls.ended(record)
            journal = record.journal
            turns = len(journal.transcript) if journal is not None else 0
            log.info(
                "call %s ended: platform=%s engine=%s duration=%.1fs turns=%d errors=%d",
                record.id,
                record.kind,
                serving,
                (record.ended_at or time.time()) - record.started_at,
                turns,
                len(journal.errors) if journal is not None else 0,
            )

    def _live_call(
        self, record: CallRecord, engine: CallEngine, journal: Journal | None = None
    ) -> LiveCall:
        return LiveCall(
            self.setup,
            record,
            engine,
            journal=journal,
            analytics=self.analytics,
            metrics=self._meter(record),
        )

    def _meter(self, record: CallRecord) -> CallMetrics | None:
        plan = cost_plan(record.engine, self.factory.spec, brain=record.brain, platform=record.kind)
        return self.analytics.open_call(
            record.id,
            plan=plan,
            user_id=record.user_id or "",
            kind=record.kind or "",
            tier=record.metadata.get("tier", ""),
        )

    # -- the engine of a call -------------------------------------------------------------

    def engine_for(
        self, record: CallRecord, fmt: AudioFormat, kind: EngineKind | None = None
    ) -> CallEngine:
        """The engine a call of ``record`` would run on, wired with the app's flow and
        middleware (for tests and embedding; calls get theirs from :meth:`run_call`)."""
        return self._engine_for(record, fmt, kind or record.engine).engine

    def _engine_for(self, record: CallRecord, fmt: AudioFormat, kind: EngineKind) -> _CallEngine:
        setup = self.setup
        tools: ToolRunner | None = setup.tools if len(setup.tools) else None
        instructions = record.system_prompt
        controller = self.flow_controller(record.id)
        if controller is not None:
            # The flow's tools (record_observation, mark_criterion_met, transition_to)
            # wrap the app's own; its phase instructions follow the system prompt.
            tools, instructions = controller, controller.instructions
        request = EngineRequest(
            record.id,
            kind,
            record.brain,
            record.voice,
            instructions,
            tools,
            fmt.sample_rate,
            fmt.encoding,
        )
        engine: CallEngine
        if setup.engine_maker is not None:
            custom = setup.engine_maker(request)
            if not isinstance(custom, CallEngine):  # a check of user code, once per call
                raise ConfigError(
                    f"engine_factory returned {type(custom).__name__}, which lacks "
                    f"{', '.join(missing_capabilities(custom))} "
                    "(see parley.engines.seams.CallEngine)",
                    field="engine_factory",
                )
            engine = custom
        else:
            engine = self.factory.build(request)
        if controller is not None:
            engine = controller.attach(engine)
        return _CallEngine(engine, self._pipeline(record, engine))

    def _pipeline(self, record: CallRecord, engine: CallEngine) -> _Reporter:
        """Give the engine the call's text middleware; the returned reporter carries a
        skipped middleware's failure to the call once it runs."""
        reporter = _Reporter(record.id)
        session_id = record.id

        def context() -> dict[str, str]:
            manager = self.context_of(session_id)
            return {} if manager is None else {k: e.text for k, e in manager.entries.items()}

        pipeline = self.setup.middleware.pipeline(
            conversation_id=session_id,
            user_id=record.user_id,
            metadata=record.metadata,
            context=context,
            default_policy=self.setup.config.middleware_errors,
            on_skip=reporter.skipped,
        )
        if pipeline is not None:
            engine.set_text_hooks(
                request=pipeline.request if pipeline.has_request else None,
                response=pipeline.response if pipeline.has_response else None,
            )
        return reporter

    # -- /v1/realtime -----------------------------------------------------------------------

    def admit_realtime(self, connection: Connection) -> Accept | Refusal:
        key = self.settings.realtime_server_api_key
        verdict = admission(key.get_secret_value() if key is not None else None, connection)
        if isinstance(verdict, Refusal):
            self._refused("realtime", connection, verdict.reason)
        return verdict

    def realtime_backend(self) -> RealtimeBackend:
        """The Realtime endpoint's shared input side: the configured VAD and STT."""
        if self._realtime_backend is None:
            p, spec = self.factory.providers, self.factory.spec
            self._realtime_backend = RealtimeBackend(
                vad=p.vad(spec.vad),
                stt=p.stt(spec.stt),
                voices=(self.setup.config.voice,),
                transcription_model=spec.stt,
            )
        return self._realtime_backend

    async def serve_realtime(self, socket: WireSocket, connection: Connection) -> None:
        """One ``/v1/realtime`` session: a call of kind "realtime" on the app's brain,
        tools, middleware, context and flow (the cascade in text mode: the session
        does its own turn detection and transcription, then asks the engine)."""
        self.calls.connections += 1
        try:
            refusal = self.refusal()
            if refusal is not None:
                self._refused("realtime", connection, refusal)
                await socket.close(CLOSE_TRY_AGAIN, refusal)
                return
            record = self.new_record(kind="realtime", user_id=connection.query.get("user"))
            record.move(CallStatus.CONNECTING)
            try:
                built = self._engine_for(record, AudioFormat("pcm16", 24000, 1), EngineKind.LOCAL)
            except ConfigError as exc:
                log.error("call %s: cannot build the engine: %s", record.id, exc)
                self.calls.ended(record)
                await socket.close(_CLOSE_INTERNAL, f"engine unavailable: {exc}")
                return
            engine = built.engine
            journal = Journal(serving=engine.stats().serving)
            live = self._live[record.id] = self._live_call(record, engine, journal)
            built.report_to(live.observe)
            record.journal = journal
            model = connection.query.get("model") or _DEFAULT_REALTIME_MODEL
            backend = self.realtime_backend()

            async def run() -> None:
                await live.start()
                try:
                    await serve_realtime(
                        socket, backend, engine, model=model, on_event=live.observe
                    )
                finally:
                    await live.end()

            await self._run(record, None, engine, run)
        finally:
            self.calls.connections -= 1


def analytics_options(settings: ParleySettings, config: ConversationConfig) -> HubOptions:
    """The analytics hub's options from the settings and the app's config."""
    return HubOptions(
        metrics=settings.metrics,
        enable_analytics=config.enable_analytics,
        track_costs=config.track_costs,
        track_engagement=config.track_engagement,
        history_path=settings.analytics_db,
        retention_days=settings.analytics_retention_days,
        otlp_endpoint=settings.otlp_endpoint,
    )


class _Reporter:
    """Carries a skipped middleware's failure to its call as an ``ErrorEvent``."""

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self._to: Callable[[Event], Awaitable[None]] | None = None

    def bind(self, to: Callable[[Event], Awaitable[None]]) -> None:
        self._to = to

    async def skipped(self, middleware: Middleware, exc: Exception) -> None:
        event = ErrorEvent(
            "middleware_error",
            f"{type(middleware).__name__} failed ({exc}); skipped for this turn",
        )
        if self._to is not None:
            await self._to(event)
        else:  # pragma: no cover - middleware runs only once the call is under way
            log.warning("call %s: %s", self.call_id, event.message)


@dataclass(frozen=True, slots=True)
class _CallEngine:
    engine: CallEngine
    reporter: _Reporter

    def report_to(self, to: Callable[[Event], Awaitable[None]]) -> None:
        self.reporter.bind(to)


def _peer(connection: Connection) -> str:
    return f" from {connection.client}" if connection.client else ""

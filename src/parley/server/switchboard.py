"""The switchboard: the one place a call is created, refused, given its engine, run
and ended — for every route and every host.

Every WebSocket reaches it through an :class:`Endpoint` (generated from the
platform registry, :mod:`parley.server.platforms`, plus the OpenAI-Realtime-
compatible ``/v1/realtime`` and ``/realtime/{id}``, :mod:`parley.server.realtime`):
the FastAPI app, the ``websockets`` server, Django Channels and Socket.IO all mount
the same endpoints. A phone or browser call
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
import os
import secrets
import socket as _socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from parley.analytics.hub import AnalyticsHub, CallMetrics, view_fields
from parley.analytics.plans import cost_plan
from parley.audio.format import AudioFormat
from parley.config import ParleySettings, engine_spec, provider_options
from parley.conversation.context import ContextManager, InjectResult
from parley.conversation.journal import Journal
from parley.conversation.session import Conversation
from parley.conversation.triggers import TriggerType
from parley.engines.factory import EngineChoice, EngineFactory
from parley.engines.seams import CallEngine
from parley.engines.spec import EngineKind
from parley.errors import AuthError, ConfigError, RateLimited, RemoteProtocolError
from parley.events import DTMFReceived, Event
from parley.flows import FlowConfig, FlowController, FlowRegistry
from parley.providers.registry import ProviderRegistry
from parley.realtime_server import RealtimeBackend
from parley.security.principal import Principal
from parley.security.refusals import refusal_for
from parley.server.admission import CallAdmission
from parley.server.analytics import analytics_options
from parley.server.auth import TwilioTokens
from parley.server.call import LiveCall
from parley.server.calls import CallOptions, CallRecord, CallRegistry, CallStatus
from parley.server.cluster import ClusterNode
from parley.server.engines import CallEngines, CallParts
from parley.server.persistence import ContextCaching, Persistence, Storage, resume
from parley.server.platforms import platforms
from parley.server.realtime import REALTIME_PATH, RealtimeDoor
from parley.server.security import Admission, Security
from parley.server.setup import CallSetup
from parley.server.tokens import phone_tokens
from parley.transports.platform import Accept, Connection, Platform, PlatformStream, Refusal
from parley.transports.socket import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    WireSocket,
)

__all__ = ["HANDSHAKE_TIMEOUT_S", "REALTIME_PATH", "Endpoint", "Switchboard"]

log = logging.getLogger("parley.server")

#: A peer that connects but sends no ``start`` within this time is closed (1008).
HANDSHAKE_TIMEOUT_S = 10.0
_CLOSE_INTERNAL = 1011


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What a host mounts: a name, path templates, the check before accepting, and
    the coroutine that serves an accepted socket until the call ends."""

    name: str
    routes: tuple[str, ...]
    #: Before accepting: the platform's check, authentication, limits. A host hands
    #: the same ``Connection`` to ``serve`` (the admission rides on its ``state``).
    admit: Callable[[Connection], Awaitable[Accept | Refusal]]
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
        storage: Storage | None = None,
        notes: Sequence[str] = (),
    ) -> None:
        """``notes``: lines the server logs at start (WARNING), e.g. what the app's
        ``model=`` / ``voice=`` were mapped to (:func:`parley.config.choose_hosted`)."""
        self.settings = settings
        self.setup = setup
        self.notes = tuple(notes)
        self.factory = factory or EngineFactory(
            engine_spec(settings, setup.config),
            ProviderRegistry(provider_options(settings, setup.config)),
        )
        # Ended calls leave memory: they live in the session store.
        self.calls = CallRegistry(max_calls=settings.max_calls, keep_ended=0)
        self.flows = FlowRegistry()
        #: True once a graceful shutdown began: new calls are refused.
        self.draining = False
        token = settings.twilio_auth_token
        self.twilio_tokens: TwilioTokens | None = (
            TwilioTokens(token.get_secret_value(), ttl_seconds=settings.twilio_token_ttl_seconds)
            if token is not None
            else None
        )
        self.storage = storage or Storage.from_settings(settings)
        self.node_id = settings.node_id or (
            f"{_socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        )
        #: One-time stream tokens of Telnyx, Vonage and Plivo (those configured).
        self.stream_tokens = phone_tokens(settings)
        self.security = Security(
            settings,
            setup.config,
            self.storage,
            twilio_tokens=self.twilio_tokens,
            stream_tokens=self.stream_tokens,
        )
        self.persistence = Persistence(
            self.storage,
            node_id=self.node_id,
            resume_seconds=settings.resume_seconds,
            figures=self._figures,
        )
        self.caching = ContextCaching(self.storage.cache, setup.config)
        self.cluster: ClusterNode | None = (
            ClusterNode(
                self.storage.redis,
                self.node_id,
                self.storage.sessions,
                lease_seconds=settings.node_lease_seconds,
            )
            if self.storage.redis is not None
            else None
        )
        self.admission = CallAdmission(
            self.calls, self.security, self.persistence, self.cluster, starting=self.start
        )
        self.engines = CallEngines(
            setup, self.factory, flow_controller=self.flow_controller, context_of=self.context_of
        )
        self._started = False
        self.platforms: tuple[Platform, ...] = platforms(
            self.security.check_twilio_start if self.twilio_tokens is not None else None,
            self.security.phone_checks(),
        )
        self._live: dict[str, LiveCall] = {}
        #: Every call's meter, /metrics, traces, analytics and their history.
        self.analytics = AnalyticsHub(
            analytics_options(settings, setup.config),
            processor=lambda: setup.analytics_processor,
            handlers=setup.metrics_handlers,
        )
        self._endpoints: tuple[Endpoint, ...] | None = None
        #: ``/v1/realtime`` and ``/realtime/{conversation_id}``.
        self.realtime = RealtimeDoor(self)
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
        msgs += [(logging.WARNING, note) for note in self.notes]
        msgs += self.security.startup_messages(
            twilio=self.twilio_tokens is not None,
            realtime_key=self.settings.realtime_server_api_key is not None,
        )
        msgs.append((logging.INFO, self.storage.describe(self.node_id if self.cluster else "")))
        return msgs

    async def warmup(self) -> None:
        """Load the configured local models now, not during the first call (nothing
        for a custom engine factory: it builds its own)."""
        if self.setup.engine_maker is None:
            await self.factory.warmup()

    async def start(self) -> None:
        """Start what runs beside the calls (the cluster lease and channel, retention);
        the hosts call it at start, and the first socket does if they did not."""
        if self._started:
            return
        self._started = True
        if self.cluster is not None:
            await self.cluster.start()
            for call_id in [r.id for r in self.calls.active()]:
                await self.cluster.register(call_id)
        elif self.storage.durable and self.settings.workers == 1:
            await self.persistence.recover()  # a lone node: its store's live calls were its own
        self.storage.start(redact_logs=self.settings.redact_logs)

    async def aclose(self) -> None:
        await self.analytics.aclose()
        await self.factory.aclose()
        if self.cluster is not None:
            await self.cluster.aclose()
        await self.storage.aclose()

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

    def endpoint(self, platform: Platform) -> Endpoint:
        """The endpoint of one platform's sockets (any platform, registered or not:
        seed 001's managers mount their own variants)."""

        async def admit(connection: Connection) -> Accept | Refusal:
            verdict = platform.admit(connection)
            if isinstance(verdict, Refusal):
                return verdict
            return await self.admission.admit(platform.name, connection, verdict, deferred=True)

        async def serve(socket: WireSocket, connection: Connection) -> None:
            await self.serve(platform, socket, connection)

        return Endpoint(platform.name, platform.routes, admit, serve, self.refusal)

    def _make_endpoints(self) -> tuple[Endpoint, ...]:
        door = self.realtime
        realtime = Endpoint("realtime", door.routes, door.admit, door.serve, self.refusal)
        stream_endpoint = self.endpoint
        # A platform without routes (WebRTC: set up over REST) has no socket to mount.
        return (*(stream_endpoint(p) for p in self.platforms if p.routes), realtime)

    def log_refused(self, what: str, connection: Connection, reason: str) -> None:
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
        owner: Principal | None = None,
        flow: FlowConfig | None = None,
        max_seconds: float | None = None,
    ) -> CallRecord:
        """Register a conversation with this app's defaults for what is not given
        (``record_id``: the platform's own session id, e.g. Discord's
        ``guild:channel:user``; a fresh one by default); ``owner`` is the principal it
        belongs to (anonymous with authentication off); ``flow``, its own guided flow
        instead of the app's; ``max_seconds``, its own limit under the tier's."""
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
            flow=flow,
            max_seconds=max_seconds,
        )
        if owner is not None:
            record.tenant, record.owner_id = owner.tenant, owner.user_id
        if self.setup.engine_maker is None:
            self.factory.check(record.engine, record.brain, record.voice)
        return self.calls.add(record)

    def flow_controller(self, session_id: str) -> FlowController | None:
        """The call's guided-flow state (made on first use, so a call's progress can be
        read before its socket connects), or None without a flow or such a call. A
        conversation created with its own flow follows it; the others, the app's."""
        controller = self.flows.get(session_id)
        if controller is None:
            record = self.calls.get(session_id)
            if record is None or (flow := record.flow or self.setup.flow) is None:
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
            record.end_reason = "requested"
            await self.admission.drop_pending(record)
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

    async def serve(
        self,
        platform: Platform,
        socket: WireSocket,
        connection: Connection,
        options: CallOptions | None = None,
    ) -> None:
        """Serve one accepted socket of ``platform`` until the call ends; never raises
        for a peer's fault (the stream closes the socket with the reason). ``options``:
        the call's own id, greeting and audio queue (seed 001's managers)."""
        self.calls.connections += 1
        try:
            refusal = self.refusal()
            if refusal is not None:
                self.log_refused(platform.name, connection, refusal)
                await self.admission.forget(connection)
                await socket.close(CLOSE_TRY_AGAIN, refusal)
                return
            admission = await self.admission.of(platform.name, connection, deferred=True)
            if isinstance(admission, Refusal):
                await socket.close(admission.close_code, admission.reason)
                return
            stream = platform.open(socket, connection)
            try:
                await self._serve_stream(
                    platform, stream, connection, admission, options or CallOptions()
                )
            finally:
                await self.security.release(admission)
        except (RemoteProtocolError, AuthError) as exc:
            self.log_refused(platform.name, connection, str(exc))
        finally:
            self.calls.connections -= 1

    async def _serve_stream(
        self,
        platform: Platform,
        stream: PlatformStream,
        connection: Connection,
        admission: Admission,
        options: CallOptions,
    ) -> None:
        async def take(cid: str, who: Principal, resume_only: bool = False) -> CallRecord | None:
            claimed = await self.admission.claim(cid, who, resume_only=resume_only)
            if isinstance(claimed, CallRecord):
                return claimed
            self.log_refused(platform.name, connection, claimed[1])
            await stream.reject(claimed[0], claimed[1], CLOSE_POLICY)
            return None

        record: CallRecord | None = None
        claim = connection.params.get("conversation_id")
        principal = admission.principal
        # With its principal known, a socket is refused before any frame.
        if claim and principal and (record := await take(claim, principal)) is None:
            return
        try:
            try:
                async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                    caller = await stream.handshake()
            except TimeoutError:
                caller = None
                reason = f"no 'start' within {HANDSHAKE_TIMEOUT_S:g} s"
                self.log_refused(platform.name, connection, reason)
                await stream.end(CLOSE_POLICY, reason)
            if caller is None:  # the peer left before starting: it may retry
                if record is not None:
                    await self.admission.unclaim(record)
                return
            try:
                principal = await self.security.authenticate_start(connection, admission, caller)
            except AuthError as exc:
                spec = refusal_for(exc)
                await stream.reject("auth_error", str(exc), spec.close_code)
                raise
        except (RemoteProtocolError, AuthError):
            if record is not None:
                await self.admission.unclaim(record)  # a bad peer does not use it up
            raise
        if options.session_id is not None:
            taken = self.calls.get(options.session_id)
            if taken is not None and taken.status is not CallStatus.ENDED:
                reason = f"session {options.session_id!r} is {taken.status.value}"
                self.log_refused(platform.name, connection, reason)
                await stream.reject("session_in_use", reason, CLOSE_POLICY)
                return
        elif record is None and (claim or caller.session_id):
            record = await take(claim or caller.session_id, principal, claim is None)
            if record is None:
                return
        pending = record is not None and not record.resumed_turns
        if record is None and (denied := self.admission.may_open(principal)) is not None:
            self.log_refused(platform.name, connection, denied.reason)
            await stream.reject("forbidden", denied.reason, CLOSE_POLICY)
            return
        if record is None:
            trusted = not self.security.enabled or principal.is_admin or caller.verified
            user = caller.user_id if trusted else None
            record = self.new_record(
                kind=platform.name,
                user_id=user or _app_user(principal),
                owner=principal,
                record_id=options.session_id,
            )
            record.move(CallStatus.CONNECTING)
        record.greeting, record.audio_queue = options.greeting, options.audio_queue
        record.kind = caller.platform or platform.name
        record.user_id = record.user_id or caller.user_id
        record.call_sid = caller.call_sid
        record.metadata.update({k: v for k, v in caller.metadata.items() if k != "token"})
        try:
            max_s = await self.admission.start(record, principal, pending=pending)
        except RateLimited as exc:
            spec = refusal_for(exc)
            self.log_refused(platform.name, connection, spec.reason)
            await stream.reject("rate_limited", str(exc), spec.close_code)
            return
        await stream.ready(record.id)
        await self.run_call(record, stream, principal=principal, max_seconds=max_s)

    async def run_call(
        self,
        record: CallRecord,
        stream: PlatformStream,
        *,
        principal: Principal | None = None,
        max_seconds: float | None = None,
    ) -> None:
        """Run ``record``'s call over a stream whose handshake is done, until it ends
        (what every platform's socket comes to; tests use it with the in-memory pair).
        ``principal`` holds a concurrent-call slot until the end; the call is ended
        after ``max_seconds``."""
        if record.status is CallStatus.PENDING:
            record.move(CallStatus.CONNECTING)
        fmt = stream.input_format
        try:
            engine = self._engine_for(record, fmt, record.engine)
        except ConfigError as exc:
            log.error("call %s: cannot build the engine: %s", record.id, exc)
            record.end_reason = "engine_unavailable"
            self.calls.ended(record)
            await self.admission.finish(record, principal)
            await stream.end(_CLOSE_INTERNAL, f"engine unavailable: {exc}")
            return
        live = self.open_live(record, engine.engine, after=False)
        commit = self.persistence.writer(record)
        controller = self.flow_controller(record.id)

        async def on_event(conv: Conversation, event: Event) -> None:
            await commit(event)  # a finished turn is on disk before the peer hears it is
            await stream.show(event, conv.state)
            await live.observe(event)
            if controller is not None and isinstance(event, DTMFReceived):
                await controller.press(event.digit)  # a phase may branch on the keypad

        async def on_start(_conv: Conversation) -> None:
            await live.start()
            if record.greeting:
                await engine.engine.greet(record.greeting)

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
        resume(record, engine.engine)

        async def stop(reason: str) -> None:
            await stream.end(CLOSE_POLICY, reason)
            await engine.engine.close()

        await self.run_live(
            record, stream, engine.engine, conversation.run, principal, max_seconds, stop
        )

    def open_live(
        self,
        record: CallRecord,
        engine: CallEngine,
        journal: Journal | None = None,
        *,
        after: bool = True,
    ) -> LiveCall:
        """The app's side of a call starting now, known as live until it ends."""
        live = self._live[record.id] = LiveCall(
            self.setup,
            record,
            engine,
            journal=journal,
            analytics=self.analytics,
            metrics=self._meter(record),
            providers=self.caching.providers(self.setup.context_providers, record.tenant),
            after=self.persistence.writer(record) if after else None,
            flow=self.flow_controller(record.id),
        )
        return live

    async def run_live(
        self,
        record: CallRecord,
        stream: PlatformStream | None,
        engine: CallEngine,
        run: Callable[[], Awaitable[None]],
        principal: Principal | None,
        max_seconds: float | None,
        stop: Callable[[str], Awaitable[None]],
    ) -> None:
        record.stream, record.live_engine = stream, engine
        record.move(CallStatus.LIVE)
        record.started_at = time.time()
        if principal is None:  # a call run without admission (tests, embedding)
            await self.persistence.live(record)
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
            if principal is not None:
                async with self.admission.hold(record, principal, max_seconds, stop):
                    await run()
            else:
                await run()
        finally:
            self._live.pop(record.id, None)
            serving = record.serving
            if self.draining and not record.end_reason and not record.end_requested:
                record.end_reason = "shutdown"
            self.calls.ended(record)
            await self.admission.finish(record, principal)
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

    def _figures(self, call_id: str) -> dict[str, Any] | None:
        view = self.analytics.view(call_id)
        return view_fields(view) if view is not None else None

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

    def realtime_backend(self) -> RealtimeBackend:
        """The Realtime endpoint's shared input side: the configured VAD and STT."""
        return self.realtime.backend()

    def engine_for(
        self, record: CallRecord, fmt: AudioFormat, kind: EngineKind | None = None
    ) -> CallEngine:
        """The engine a call of ``record`` would run on, wired with the app's flow and
        middleware (for tests and embedding; calls get theirs from :meth:`run_call`)."""
        return self._engine_for(record, fmt, kind or record.engine).engine

    def _engine_for(self, record: CallRecord, fmt: AudioFormat, kind: EngineKind) -> CallParts:
        return self.engines.build(record, fmt, kind)


def _app_user(principal: Principal) -> str | None:
    """The app's user id of a call nobody named: the principal's, when authenticated."""
    return principal.user_id if principal.authenticated else None


def _peer(connection: Connection) -> str:
    return f" from {connection.client}" if connection.client else ""

"""``LocalLane``: the big lane's local end — Parley's Realtime server in this process.

``VoiceClient(VoiceEngineConfig(mode="big"))`` with no ``url`` starts one at connect
and stops it at disconnect: ``create_realtime_app``'s route on uvicorn, on
127.0.0.1 and a free port, open (no key: nothing else can reach it). The client then
speaks the same GA protocol to it as to OpenAI, so every client feature (client or
server turn detection, barge-in truncation, function calls, usage) works unchanged.

Its sessions run the engine Parley's settings configure — the same settings
``parley serve`` reads (``PARLEY_*`` environment, ``PARLEY_CONFIG`` YAML), built by
the one :class:`~parley.engines.factory.EngineFactory`:

- ``PARLEY_ENGINE=local`` (default): the cascade — offline by default (Silero VAD,
  Whisper tiny.en, the echo brain, Piper), or hosted parts by spec
  (``PARLEY_BRAIN=openai:gpt-4o-mini``, ``PARLEY_STT=openai:…``, ``PARLEY_TTS=openai:…``);
- ``PARLEY_ENGINE=realtime``: the Realtime upstream at ``PARLEY_REALTIME_URL`` (OpenAI, or a
  hosted Parley server), with failover to that cascade when it is unreachable or
  keeps failing (``PARLEY_FAILOVER``, on by default): the conversation goes on,
  with its history.

The server hears the user itself (the settings' VAD and STT) and hands each turn to
the engine as text, as Parley's own ``/v1/realtime`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette

from parley.config import ParleySettings, engine_spec, load_settings, provider_options
from parley.engines.factory import EngineFactory
from parley.engines.seams import CallEngine
from parley.engines.spec import EngineKind, EngineRequest, EngineSpec
from parley.errors import ConfigError
from parley.events import EngineSwitched, Event
from parley.metrics.cost import CostPlan, EnginePlan
from parley.providers.registry import ProviderKind, ProviderRegistry, check_spec
from parley.realtime_server import RealtimeBackend, RealtimeSessionEngine, realtime_route
from parley.tasks import cancel_and_wait

__all__ = ["LocalLane"]

log = logging.getLogger(__name__)

_ids = itertools.count(1)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The lane lives inside the user's program: Ctrl-C is theirs, not the lane's.
        yield


class LocalLane:
    """See the module docstring. ``settings`` default to :func:`parley.config.load_settings`."""

    def __init__(self, settings: ParleySettings | None = None, *, language: str | None = None):
        self._settings = settings
        self._language = language
        self._factory: EngineFactory | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._engine: CallEngine | None = None  # the newest session's
        self.url = ""
        self.switches = 0  # failovers so far, all sessions

    @property
    def spec(self) -> EngineSpec:
        if self._factory is None:
            raise ConfigError("the local lane is not started", field="lane")
        return self._factory.spec

    @property
    def serving(self) -> str:
        """Who answers now: ``"cascade"``, ``"realtime"`` — after a failover, the fallback."""
        if self._engine is not None:
            return self._engine.stats().serving
        kind = self.spec.engine
        return "cascade" if kind is EngineKind.LOCAL else kind.value

    def describe(self) -> str:
        return self._factory.describe().banner() if self._factory is not None else ""

    def cost_plan(self) -> CostPlan:
        """What the lane's engines cost: local models nothing, hosted ones their prices."""
        spec = self.spec
        providers = self._providers()

        def priced(kind: ProviderKind, text: str) -> str:
            local = providers.is_local(kind, text)
            return f"local:{text}" if local else check_spec(kind, text).model or text

        cascade = EnginePlan(
            "cascade",
            llm=priced("brain", spec.brain),
            stt=priced("stt", spec.stt),
            tts=priced("tts", spec.tts),
        )
        if spec.engine is not EngineKind.REALTIME:
            return CostPlan((cascade,))
        return CostPlan((EnginePlan("realtime", realtime_model=spec.realtime.model), cascade))

    def _providers(self) -> ProviderRegistry:
        if self._factory is None:
            raise ConfigError("the local lane is not started", field="lane")
        return self._factory.providers

    async def start(self) -> str:
        """Build the engine factory, load the local models (off the event loop), serve;
        returns the ``ws://127.0.0.1:PORT/v1/realtime`` URL."""
        if self._task is not None:
            return self.url
        settings = self._settings or load_settings()
        spec = engine_spec(settings)
        factory = self._factory = EngineFactory(spec, ProviderRegistry(provider_options(settings)))
        voice = settings.conversation.voice
        if self._language and self._language != "en" and spec.stt.endswith(".en"):
            log.warning(
                "language %r: the local lane's STT %s hears English only", self._language, spec.stt
            )
        p = factory.providers
        backend = RealtimeBackend(
            vad=p.vad(spec.vad), stt=p.stt(spec.stt), voices=(voice,), transcription_model=spec.stt
        )

        def make_engine() -> RealtimeSessionEngine:
            request = EngineRequest(
                f"lane-{next(_ids)}", spec.engine, spec.brain, voice, "", None, 24000
            )
            engine = self._engine = factory.build(request)
            return engine

        await p.warmup({"vad": spec.vad, "stt": spec.stt})
        await factory.warmup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)  # a client connecting before uvicorn runs waits in the backlog
        port = sock.getsockname()[1]
        route = realtime_route(backend=backend, make_engine=make_engine, on_event=self._observe)
        app = Starlette(routes=[route])
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="websockets-sansio",
            timeout_graceful_shutdown=2,
        )
        server = self._server = _Server(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="voice-local-lane")
        self.url = f"ws://127.0.0.1:{port}/v1/realtime"
        log.info("big lane: %s at %s", factory.describe().banner(), self.url)
        return self.url

    async def _observe(self, event: Event) -> None:
        # The client hears the answers, not who gave them: a switch is said here, once.
        if isinstance(event, EngineSwitched):
            self.switches += 1
            log.warning(
                "big lane: failover from %s to %s: %s",
                event.previous,
                event.current,
                event.reason,
            )

    async def stop(self) -> None:
        """Stop serving (open sessions end) and close the providers' HTTP clients."""
        server, task, self._server, self._task = self._server, self._task, None, None
        if server is not None and task is not None:
            server.should_exit = True
            try:
                async with asyncio.timeout(5):
                    await asyncio.shield(task)
            except TimeoutError:  # a session that will not end: do not hang the client
                await cancel_and_wait(task)
        if self._factory is not None:
            await self._factory.aclose()

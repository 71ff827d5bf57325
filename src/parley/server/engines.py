"""How a call's engine is built: the app's brain (or its own engine factory), tools,
guided flow and text middleware, for every kind of call. Used by the switchboard."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from parley.audio.format import AudioFormat
from parley.conversation.context import ContextManager
from parley.conversation.middleware import Middleware
from parley.engines.factory import EngineFactory
from parley.engines.seams import CallEngine, ToolRunner, missing_capabilities
from parley.engines.spec import EngineKind, EngineRequest
from parley.errors import ConfigError
from parley.events import ErrorEvent, Event
from parley.flows import FlowController
from parley.realtime_server import RealtimeBackend
from parley.server.calls import CallRecord
from parley.server.setup import CallSetup

__all__ = ["CallEngines", "CallParts"]

log = logging.getLogger("parley.server")


class CallEngines:
    """Builds one engine per call (see the module docstring)."""

    def __init__(
        self,
        setup: CallSetup,
        factory: EngineFactory,
        *,
        flow_controller: Callable[[str], FlowController | None],
        context_of: Callable[[str], ContextManager | None],
    ) -> None:
        self.setup = setup
        self.factory = factory
        self._flow_controller = flow_controller
        self._context_of = context_of
        self._realtime_backend: RealtimeBackend | None = None

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

    def build(self, record: CallRecord, fmt: AudioFormat, kind: EngineKind) -> CallParts:
        setup = self.setup
        tools: ToolRunner | None = setup.tools if len(setup.tools) else None
        instructions = record.system_prompt
        controller = self._flow_controller(record.id)
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
            record.audio_queue,
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
        return CallParts(engine, self._pipeline(record, engine))

    def _pipeline(self, record: CallRecord, engine: CallEngine) -> _Reporter:
        """Give the engine the call's text middleware; the returned reporter carries a
        skipped middleware's failure to the call once it runs."""
        reporter = _Reporter(record.id)
        session_id = record.id

        def context() -> dict[str, str]:
            manager = self._context_of(session_id)
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
class CallParts:
    engine: CallEngine
    reporter: _Reporter

    def report_to(self, to: Callable[[Event], Awaitable[None]]) -> None:
        self.reporter.bind(to)

"""``CallSetup``: what an app registered that every call is built with.

The :class:`~parley.app.Parley` facade owns these registries (its decorators add
to them); the switchboard reads them when a call starts, so a hook registered
after the server started applies to the next call. Defined here, below the
facade, so that the server never imports the app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from parley.analytics.hub import MetricsHandler
from parley.analytics.processor import AnalyticsProcessor
from parley.config import ConversationConfig
from parley.conversation.context import ContextProvider
from parley.conversation.middleware import MiddlewareRegistry
from parley.conversation.tools import ToolRegistry
from parley.conversation.triggers import ContextTrigger
from parley.engines.seams import Engine
from parley.engines.spec import EngineRequest
from parley.flows import ConversationEventHandler, FlowConfig

__all__ = ["CallSetup", "EngineMaker", "EventHandler", "LifecycleHandler"]

#: ``async (session_id, user_id) -> None``
LifecycleHandler = Callable[[str, "str | None"], Awaitable[None]]
#: ``async (session_id, event) -> None``
EventHandler = Callable[[str, Any], Awaitable[None]]
#: A custom engine factory: one call's request → its engine.
EngineMaker = Callable[[EngineRequest], Engine]


@dataclass(slots=True)
class CallSetup:
    config: ConversationConfig
    tools: ToolRegistry = field(default_factory=ToolRegistry)
    middleware: MiddlewareRegistry = field(default_factory=MiddlewareRegistry)
    on_start: list[LifecycleHandler] = field(default_factory=list)
    on_end: list[LifecycleHandler] = field(default_factory=list)
    handlers: dict[type, list[EventHandler]] = field(default_factory=dict)
    #: ``@app.event_handler`` classes: one instance of each per call.
    event_handlers: list[type[ConversationEventHandler]] = field(default_factory=list)
    context_providers: list[ContextProvider] = field(default_factory=list)
    context_triggers: list[ContextTrigger] = field(default_factory=list)
    #: A guided multi-phase conversation every call follows (None: free talk).
    flow: FlowConfig | None = None
    engine_maker: EngineMaker | None = None
    #: ``@app.on_metrics_update``: each turn's ConversationMetrics, and the call's summary.
    metrics_handlers: list[MetricsHandler] = field(default_factory=list)
    #: ``@app.analytics_processor`` (None: the built-in one, with ``enable_analytics``).
    analytics_processor: AnalyticsProcessor | None = None

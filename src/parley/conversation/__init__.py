"""One live conversation: state machine, transcript, tools, transport seam."""

from __future__ import annotations

from parley.conversation.context import ContextManager, ContextProvider, InjectResult
from parley.conversation.journal import Journal
from parley.conversation.middleware import (
    AnalyticsMiddleware,
    LoggingMiddleware,
    Middleware,
    MiddlewareContext,
    TimingMiddleware,
    TokenAuthMiddleware,
)
from parley.conversation.pii import PIIRedactionMiddleware
from parley.conversation.session import Conversation, EventHook, LifecycleHook
from parley.conversation.state import TRANSITIONS, ConversationState, StateMachine
from parley.conversation.stream import CallStream, Inbound, PlaybackReport, UserText
from parley.conversation.tools import ToolError, ToolRegistry, tool_spec
from parley.conversation.transcript import Transcript, Turn
from parley.conversation.triggers import ContextTrigger, TriggerType

__all__ = [
    "TRANSITIONS",
    "AnalyticsMiddleware",
    "CallStream",
    "ContextManager",
    "ContextProvider",
    "ContextTrigger",
    "Conversation",
    "ConversationState",
    "EventHook",
    "Inbound",
    "InjectResult",
    "Journal",
    "LifecycleHook",
    "LoggingMiddleware",
    "Middleware",
    "MiddlewareContext",
    "PIIRedactionMiddleware",
    "PlaybackReport",
    "StateMachine",
    "TimingMiddleware",
    "TokenAuthMiddleware",
    "ToolError",
    "ToolRegistry",
    "Transcript",
    "TriggerType",
    "Turn",
    "UserText",
    "tool_spec",
]

"""One live conversation: state machine, transcript, metrics, tools, transport seam."""

from __future__ import annotations

from parley.conversation.metrics import ConversationMetrics, LatencySummary, summarize
from parley.conversation.session import Conversation, EventHook, LifecycleHook
from parley.conversation.state import TRANSITIONS, ConversationState, StateMachine
from parley.conversation.stream import CallStream, Inbound, PlaybackReport, UserText
from parley.conversation.tools import ToolError, ToolRegistry, tool_spec
from parley.conversation.transcript import Transcript, Turn

__all__ = [
    "TRANSITIONS",
    "CallStream",
    "Conversation",
    "ConversationMetrics",
    "ConversationState",
    "EventHook",
    "Inbound",
    "LatencySummary",
    "LifecycleHook",
    "PlaybackReport",
    "StateMachine",
    "ToolError",
    "ToolRegistry",
    "Transcript",
    "Turn",
    "UserText",
    "summarize",
    "tool_spec",
]

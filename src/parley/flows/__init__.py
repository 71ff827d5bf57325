"""Guided conversations: a flow of phases with goals, driven by the model's tools.

from parley.flows import FlowController, load_flow

flow = load_flow("examples/restaurant_ordering.yaml")   # validated at load
controller = FlowController(flow, base_instructions="You are a friendly host.")
engine = controller.attach(make_engine(instructions=controller.instructions,
                                       tools=controller))
controller.progress().percent
"""

from __future__ import annotations

from parley.flows.config import Criterion, FlowConfig, Phase, load_flow
from parley.flows.controller import FLOW_TOOLS, FlowController, FlowEngine, FlowRegistry
from parley.flows.guided import ConversationPhase, GuidedConversation
from parley.flows.handlers import ConversationEventHandler
from parley.flows.observations import ObservationTracker
from parley.flows.progress import Progress, ProgressTracker

__all__ = [
    "FLOW_TOOLS",
    "ConversationEventHandler",
    "ConversationPhase",
    "Criterion",
    "FlowConfig",
    "FlowController",
    "FlowEngine",
    "FlowRegistry",
    "GuidedConversation",
    "ObservationTracker",
    "Phase",
    "Progress",
    "ProgressTracker",
    "load_flow",
]

"""The "brain" of a call: engines consume PCM16 and text and yield ``parley.events``."""

from __future__ import annotations

from parley.engines.cascade import CascadeConfig, CascadeEngine
from parley.engines.failover import FailoverEngine, FailoverPolicy
from parley.engines.loopback import LoopbackEngine
from parley.engines.realtime import RealtimeConfig, RealtimeEngine
from parley.engines.seams import Engine, ToolRunner

__all__ = [
    "CascadeConfig",
    "CascadeEngine",
    "Engine",
    "FailoverEngine",
    "FailoverPolicy",
    "LoopbackEngine",
    "RealtimeConfig",
    "RealtimeEngine",
    "ToolRunner",
]

"""An OpenAI-Realtime-compatible server (GA protocol) backed by any Parley engine.

Any Realtime client — OpenAI's own SDK included — can talk to a local, offline
Parley stack: ``serve_realtime(socket, backend, engine)`` runs one session over any
``WireSocket`` on an engine built by the caller (the server's switchboard);
``create_realtime_app()`` is the server on its own and ``realtime_route()`` the
route to mount at ``/v1/realtime`` in another app, both building each session's
engine with a zero-argument maker.
"""

from __future__ import annotations

from .app import (
    DEFAULT_MODEL,
    KEY_SUBPROTOCOL_PREFIX,
    admission,
    authorized,
    create_realtime_app,
    realtime_route,
    serve_realtime,
)
from .backend import (
    EngineMaker,
    RealtimeBackend,
    RealtimeSessionEngine,
    cascade_maker,
    offline_backend,
    offline_engine_maker,
)
from .input import SpeechBegan, SpeechEnded, SpeechInput, Utterance
from .session import EventHook, RealtimeSession
from .settings import endpoint_config, turn_config
from .tools import ClientTools, function_specs
from .usage import estimate_usage

__all__ = [
    "DEFAULT_MODEL",
    "KEY_SUBPROTOCOL_PREFIX",
    "ClientTools",
    "EngineMaker",
    "EventHook",
    "RealtimeBackend",
    "RealtimeSession",
    "RealtimeSessionEngine",
    "SpeechBegan",
    "SpeechEnded",
    "SpeechInput",
    "Utterance",
    "admission",
    "authorized",
    "cascade_maker",
    "create_realtime_app",
    "endpoint_config",
    "estimate_usage",
    "function_specs",
    "offline_backend",
    "offline_engine_maker",
    "realtime_route",
    "serve_realtime",
    "turn_config",
]

"""An OpenAI-Realtime-compatible server (GA protocol) backed by any Parley engine.

Any Realtime client — OpenAI's own SDK included — can talk to a local, offline
Parley stack: ``create_realtime_app()`` is the server on its own,
``realtime_route()`` the route to mount at ``/v1/realtime`` in another app, and
``serve_realtime()`` runs one session over any ``WireSocket``.
"""

from __future__ import annotations

from .app import (
    DEFAULT_MODEL,
    KEY_SUBPROTOCOL_PREFIX,
    authorized,
    create_realtime_app,
    realtime_route,
    serve_realtime,
)
from .backend import EngineMaker, RealtimeBackend, offline_backend
from .session import CancellableEngine, RealtimeSession
from .settings import turn_config
from .tools import ClientTools, function_specs
from .usage import estimate_usage

__all__ = [
    "DEFAULT_MODEL",
    "KEY_SUBPROTOCOL_PREFIX",
    "CancellableEngine",
    "ClientTools",
    "EngineMaker",
    "RealtimeBackend",
    "RealtimeSession",
    "authorized",
    "create_realtime_app",
    "estimate_usage",
    "function_specs",
    "offline_backend",
    "realtime_route",
    "serve_realtime",
    "turn_config",
]

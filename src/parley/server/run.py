"""Run an ASGI app of Parley's under uvicorn, one process or several (``workers``)."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI

from parley.errors import ConfigError

__all__ = ["LEAN_WS", "run_server"]

#: uvicorn's WebSocket protocol for Parley: the switchboard's endpoints on picows,
#: any other WebSocket route through websockets-sansio (server/hosts/lean.py).
LEAN_WS = "parley.server.hosts.lean:LeanWebSocketProtocol"


def _configure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")


def run_server(
    app: FastAPI | None,
    *,
    host: str,
    port: int,
    workers: int = 1,
    app_import: str | None = None,
    drain_seconds: float = 10.0,
    log_level: str = "info",
) -> None:
    """Serve ``app`` (one process), or ``app_import`` (an import string of a
    zero-argument factory returning a FastAPI app: each worker builds its own).
    uvicorn's own SIGTERM handling is wrapped by the app's lifespan so that live
    calls drain first (see :mod:`parley.server.lifecycle`)."""
    if app_import is None and (workers > 1 or app is None):
        raise ConfigError(
            f"workers={workers} needs an import string of an app factory (each worker "
            "builds its own app), e.g. 'parley.cli:default_asgi'",
            field="workers",
        )
    _configure_logging()
    target: str | FastAPI
    if app_import is not None:
        target = app_import
    else:
        assert app is not None  # checked above
        target = app
    uvicorn.run(
        target,
        host=host,
        port=port,
        workers=workers,
        factory=isinstance(target, str),
        ws=LEAN_WS,
        lifespan="on",
        log_level=log_level,
        # Our drain ends the calls; this only bounds what uvicorn waits for after it.
        timeout_graceful_shutdown=max(5, int(drain_seconds) + 5),
    )

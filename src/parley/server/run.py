"""Run a Parley app under uvicorn, one process or several (``workers``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import uvicorn

from parley.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from parley.app import Parley

__all__ = ["DEFAULT_APP_FACTORY", "default_app", "run_server"]

#: Import string of :func:`default_app`, for ``workers > 1`` without a user module.
DEFAULT_APP_FACTORY = "parley.server.run:default_app"


def default_app() -> FastAPI:
    """A Parley app configured only by settings (environment, ``PARLEY_CONFIG``).

    Each worker process calls this once, so every worker has its own registry and
    shares the model files through the OS page cache.
    """
    from parley.app import Parley

    return Parley().asgi


def _configure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")


def run_server(
    app: Parley | None,
    *,
    host: str,
    port: int,
    workers: int = 1,
    app_import: str | None = None,
    log_level: str = "info",
) -> None:
    """Serve ``app`` (one process), or ``app_import`` (a factory import string, any
    number of workers). uvicorn's own SIGTERM handling is wrapped by the app's
    lifespan so that live calls drain first (see :mod:`parley.server.lifecycle`)."""
    if workers > 1 and app_import is None:
        raise ConfigError(
            f"workers={workers} needs an import string of an app factory (each worker "
            f"builds its own app), e.g. {DEFAULT_APP_FACTORY!r}",
            field="workers",
        )
    _configure_logging()
    target: str | FastAPI
    if app_import is not None:
        target = app_import
    elif app is not None:
        target = app.asgi
    else:
        target = DEFAULT_APP_FACTORY
    drain = app.settings.drain_seconds if app is not None else 10.0
    uvicorn.run(
        target,
        host=host,
        port=port,
        workers=workers,
        factory=isinstance(target, str),
        ws="websockets-sansio",
        lifespan="on",
        log_level=log_level,
        # Our drain ends the calls; this only bounds what uvicorn waits for after it.
        timeout_graceful_shutdown=max(5, int(drain) + 5),
    )

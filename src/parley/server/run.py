"""Run an ASGI app of Parley's under uvicorn, one process or several (``workers``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Generator, Iterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from parley.errors import ConfigError
from parley.metrics.prometheus import MULTIPROC_ENV, mark_process_dead

__all__ = ["LEAN_WS", "BackgroundServer", "run_server"]

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
    metrics = _multiprocess_metrics() if workers > 1 else contextlib.nullcontext()
    with metrics:
        _run(target, host, port, workers, drain_seconds, log_level)


def _run(
    target: str | FastAPI, host: str, port: int, workers: int, drain_seconds: float, log_level: str
) -> None:
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


class _LoopServer(uvicorn.Server):
    """uvicorn inside someone else's loop: the process's signal handlers are theirs."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class BackgroundServer:
    """uvicorn serving ``app`` on the running event loop, for ``await app.start()``:
    ``start()`` returns once it listens (``port`` 0: a free one, see :attr:`port`),
    ``stop()`` shuts it down (the app's lifespan drains live calls first)."""

    def __init__(self, app: FastAPI, *, host: str, port: int, drain_seconds: float) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self._server = _LoopServer(
            uvicorn.Config(
                app,
                ws=LEAN_WS,
                lifespan="on",
                log_config=None,
                timeout_graceful_shutdown=max(5, int(drain_seconds) + 5),
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        _configure_logging()
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:  # uvicorn offers a flag, not an event
            if self._task.done():
                self._task.result()  # its startup error, as raised
                raise ConfigError("the server stopped while starting", field="port")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        task, self._task = self._task, None
        await task
        self._sock.close()


def _children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (Linux ``/proc``; elsewhere none known)."""
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stat = Path(entry.path, "stat").read_text()
                    if int(stat.rpartition(")")[2].split()[1]) == pid:
                        found.add(int(entry.name))
    return found


@contextlib.contextmanager
def _multiprocess_metrics() -> Iterator[None]:
    """prometheus-client's multiprocess mode for uvicorn's workers: an empty folder in
    ``PROMETHEUS_MULTIPROC_DIR`` before they start (they inherit it and write their
    figures there; a scrape of any worker merges them), and each worker that exits is
    marked dead so that its live gauges stop counting (uvicorn restarts a worker that
    died; the new one has a new pid). A folder the user set is used as it is."""
    own = MULTIPROC_ENV not in os.environ
    directory = tempfile.mkdtemp(prefix="parley-metrics-") if own else os.environ[MULTIPROC_ENV]
    os.environ[MULTIPROC_ENV] = directory
    stop = threading.Event()

    def reap() -> None:
        # uvicorn's supervisor has no hook for a worker's exit: watch our children.
        me, seen = os.getpid(), set[int]()
        while not stop.wait(1.0):
            now = _children(me)
            for pid in seen - now:
                mark_process_dead(pid, directory)
            seen = now

    watcher = threading.Thread(target=reap, name="parley-metrics-reaper", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(2.0)
        if own:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(directory, ignore_errors=True)

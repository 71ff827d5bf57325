"""The process-wide model registry and the executor that runs blocking inference.

A model (an ONNX session, a CTranslate2 Whisper, a Piper voice) costs hundreds of
milliseconds and tens of megabytes to load, so each is loaded once per process
under a name and shared by every call. Loading is thread-safe: concurrent first
uses of one name load it once (a per-name lock), while different names load in
parallel. ``load_count(name)`` says how many times a name was loaded, so a test
can assert that a second conversation loads nothing.

Inference blocks for up to hundreds of milliseconds, so it never runs on the
event loop: ``run_blocking`` hands it to one shared thread pool.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

__all__ = [
    "executor",
    "get_model",
    "is_loaded",
    "load_count",
    "load_counts",
    "run_blocking",
]

T = TypeVar("T")

_lock = threading.Lock()  # guards the three dicts below, never held while loading
_models: dict[str, object] = {}
_name_locks: dict[str, threading.Lock] = {}
_load_counts: dict[str, int] = {}

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def get_model(name: str, loader: Callable[[], T]) -> T:
    """Return the model registered as ``name``, calling ``loader`` the first time only.

    Blocking: call it from a worker thread (``run_blocking``) when on the event loop.
    If ``loader`` raises, nothing is registered and the next call tries again.
    """
    with _lock:
        if name in _models:
            return cast(T, _models[name])
        name_lock = _name_locks.setdefault(name, threading.Lock())
    with name_lock:
        with _lock:
            if name in _models:  # another thread loaded it while we waited
                return cast(T, _models[name])
        model = loader()
        with _lock:
            _models[name] = model
            _load_counts[name] = _load_counts.get(name, 0) + 1
        return model


def is_loaded(name: str) -> bool:
    with _lock:
        return name in _models


def load_count(name: str) -> int:
    """How many times the model ``name`` has been loaded in this process (0 or 1)."""
    with _lock:
        return _load_counts.get(name, 0)


def load_counts() -> Mapping[str, int]:
    """A snapshot of every load count, to compare before and after some work."""
    with _lock:
        return dict(_load_counts)


def executor() -> ThreadPoolExecutor:
    """The one pool that runs blocking inference for every call of this process.

    Sized for concurrency, not parallel speed: the models themselves use several
    cores each, so more workers than cores only helps many short jobs (VAD, short
    clauses) not queue behind one long Whisper run. ``PARLEY_MODEL_WORKERS``
    overrides the size.
    """
    global _executor
    with _executor_lock:
        if _executor is None:
            default = max(4, 2 * (os.cpu_count() or 1))
            workers = int(os.environ.get("PARLEY_MODEL_WORKERS", default))
            _executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="parley-model")
        return _executor


async def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in the shared executor and await its result.

    Cancelling the awaiting task does not stop the worker thread (a running model
    cannot be interrupted); the result is dropped when it comes.
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor(), fn, *args)

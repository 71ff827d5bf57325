"""The CPU a local model spends on one call: time the blocking call on its own thread.

Local models cost no money but they cost CPU, and that is what a local call's bill
reports. Inference runs in the model executor (``parley.providers.models.run_blocking``),
so wall time there says little on a loaded machine; ``time.thread_time()`` measured
*inside* the worker thread is the CPU that call used::

    (text, cpu_s) = await run_blocking(cpu_timed(whisper.transcribe), pcm)
    meter.add_cpu("stt", cpu_s)

Native code that runs its own threads (CTranslate2 with ``cpu_threads=2``, ONNX Runtime
intra-op pools) spends CPU outside the calling thread; for those pass
``process=True``, which measures ``time.process_time()`` instead — exact when one call
runs at a time, shared out roughly otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["cpu_timed"]

P = ParamSpec("P")
T = TypeVar("T")


def cpu_timed(fn: Callable[P, T], *, process: bool = False) -> Callable[P, tuple[T, float]]:
    """``fn`` returning ``(result, cpu_seconds)``; the clock is the calling thread's
    (or the whole process's with ``process=True``)."""
    clock = time.process_time if process else time.thread_time

    def timed(*args: P.args, **kwargs: P.kwargs) -> tuple[T, float]:
        t0 = clock()
        result = fn(*args, **kwargs)
        return result, clock() - t0

    return timed

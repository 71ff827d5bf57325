"""The document's ``device`` settings (``"auto"``, ``"cpu"``, ``"cuda"`` …) on Parley.

Parley's local models run on the CPU: Whisper through CTranslate2's int8 CPU build,
Piper through onnxruntime's CPU build; no GPU build is installed (it would pull
CUDA, and the document's torch, which Parley never installs). ``"auto"`` and
``"cpu"`` therefore mean the CPU; a GPU device is accepted with one log line saying
that the CPU is used; anything else is refused, naming what is offered.
"""

from __future__ import annotations

import logging
from typing import Final

from parley.errors import ConfigError

__all__ = ["CPU_DEVICES", "GPU_DEVICES", "cpu_device"]

log = logging.getLogger("parley.realtime_conversation")

CPU_DEVICES: Final = frozenset({"auto", "cpu"})
GPU_DEVICES: Final = frozenset({"cuda", "gpu", "mps"})


def cpu_device(device: str, who: str) -> str:
    """``"cpu"`` for a device the document uses; ``ConfigError`` for an unknown one."""
    name = device.strip().lower()
    if name in CPU_DEVICES:
        return "cpu"
    if name.partition(":")[0] in GPU_DEVICES:
        log.warning(
            "%s(device=%r): Parley runs its local models on the CPU (no GPU build is "
            "installed); using device='cpu'",
            who,
            device,
        )
        return "cpu"
    raise ConfigError(
        f"{who}: unknown device {device!r}; use 'auto' or 'cpu' (a GPU device such as "
        "'cuda' is accepted and runs on the CPU)",
        field="device",
    )

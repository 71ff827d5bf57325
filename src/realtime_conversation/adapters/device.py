"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.adapters.device`.
"""

from __future__ import annotations

from parley.realtime_conversation.adapters.device import (
    CPU_DEVICES,
    GPU_DEVICES,
    cpu_device,
)

__all__ = ["CPU_DEVICES", "GPU_DEVICES", "cpu_device"]

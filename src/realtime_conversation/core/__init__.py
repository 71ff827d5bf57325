"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.core`.
"""

from __future__ import annotations

__all__: list[str] = []

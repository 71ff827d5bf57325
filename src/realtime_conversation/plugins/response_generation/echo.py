"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.plugins.response_generation.echo`.
"""

from __future__ import annotations

from parley.realtime_conversation.plugins.response_generation.echo import (
    EchoResponseGenerator,
)

__all__ = ["EchoResponseGenerator"]

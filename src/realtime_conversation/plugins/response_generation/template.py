"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.plugins.response_generation.template`.
"""

from __future__ import annotations

from parley.realtime_conversation.plugins.response_generation.template import (
    TemplateResponseGenerator,
)

__all__ = ["TemplateResponseGenerator"]

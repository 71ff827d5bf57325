"""Seed 003's import path: re-exports of
:mod:`parley.realtime_conversation.plugins.response_generation`.
"""

from __future__ import annotations

from parley.realtime_conversation.plugins.response_generation import (
    EchoResponseGenerator,
    LLMResponseGenerator,
    ResponseGenerator,
    TemplateResponseGenerator,
)

__all__ = [
    "EchoResponseGenerator",
    "LLMResponseGenerator",
    "ResponseGenerator",
    "TemplateResponseGenerator",
]

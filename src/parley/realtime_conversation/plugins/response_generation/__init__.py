"""Response generation (the document's ``plugins.response_generation``)."""

from __future__ import annotations

from parley.realtime_conversation.core.interfaces import ResponseGenerator
from parley.realtime_conversation.plugins.response_generation.base import LLMResponseGenerator
from parley.realtime_conversation.plugins.response_generation.echo import EchoResponseGenerator
from parley.realtime_conversation.plugins.response_generation.template import (
    TemplateResponseGenerator,
)

__all__ = [
    "EchoResponseGenerator",
    "LLMResponseGenerator",
    "ResponseGenerator",
    "TemplateResponseGenerator",
]

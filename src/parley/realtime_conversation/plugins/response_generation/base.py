"""A response generator over any Parley ``LLM`` (the brain seat of
:mod:`parley.providers.seams`): the reply is the model's streamed text, joined.

The echo and template generators are Parley's offline responders through this one
class; :class:`LLMResponseGenerator` also takes a hosted model (``openai:MODEL``,
``anthropic:MODEL``) from the provider registry, so the document's engine can
answer with a real LLM by configuration.
"""

from __future__ import annotations

from parley.events import Role
from parley.providers.registry import ProviderRegistry
from parley.providers.seams import LLM, Message
from parley.realtime_conversation.core.interfaces import ConversationContext

__all__ = ["LLMResponseGenerator"]


class LLMResponseGenerator:
    """``generate_response(text, context)`` by asking ``llm`` with the conversation so far.

    ``llm`` is a Parley ``LLM`` or a brain spec string of the provider registry
    (``echo | template | openai:MODEL | anthropic:MODEL``); ``instructions`` is the
    system prompt.
    """

    def __init__(self, llm: LLM | str, *, instructions: str = "") -> None:
        self.llm: LLM = ProviderRegistry().brain(llm) if isinstance(llm, str) else llm
        self.instructions = instructions

    async def generate_response(self, text: str, context: ConversationContext) -> str:
        head = [Message(Role.SYSTEM, self.instructions)] if self.instructions else []
        messages = [*head, *context.history, Message(Role.USER, text)]
        parts = [chunk async for chunk in self.llm.stream(messages) if isinstance(chunk, str)]
        return "".join(parts).strip()

"""``EchoResponseGenerator``: simple echo responses for testing — Parley's
:class:`parley.providers.responders.EchoResponder` ("You said: …")."""

from __future__ import annotations

from parley.providers.responders import EchoResponder
from parley.realtime_conversation.plugins.response_generation.base import LLMResponseGenerator

__all__ = ["EchoResponseGenerator"]


class EchoResponseGenerator(LLMResponseGenerator):
    """Replies ``prefix`` + what the user said (``empty_reply`` when they said nothing)."""

    def __init__(
        self, prefix: str = "You said: ", *, empty_reply: str = "I didn't catch that."
    ) -> None:
        super().__init__(EchoResponder(prefix=prefix, empty_reply=empty_reply))

"""The engines' side of middleware: hooks on the text to and from the model.

Engines sit below the conversation layer, so they know nothing of
:mod:`parley.conversation.middleware`; they take two plain async functions:

- the **request hook** transforms the user's text before the model sees it;
- the **response hook** transforms the model's text before it is spoken (cascade)
  or shown (realtime transcripts and text outputs).

Both default to ``None``, and an engine without hooks runs exactly as before.

Streaming: the response hook is applied to whole pieces from the sentence
splitter, never to raw model tokens, so a pattern (an e-mail, a card number) is
seen whole unless the splitter cuts inside it. The splitter cuts only after
sentence or clause punctuation followed by whitespace, at a newline, or, in a
very long run with no punctuation, at a space. None of those can fall inside an
e-mail address; the last one could fall inside a spaced number
("4111 1111 | 1111 1111"), so :class:`HeldSplitter` holds back a piece that ends in
a digit and joins it to the next one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from parley.providers.sentences import SentenceSplitter

__all__ = ["HeldSplitter", "MiddlewareHost", "TextHook"]

#: ``async (text) -> text``; may raise a ``ParleyError`` to refuse the text.
TextHook = Callable[[str], Awaitable[str]]


@runtime_checkable
class MiddlewareHost(Protocol):
    """An engine that applies request/response text hooks."""

    def set_text_hooks(
        self, *, request: TextHook | None = None, response: TextHook | None = None
    ) -> None: ...


class HeldSplitter:
    """A :class:`SentenceSplitter` that never ends a piece inside a run of digits:
    a piece ending in a digit is held and joined to the next piece (see the module
    docstring). ``flush`` releases everything."""

    def __init__(self, *, first_clause_chars: int = 16) -> None:
        self._splitter = SentenceSplitter(first_clause_chars=first_clause_chars)
        self._held = ""

    def push(self, delta: str) -> list[str]:
        return self._release(self._splitter.push(delta), final=False)

    def flush(self) -> list[str]:
        return self._release(self._splitter.flush(), final=True)

    def _release(self, pieces: list[str], *, final: bool) -> list[str]:
        out: list[str] = []
        for piece in pieces:
            if self._held:
                piece, self._held = f"{self._held} {piece}", ""
            if piece[-1:].isdigit():
                self._held = piece
            else:
                out.append(piece)
        if final and self._held:
            out.append(self._held)
            self._held = ""
        return out

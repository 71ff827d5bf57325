"""Split streamed text into sentences and clauses for text-to-speech.

A TTS voice needs whole sentences (or at least clauses) for natural prosody, but
waiting for a whole reply costs seconds. ``SentenceSplitter`` takes text as it
streams from a model and hands out each piece the moment its end is certain:

- a sentence ends at ``.``, ``!``, ``?`` or ``…`` (plus closing quotes or
  brackets) once whitespace follows — so ``3.14`` and ``e.g.`` mid-stream are
  not cut — unless the word before a ``.`` is a known abbreviation (``Dr.``,
  ``e.g.``) or an initial (``J.``); a newline ends one too (lists);
- the *first* piece may also end at a clause mark (``,`` ``;`` ``:`` ``—``)
  once it is ``first_clause_chars`` long, so the voice can start early; later
  pieces end at clauses only when ``long_clause_chars`` long (the earlier audio
  is playing meanwhile, so there is no hurry, and whole sentences sound better);
- anything longer than ``max_chars`` without a boundary is cut at a space.

Why hand-written: NLTK's punkt and similar splitters work on finished text and
would cut "3." from "3.14" when the stream pauses between them; pySBD and
spaCy are heavyweight. This is the streaming rule set voice frameworks use.
"""

from __future__ import annotations

import re

__all__ = ["SentenceSplitter", "split_sentences"]

_CLOSERS = "\"'”’)\\]"
_BOUNDARY = re.compile(
    rf"(?P<sent>[.!?…]+)[{_CLOSERS}]*(?=\s)|(?P<nl>\n)|(?P<clause>[,;:—–])[{_CLOSERS}]*(?=\s)"
)
_WORD_BEFORE = re.compile(r"([A-Za-z.]+)$")
# Words after which "." is not the end of a sentence (lowercase, without the final dot).
_ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e",
        "mt", "no", "approx", "dept", "inc", "ltd", "co", "corp", "jan", "feb", "mar",
        "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "u.s", "a.m",
        "p.m", "fig", "est", "ave", "blvd", "rd",
    }
)  # fmt: skip


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the ``.`` at index ``dot`` closes an abbreviation or an initial."""
    m = _WORD_BEFORE.search(text, 0, dot)
    if m is None:
        return False
    word = m.group(1).lower().strip(".")
    return (len(word) == 1 and word.isalpha()) or word in _ABBREVIATIONS


class SentenceSplitter:
    """Incremental splitter: ``push`` text deltas, get finished pieces; ``flush`` at the end."""

    def __init__(
        self,
        *,
        first_clause_chars: int = 16,
        long_clause_chars: int = 80,
        max_chars: int = 250,
    ) -> None:
        if not 0 < first_clause_chars <= max_chars or not 0 < long_clause_chars <= max_chars:
            raise ValueError("clause lengths must be positive and at most max_chars")
        self._first_clause = first_clause_chars
        self._long_clause = long_clause_chars
        self._max = max_chars
        self._buf = ""
        self._emitted = False

    def push(self, delta: str) -> list[str]:
        """Add streamed text; return the pieces whose end is now certain (maybe none)."""
        self._buf += delta
        out: list[str] = []
        start = 0
        for m in _BOUNDARY.finditer(self._buf):
            if m.start() < start:
                continue
            piece = self._buf[start : m.end()].strip()
            if not piece or not any(c.isalnum() for c in piece):
                continue  # punctuation alone: keep it with what follows
            if m.group("sent") == "." and _is_abbreviation(self._buf, m.start()):
                continue
            if m.group("clause") is not None:
                need = self._long_clause if self._emitted else self._first_clause
                if len(piece) < need:
                    continue
            out.append(piece)
            self._emitted = True
            start = m.end()
        rest = self._buf[start:]
        while len(rest) > self._max:
            cut = rest.rfind(" ", 0, self._max)
            if cut <= 0:
                cut = self._max
            piece = rest[:cut].strip()
            if piece:
                out.append(piece)
                self._emitted = True
            rest = rest[cut:]
        self._buf = rest
        return out

    def flush(self) -> list[str]:
        """The text left over at the end of the stream (at most one piece)."""
        rest, self._buf = self._buf.strip(), ""
        self._emitted = False
        return [rest] if any(c.isalnum() for c in rest) else []


def split_sentences(text: str, *, first_clause_chars: int = 16) -> list[str]:
    """Split finished text with the same rules as the streaming splitter."""
    splitter = SentenceSplitter(first_clause_chars=first_clause_chars)
    return splitter.push(text) + splitter.flush()

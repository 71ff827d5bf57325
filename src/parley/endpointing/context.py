"""Dialogue context: what the agent just asked decides what a finished answer is.

Sans-I/O. :func:`expectation_from` reads the agent's last utterance and says what
kind of answer it asked for (an :class:`Expectation`): so many digits (a phone
number, a zip code, the last four of a card), an email, a date, or a yes/no
answer. :func:`context_estimate` then judges the caller's running transcript
against it:

- digits: while the transcript ends on a number and holds fewer digits than the
  answer needs, the caller is surely not done ("five five five, one two three" to
  "what's your phone number?"); once it has them, surely done;
- yes/no: a short answer that starts with yes/no or a synonym ("Yes.", "No,
  thanks.", "Sure.") is finished, however short;
- a wh-question asking for a thing ("Which one would you like?", "How many
  people?"): a short phrase that does not trail off answers it ("The blue one.");
- email: ending on a domain ending ("dot com") is finished, before it not;
- otherwise (an open question, no agent turn yet) the context has no opinion.

It speaks only about the entity at the end of the transcript: "my number is 555
123 4567 and" ends on a conjunction, which the syntax signal judges. A flow phase
can set the expectation directly (:class:`~parley.endpointing.model.PhasePolicy`)
instead of having it read from the agent's words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from parley.endpointing.estimate import Estimate
from parley.endpointing.syntax import count_digits, ends_with_number, syntax_estimate, words

__all__ = ["ExpectKind", "Expectation", "context_estimate", "expectation_from"]

ExpectKind = Literal["digits", "email", "yes_no", "date", "answer", "open"]


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a finished answer looks like. ``digits`` is how many a ``"digits"``
    answer needs (``None``: a number of unknown length, no count-based opinion)."""

    kind: ExpectKind = "open"
    digits: int | None = None
    label: str = ""

    @classmethod
    def number(cls, digits: int | None, label: str = "number") -> Expectation:
        return cls("digits", digits, label)


OPEN = Expectation()

# (pattern over the agent's last sentence, expectation); first match wins, so the
# more specific ones come first ("last four digits of your card" before "card").
_RULES: list[tuple[re.Pattern[str], Expectation]] = [
    (re.compile(r"\blast (four|4)\b"), Expectation.number(4, "last four")),
    (re.compile(r"\b(cvv|cvc|security code)\b"), Expectation.number(3, "security code")),
    (re.compile(r"\b(zip|postal|post) ?code\b|\bzip\b"), Expectation.number(5, "zip code")),
    (re.compile(r"\bpin\b"), Expectation.number(4, "pin")),
    (re.compile(r"\bcard number\b|\bcredit card\b"), Expectation.number(16, "card number")),
    (
        re.compile(r"\b(phone|mobile|cell|callback|call ?back|contact|telephone) (number)?\b"),
        Expectation.number(10, "phone number"),
    ),
    (re.compile(r"\bnumber (to|where|we can|i can)\b"), Expectation.number(10, "phone number")),
    (re.compile(r"\be-?mail\b"), Expectation("email", None, "email")),
    (
        re.compile(r"\b(account|order|reference|confirmation|member|policy|booking|tracking)\b"),
        Expectation.number(None, "reference number"),
    ),
    (re.compile(r"\b(date of birth|birthday|birth date|what date)\b"), Expectation("date")),
]
_YES_NO_START = re.compile(
    r"^(is|are|was|were|do|does|did|can|could|would|will|shall|should|have|has|had|may"
    r"|am|isn't|aren't|don't|doesn't|didn't|won't|wouldn't|can't|shouldn't)\b"
)
_YES_NO_WORDS = frozenset(
    """
    yes yeah yep yup yes. no nope nah sure correct right exactly absolutely definitely
    okay ok certainly indeed fine please thanks affirmative negative alright
    """.split()  # noqa: SIM905
)
_SENTENCE = re.compile(r"[^.?!]+[.?!]?")
# "Which one would you like?", "How many people…?": a short phrase answers them.
_WH_ASK = re.compile(r"^(and )?(which|who|whom|whose|where|when|what|how (many|much|long|old))\b")
# "How can I help?", "What can I do for you?", "What happened?": they ask for a story.
_OPEN_ASK = re.compile(r"\b(help|do for you|happened|seems|problem|going on|about)\b")
_TLD_END = re.compile(
    r"(\.|\bdot\s+)(com|org|net|edu|gov|io|co|uk|us|ca|de|info|biz|me|ai|dev)\W*$", re.I
)
_TRAILING_OFF = re.compile(r"(\.\.\.|…|[,;:\-–—])\W*$")


def expectation_from(agent_text: str | None) -> Expectation:
    """What the agent's last utterance asked for (its last question, or sentence)."""
    if not agent_text:
        return OPEN
    sentences = [s.strip() for s in _SENTENCE.findall(agent_text) if s.strip()]
    if not sentences:
        return OPEN
    questions = [s for s in sentences if s.endswith("?")]
    last = (questions or sentences)[-1].lower()
    for pattern, expect in _RULES:
        if pattern.search(last):
            return expect
    if last.endswith("?") and _YES_NO_START.match(last):
        return Expectation("yes_no", None, "yes/no question")
    if last.endswith("?") and _WH_ASK.match(last) and not _OPEN_ASK.search(last):
        return Expectation("answer", None, "wh-question")
    # "…, is that right?" / "…, okay?" tag questions ask for a yes or a no too.
    if re.search(r"\b(is that (right|correct|ok|okay)|right|okay|correct)\?$", last):
        return Expectation("yes_no", None, "tag question")
    return OPEN


def context_estimate(text: str, expect: Expectation) -> Estimate | None:
    """The context's opinion of ``text`` as an answer to ``expect`` (``None``: none)."""
    text = text.strip()
    if not text or expect.kind == "open":
        return None
    if expect.kind == "digits":
        if expect.digits is None or not ends_with_number(text):
            return None
        have = count_digits(text)
        if have < expect.digits:
            return Estimate(0.03, f"{have} of {expect.digits} digits", weight=2.0)
        return Estimate(0.97, f"{have} digits for a {expect.label}", weight=2.0)
    if expect.kind == "yes_no":
        ws = words(text)
        if not ws or len(ws) > 4 or _TRAILING_OFF.search(text):
            return None
        syntax = syntax_estimate(text)
        if syntax is not None and syntax.p_finished < 0.2:  # "Yes, but", "No, and"
            return None
        first = ws[0].strip(".,!")
        if first in _YES_NO_WORDS or " ".join(ws[:2]) in {"of course", "not really", "i do"}:
            return Estimate(0.95, "a yes/no answer", weight=2.0)
        return None
    if expect.kind == "email":
        if _TLD_END.search(text):
            return Estimate(0.95, "email ends on its domain", weight=2.0)
        if len(words(text)) >= 1 and not text.rstrip().endswith("?"):
            return Estimate(0.1, "email not finished yet", weight=1.5)
        return None
    if expect.kind == "answer":
        ws = words(text)
        syntax = syntax_estimate(text)
        # An entity in progress ("December", "447") or a dangling word is not an answer yet.
        if not ws or len(ws) > 5 or (syntax is not None and syntax.p_finished < 0.25):
            return None
        return Estimate(0.85, "a short answer to the question")
    if expect.kind == "date":
        toks = re.findall(r"\d+|[a-z]+", text.lower())
        if toks and re.fullmatch(r"(1[89]|20)\d\d", toks[-1]):
            return Estimate(0.95, "date with its year", weight=2.0)
        return None
    return None

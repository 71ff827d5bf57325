"""PII: find and redact e-mail addresses, phone numbers, card numbers and US SSNs,
and the middleware that does it to a conversation's text."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from parley.conversation.middleware import MiddlewareContext, Next
from parley.errors import ConfigError

__all__ = [
    "PII_KINDS",
    "PIIKind",
    "PIIMatch",
    "PIIRedactionMiddleware",
    "find_pii",
    "luhn_valid",
    "redact_pii",
]

# -- PII --------------------------------------------------------------------------------
#
# Hand-written patterns, because: Presidio needs spaCy models fetched at run time
# (this server is offline), and libphonenumber's matcher keeps only numbers valid
# in the national plans, while a redactor must also remove phone-shaped numbers in
# unassigned ranges. The rules follow the formats' own definitions: NANP area and
# exchange codes start with 2-9; E.164 has at most 15 digits; card numbers have
# 13-19 digits and a Luhn check digit; SSNs never have area 000, 666 or 900-999,
# group 00 or serial 0000.

PIIKind = Literal["email", "card", "ssn", "phone"]
PII_KINDS: tuple[PIIKind, ...] = ("email", "card", "ssn", "phone")
_LABELS: dict[str, str] = {
    "email": "email address",
    "card": "card number",
    "ssn": "social security number",
    "phone": "phone number",
}

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])"
)
# 13-19 digits, optionally in groups separated by one space or hyphen.
_CARD = re.compile(r"(?<![\w.-])\d(?:[ -]?\d){12,18}(?![\w-]|\.\d)")
_SSN = re.compile(r"(?<![\w.-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-]|\.\d)")
# NANP: optional +1, area code (bare or in brackets), exchange, line; one separator style
# between exchange and line so dates (2024-01-15) and versions (1.2.3) never fit.
_NANP = re.compile(
    r"(?<![\w.+-])(?:\+?1[ .-]?)?(?:\(([2-9]\d{2})\)\s?|([2-9]\d{2})([ .-]))"
    r"([2-9]\d{2})[ .-](\d{4})(?![\w-]|\.\d)"
)
# International: a leading + and 8-15 digits in groups.
_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?![\w-]|\.\d)")


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


@dataclass(frozen=True, slots=True)
class PIIMatch:
    kind: PIIKind
    start: int
    end: int
    text: str


def _cards(text: str) -> Iterable[PIIMatch]:
    for m in _CARD.finditer(text):
        raw = m.group()
        seps = {c for c in raw if not c.isdigit()}
        digits = raw.replace(" ", "").replace("-", "")
        if len(seps) <= 1 and 13 <= len(digits) <= 19 and luhn_valid(digits):
            yield PIIMatch("card", m.start(), m.end(), raw)


def _ssns(text: str) -> Iterable[PIIMatch]:
    for m in _SSN.finditer(text):
        area, group, serial = m.group(1), m.group(3), m.group(4)
        if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
            continue
        yield PIIMatch("ssn", m.start(), m.end(), m.group())


def _phones(text: str) -> Iterable[PIIMatch]:
    for m in _NANP.finditer(text):
        sep = m.group(3)
        if sep is not None and sep != text[m.end(4)]:
            continue  # 415-555.2671: mixed separators are not a phone number's
        yield PIIMatch("phone", m.start(), m.end(), m.group())
    for m in _INTL.finditer(text):
        digits = sum(c.isdigit() for c in m.group())
        if 8 <= digits <= 15:
            yield PIIMatch("phone", m.start(), m.end(), m.group())


def find_pii(text: str, kinds: Iterable[PIIKind] = PII_KINDS) -> list[PIIMatch]:
    """Non-overlapping PII in ``text``, in order; where matches overlap, the kind
    listed first in :data:`PII_KINDS` wins (an e-mail's digits are not a phone)."""
    wanted = set(kinds)
    found: list[PIIMatch] = []
    if "email" in wanted:
        found += [PIIMatch("email", m.start(), m.end(), m.group()) for m in _EMAIL.finditer(text)]
    if "card" in wanted:
        found += _cards(text)
    if "ssn" in wanted:
        found += _ssns(text)
    if "phone" in wanted:
        found += _phones(text)
    rank = {k: i for i, k in enumerate(PII_KINDS)}
    found.sort(key=lambda p: (rank[p.kind], p.start))
    taken: list[PIIMatch] = []
    for p in found:
        if all(p.end <= q.start or p.start >= q.end for q in taken):
            taken.append(p)
    taken.sort(key=lambda p: p.start)
    return taken


def redact_pii(
    text: str,
    kinds: Iterable[PIIKind] = PII_KINDS,
    *,
    replacement: str = "[redacted {label}]",
) -> tuple[str, Counter[str]]:
    """``text`` with each PII match replaced (``{kind}`` / ``{label}`` are filled in),
    and how many of each kind were replaced."""
    counts: Counter[str] = Counter()
    out: list[str] = []
    pos = 0
    for p in find_pii(text, kinds):
        out.append(text[pos : p.start])
        out.append(replacement.format(kind=p.kind, label=_LABELS[p.kind]))
        counts[p.kind] += 1
        pos = p.end
    out.append(text[pos:])
    return "".join(out), counts


class PIIRedactionMiddleware:
    """Replaces e-mail addresses, phone numbers, Luhn-valid card numbers and US SSNs.
    As response middleware on the cascade it removes them from what is spoken; the
    counts go to ``metadata["pii_redacted"]`` and :attr:`redacted`."""

    def __init__(
        self,
        kinds: Iterable[PIIKind] = PII_KINDS,
        *,
        replacement: str = "[redacted {label}]",
    ) -> None:
        self.kinds = tuple(kinds)
        unknown = set(self.kinds) - set(PII_KINDS)
        if unknown:
            raise ConfigError(f"unknown PII kind(s): {sorted(unknown)}", field="kinds")
        self.replacement = replacement
        self.redacted: Counter[str] = Counter()

    async def process(self, context: MiddlewareContext, next: Next) -> MiddlewareContext:
        text, counts = redact_pii(context.text, self.kinds, replacement=self.replacement)
        if counts:
            context.text = text
            self.redacted.update(counts)
            context.metadata.setdefault("pii_redacted", Counter()).update(counts)
        return await next(context)

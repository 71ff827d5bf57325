"""Syntactic completeness of the running transcript: does it *read* finished?

Sans-I/O, pure string work (a few µs per call). :func:`syntax_estimate` looks at
the end of what the recogniser heard so far and returns an
:class:`~parley.endpointing.estimate.Estimate`:

- trailing off — ``...``, a comma, dash or colon at the end (Whisper marks a
  continuing intonation with them): unfinished;
- a word a sentence does not end on — preposition, article, possessive, copula,
  conjunction, a filler ("um", "so", "and") or a hold phrase ("let me think",
  "hold on"): unfinished; but a copula or auxiliary right after a pronoun closes
  an elliptical or inverted clause ("Yes, it is.", "Here we are.", "What a lovely
  day it is."), read like any other last word;
- an entity in progress — a number being read out (a digit group or a number
  word at the end), an email without its domain ending, a month with no day, an
  ``apartment``/``suite`` with no number: unfinished until it looks complete (an
  email ending on a top-level domain, a date with its year);
- final ``?``: finished; final ``.``/``!`` on a content word: probably finished;
  no final punctuation on a content word (Whisper drops the stop on about a third
  of finished utterances): no better than a coin toss.

The word lists are general English function words, written down before looking at
any tuning data. Numbers read to a dialogue partner are judged better by
:mod:`parley.endpointing.context`, which knows how many digits were asked for.
"""

from __future__ import annotations

import re

from parley.endpointing.estimate import Estimate

__all__ = ["DIGIT_WORDS", "count_digits", "ends_with_number", "syntax_estimate", "words"]

# Words after which an English sentence almost never ends.
_CONTINUES = frozenset(
    """
    and or but nor because if than then which whose where while although though unless
    until whether
    is are was were am be been being isn't aren't wasn't weren't 's 're 'm
    to of in on at for from with by about into onto under between through via per
    the a an my your our their his her its this these those
    um uh er erm hmm mm ah
    very really just also plus
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
# Openers that end "I think so." but not when they are all there is (or after "and").
_OPENERS = frozenset({"so", "well", "like", "okay", "ok", "right", "now", "and", "actually"})
# Verbs that want an object: "I need", "I'd like", "I was wondering".
_WANTS_OBJECT = frozenset(
    {"need", "want", "wanted", "like", "wondering", "called", "named", "spelled", "spell"}
)
# Verbs that usually take one ("could you send", "I want to order"): less sure.
_TRANSITIVE = frozenset(
    """
    order send check book change buy get add bring give tell make take put find return
    reach use pick try update move transfer confirm have has had got
    """.split()  # noqa: SIM905
)
# A clause that stops on its subject ("I paid but they", "what plan I'm") or on a
# question word inside a statement ("I'm not sure what.").
_SUBJECTS = frozenset(
    """
    i we they he she i'm you're we're they're it's that's he's she's there's i've
    you've we've they've i'll you'll we'll i'd you'd we'd
    """.split()  # noqa: SIM905
)
_WH = frozenset({"what", "which", "who", "how", "why", "when", "where", "whom"})
# "it is", "we are", "I am": a personal pronoun before a final copula makes the clause
# whole (an answer or an inversion), unlike "my name is", "this is", "here is".
_ELLIPSIS_SUBJECTS = frozenset("i you we they he she it that".split())  # noqa: SIM905
_COPULAS = frozenset("is are was were am".split())  # noqa: SIM905
# Enough of a verb to tell a clause from a bare noun phrase ("The references.").
_VERBISH = frozenset(
    """
    is are was were am be been being 's 're 'm have has had do does did can could will
    would shall should may might must need want like get got go went come came know
    think see saw say said make made take took give gave call called send sent pay paid
    live lives moved help work works arrived ordered bought broke keep keeps stop stopped
    cancel check book change please thank thanks let hold
    """.split()  # noqa: SIM905
)
_DETERMINERS = frozenset({"the", "my", "your", "our", "their", "his", "her", "a", "an", "this"})
_HOLD = re.compile(
    r"\b(let me (think|see|check|find|look)|hold on|hang on|one (moment|second|sec)"
    r"|just a (moment|second|sec)|give me a (moment|second|sec))\W*$",
    re.IGNORECASE,
)
DIGIT_WORDS = {
    "zero": 1,
    "oh": 1,
    "o": 1,
    "one": 1,
    "two": 1,
    "three": 1,
    "four": 1,
    "five": 1,
    "six": 1,
    "seven": 1,
    "eight": 1,
    "nine": 1,
}
_TEENS = frozenset(
    "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()  # noqa: SIM905
)
_TENS = frozenset("twenty thirty forty fifty sixty seventy eighty ninety".split())  # noqa: SIM905
_NUMBER_WORDS = frozenset(
    {*DIGIT_WORDS, *_TEENS, *_TENS, "hundred", "thousand", "double", "triple"}
)
_MONTHS = frozenset(
    """
    january february march april may june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec
    """.split()  # noqa: SIM905
)
_UNIT_WORDS = frozenset({"apartment", "apt", "suite", "unit", "flat", "floor", "room", "box"})
_TLDS = r"(com|org|net|edu|gov|io|co|uk|us|ca|de|fr|au|info|biz|me|ai|dev)"
_EMAIL_DONE = re.compile(rf"[\w.+-]+@[\w-]+(\.[\w-]+)*\.{_TLDS}\W*$", re.IGNORECASE)
_EMAIL_OPEN = re.compile(r"[\w.+-]+@[\w.-]*\W*$")
_SPOKEN_EMAIL_DONE = re.compile(rf"\b(dot|\.)\s*{_TLDS}\W*$", re.IGNORECASE)
_TRAILING_OFF = re.compile(r"(\.\.\.|…|[,;:\-–—])[\"'”’)\]]*$")
_QUESTION = re.compile(r"\?[\"'”’)\]]*$")
_FINAL = re.compile(r"[.!][\"'”’)\]]*$")
_WORD = re.compile(r"[\w'@.+-]*\w|\w")
_TOKEN = re.compile(r"[a-z']+|\d+")
_YEAR = re.compile(r"^(1[89]|20)\d\d$")


def words(text: str) -> list[str]:
    """Lower-case word tokens; digit runs kept whole ("447"), emails kept whole."""
    return [w.lower() for w in _WORD.findall(text)]


def count_digits(text: str) -> int:
    """How many digits ``text`` reads out: ``"447 two nine one, double five"`` → 8.

    Digit characters count one each; digit words one; "double"/"triple" repeat the
    next digit; a teen is two digits; a tens word two, or one when a unit follows
    ("twenty three" → 2); "hundred" adds two unless more follows ("one hundred" → 3,
    "one twenty three" → 3 as read out). Approximate by design: a reading of digits.
    """
    tokens = _TOKEN.findall(text.lower())
    n = 0
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok.isdigit():
            n += len(tok)
        elif tok in DIGIT_WORDS:
            n += 1
        elif tok == "double":
            n += 1  # the digit word that follows counts the other one
        elif tok == "triple" or tok in _TEENS:
            n += 2
        elif tok in _TENS:
            n += 1 if nxt in DIGIT_WORDS and nxt not in {"zero", "oh", "o"} else 2
        elif tok == "hundred":
            n += 2 if not (nxt in DIGIT_WORDS or nxt in _TENS or nxt in _TEENS) else 1
    return n


def ends_with_number(text: str) -> bool:
    """The transcript ends on a digit run or a number word (a number being read)."""
    toks = _TOKEN.findall(text.lower())
    return bool(toks) and (toks[-1].isdigit() or toks[-1] in _NUMBER_WORDS)


def _trailing_group_digits(toks: list[str]) -> int:
    """Digits in the run of number tokens at the end of ``toks``."""
    run: list[str] = []
    for tok in reversed(toks):
        if tok.isdigit() or tok in _NUMBER_WORDS:
            run.append(tok)
        else:
            break
    return count_digits(" ".join(reversed(run)))


def _gives_email(lowered: str) -> bool:
    """ "my email is jane…" / "my email addresses, T-Smith" (tiny.en's "address is"),
    with no domain ending yet (those returned earlier)."""
    m = re.search(r"\bemail(s| address(es)?| is|'s)\b", lowered)
    return m is not None and bool(re.search(r"\w", lowered[m.end() :]))


def _list_in_progress(text: str) -> bool:
    """Two or more commas between short items and no "and"/"or" in the last one:
    "eggs, milk, bread." is a list still being read out."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) < 3:
        return False
    items = [_TOKEN.findall(p.lower()) for p in parts[1:]]
    if any(not 1 <= len(i) <= 3 for i in items):
        return False
    return not ({"and", "or"} & set(items[-1]))


def _is_verbish(word: str) -> bool:
    return word in _VERBISH or word.endswith(("ed", "ing", "n't", "'s", "'re", "'ll", "'d"))


def syntax_estimate(text: str) -> Estimate | None:
    """The transcript's own opinion; ``None`` when there is nothing to read."""
    text = text.strip()
    if not text:
        return None
    if _EMAIL_DONE.search(text):
        return Estimate(0.85, "email complete")
    if _EMAIL_OPEN.search(text) and "@" in text:
        return Estimate(0.08, "email in progress")
    if _HOLD.search(text):
        return Estimate(0.08, "hold phrase")
    if _TRAILING_OFF.search(text):
        return Estimate(0.1, "trailing off")
    ws = words(text)
    if not ws:
        return None
    last = ws[-1].strip(".")
    prev = ws[-2].strip(".") if len(ws) > 1 else ""
    lowered = text.lower()
    if last in {"dot", "at"} or (last in {"underscore", "dash", "hyphen"}):
        return Estimate(0.05, "spelling in progress")
    if ("email" in lowered or " at " in f" {lowered} ") and " dot " in f" {lowered} ":
        if _SPOKEN_EMAIL_DONE.search(text):
            return Estimate(0.8, "spoken email complete")
        return Estimate(0.1, "spoken email in progress")
    if "email" in lowered and "@" not in lowered and " at " in f" {lowered} ":
        return Estimate(0.1, "spoken email in progress")
    if last in _CONTINUES and not (last in _COPULAS and prev in _ELLIPSIS_SUBJECTS):
        return Estimate(0.05, f"ends on {last!r}")
    if len(ws) == 1 and last in _OPENERS:
        return Estimate(0.1, "opener alone")
    if last in _OPENERS - {"okay", "ok", "right", "now", "actually"} and prev in {"and", "but"}:
        return Estimate(0.1, f"ends on {prev} {last}")
    if last in _WANTS_OBJECT and prev not in {"you", "it", "them", "that", "so", "as"}:
        return Estimate(0.15, f"{last!r} wants an object")
    if last in _TRANSITIVE and prev in {"to", "you", "i", "can", "could", "we", "they", "please"}:
        return Estimate(0.3, f"{last!r} usually takes an object")
    if last in _SUBJECTS or ws[-1].strip(".") in _SUBJECTS:
        return Estimate(0.1, f"ends on its subject {last!r}")
    if last in _WH and not _QUESTION.search(text) and len(ws) > 1:
        return Estimate(0.15, f"ends on {last!r} in a statement")
    if last in _UNIT_WORDS:
        return Estimate(0.1, f"{last!r} wants a number")
    if last in _MONTHS:
        return Estimate(0.2, "month with no day")
    toks = _TOKEN.findall(lowered)
    if toks and (toks[-1].isdigit() or toks[-1] in _NUMBER_WORDS):
        if _YEAR.match(toks[-1]) and any(t in _MONTHS for t in toks):
            return Estimate(0.8, "date with its year")
        if _trailing_group_digits(toks) >= 3:
            return Estimate(0.2, "number being read out")
        if _QUESTION.search(text):
            return Estimate(0.9, "question")
        return Estimate(0.45, "ends on a short number")
    if len(last) == 1 and last not in {"i", "a"} and last.isalpha():
        return Estimate(0.15, "spelled letter")
    if _list_in_progress(text):
        return Estimate(0.25, "list with no 'and' yet")
    if _gives_email(lowered):
        return Estimate(0.12, "email being given")
    bare = [w.strip(".,!?") for w in ws]
    if len(bare) <= 4 and bare[0] in _DETERMINERS and not any(_is_verbish(w) for w in bare):
        return Estimate(0.3, "a bare noun phrase")
    if _QUESTION.search(text):
        return Estimate(0.95, "question")
    if _FINAL.search(text):
        return Estimate(0.85, "final stop on a content word")
    return Estimate(0.55, "no final punctuation")

"""The first transcript-aware end of turn (a three-way rule) and the engine's policy.

:class:`EndpointPolicy` is what the engines hold: ``mode="transcript"`` is the rule
below (today's default), ``mode="model"`` the signal-combining
:class:`~parley.endpointing.model.EndOfTurn`, ``mode="acoustic"`` no change to the
TurnDetector's wait. The rule, as first measured:

Sans-I/O. The :class:`~parley.turns.TurnDetector` does the acoustic part (it
finds pauses); at the first short pause the engine transcribes speculatively and
asks :class:`EndpointPolicy` how much silence should end *this* turn:

- ``complete`` — the transcript ends a sentence (``.``, ``?``, ``!``) on a word
  that can end one: end the turn after ``complete_wait_ms`` of silence, or as
  soon as the transcript is in if that is later;
- ``incomplete`` — it trails off: ends with ``...``, a comma, dash or colon, or
  with a digit, a number word, a single spelled letter, a conjunction, a
  preposition, an article, a possessive, a copula or a filler ("my number is",
  "five five five", "and", "um"): wait ``incomplete_wait_ms`` instead;
- ``unsure`` — no final punctuation on a content word (Whisper drops the final
  stop on about a third of finished utterances): keep the acoustic wait.

Until the transcript is in, the acoustic wait (``TurnConfig.end_of_turn_silence_ms``)
applies, so a slow STT never delays a turn beyond the acoustic-only behaviour.

The word lists are general English function words, written down before looking
at the tuning data, not fitted to it. Why rules and not a model: the decision must
take well under a millisecond on the event loop, and a text end-of-utterance
model (e.g. LiveKit's turn detector) would add a second inference on the same
2 cores Whisper already saturates.

Measured with ``bench/endpointing.py`` (Whisper tiny.en in the loop; each
transcript arrives after its own measured STT time; 72 pause utterances — phone
numbers, addresses, lists, pauses 300–900 ms — and 40 plain sentences; held-out
half of the scripts; two runs on a shared 2-core box, STT p50 438 / 346 ms)::

    (run 1 , run 2)               false cut-offs  delay p50: sentences   pause utts
    acoustic 640 (old default)     0.67 , 0.64        700 , 706 ms      698 , 706 ms
    acoustic 928                   0    , 0           988 , 994 ms      986 , 993 ms
    transcript (defaults below)    0.56 , 0.44        516 , 514 ms      698 , 988 ms

Pauses cut by length (run 2, 600-700 / 700-800 / 800-900 ms): acoustic 640
0.23 / 0.94 / 1.00, transcript 0.19 / 0.56 / 0.44.

Defaults: speculative silence 160 ms, complete 384 ms, incomplete 960 ms, unsure
= the acoustic 640 ms. 256 vs 384 ms never differed (the transcript's arrival,
not the wait, ends the turn); 960 always cut fewer than 832; speculative 96 vs
160 ms and a 928 ms wait before the transcript swapped places between runs
(within STT-timing noise), so the simpler setting stays.

The trade-off: finished sentences end ~190 ms sooner (speculative silence +
STT is now the wait), utterances trailing off on a number or a function word
are cut less often (0.64 → 0.44), but the end of an utterance that *ends* on a
number now waits ~960 ms, and a pause after a word that can end a sentence
("I need eggs." … "milk") is cut as soon as the transcript is in (one held-out
pause under 600 ms was cut in run 2, none before). A transcript slower than the
acoustic wait leaves the acoustic behaviour. For dictation-heavy flows keep
``TurnConfig(end_of_turn_silence_ms=928)`` and ``unsure_wait_ms=640``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from parley.endpointing.model import (
    Decision,
    EndOfTurn,
    EndOfTurnConfig,
    EndOfTurnInput,
)
from parley.errors import ConfigError

__all__ = [
    "Completeness",
    "EndpointConfig",
    "EndpointPolicy",
    "judge",
]

Completeness: TypeAlias = Literal["complete", "incomplete", "unsure"]

# Words after which an English sentence almost never ends.
_CONTINUES = frozenset(
    """
    and or but nor because if than then which whose where while although though unless
    until
    is are was were am be been being isn't aren't wasn't weren't 's 're 'm
    to of in on at for from with by about into onto under between through via per
    the a an my your our their his her its
    um uh er erm hmm mm
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
# Openers that end a sentence in "I think so." but not when they are all there is.
_OPENERS = frozenset({"so", "well", "like", "okay", "ok", "right", "now", "and"})
_NUMBERS = frozenset(
    """
    zero oh one two three four five six seven eight nine ten eleven twelve thirteen
    fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty
    sixty seventy eighty ninety hundred thousand million billion double triple
    """.split()  # noqa: SIM905
)
_TRAILING_OFF = re.compile(r"(\.\.\.|…|[,;:\-–—])[\"'”’)\]]*$")
_FINAL = re.compile(r"[.?!][\"'”’)\]]*$")
_WORD = re.compile(r"[\w']+")


def judge(text: str) -> Completeness:
    """Whether ``text`` (a transcript so far) sounds like a finished turn."""
    text = text.strip()
    if not text:
        return "unsure"
    if _TRAILING_OFF.search(text):
        return "incomplete"
    words = _WORD.findall(text)
    if not words:
        return "unsure"
    last = words[-1].lower()
    if any(c.isdigit() for c in last) or last in _NUMBERS or last in _CONTINUES:
        return "incomplete"
    if len(last) == 1 and last not in {"i"}:  # a spelled letter: "X", "B"
        return "incomplete"
    if len(words) == 1 and last in _OPENERS:
        return "incomplete"
    return "complete" if _FINAL.search(text) else "unsure"


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """How the transcript at the first pause changes the end-of-turn silence (ms).

    ``mode="acoustic"`` ignores transcripts (the TurnDetector's wait only);
    ``"transcript"`` is the three-way rule (:func:`judge`) with the waits below;
    ``"model"`` is :class:`~parley.endpointing.model.EndOfTurn` with ``model``'s curve.
    ``unsure_wait_ms=None`` keeps the acoustic ``end_of_turn_silence_ms``.
    """

    mode: Literal["acoustic", "transcript", "model"] = "transcript"
    complete_wait_ms: float = 384.0  # 256 and 384 measured the same; 384 is safer
    incomplete_wait_ms: float = 960.0
    unsure_wait_ms: float | None = None
    model: EndOfTurnConfig = field(default_factory=EndOfTurnConfig)

    def __post_init__(self) -> None:
        if self.mode not in ("acoustic", "transcript", "model"):
            raise ConfigError("must be 'acoustic', 'transcript' or 'model'", field="mode")
        for name in ("complete_wait_ms", "incomplete_wait_ms"):
            if not getattr(self, name) > 0.0:  # also rejects NaN
                raise ConfigError("must be > 0", field=name)
        if self.unsure_wait_ms is not None and not self.unsure_wait_ms > 0.0:
            raise ConfigError("must be > 0 or None", field="unsure_wait_ms")
        if not self.complete_wait_ms <= self.incomplete_wait_ms:
            raise ConfigError("must be ≤ incomplete_wait_ms", field="complete_wait_ms")


class EndpointPolicy:
    """Maps a speculative transcript to the silence that should end the turn."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.model = EndOfTurn(config.model)

    @property
    def enabled(self) -> bool:
        return self.config.mode != "acoustic"

    def wait_ms(self, text: str) -> tuple[Completeness, float | None]:
        """The judgement and the wait in ms (``None``: keep the acoustic wait)."""
        if self.config.mode == "model":
            decision = self.model.decide(EndOfTurnInput(text))
            return decision.verdict, decision.wait_ms
        verdict = judge(text)
        if not self.enabled:
            return verdict, None
        if verdict == "complete":
            return verdict, self.config.complete_wait_ms
        if verdict == "incomplete":
            return verdict, self.config.incomplete_wait_ms
        return verdict, self.config.unsure_wait_ms

    def decide(self, inp: EndOfTurnInput) -> Decision | None:
        """The full seam (dialogue context, phase, audio): the model's decision in
        ``mode="model"`` or when a flow phase sets a policy (``inp.phase``: only the
        model can wait for a phone number's digits); otherwise the rule's wait on the
        transcript alone (``None``: keep the acoustic wait)."""
        if self.config.mode == "model" or inp.phase is not None:
            return self.model.decide(inp)
        verdict, wait = self.wait_ms(inp.transcript)
        if wait is None:
            return None
        p = {"complete": 0.9, "incomplete": 0.1, "unsure": 0.5}[verdict]
        return Decision(wait, verdict, p)

"""End of turn: has the caller finished, and how long should the silence last?

The :class:`~parley.turns.TurnDetector` finds pauses; at the first short pause the
engine transcribes speculatively and asks the policy how much silence should end
*this* turn. One module per part:

- :mod:`~parley.endpointing.syntax` — does the transcript read finished;
- :mod:`~parley.endpointing.context` — is it a finished answer to what the agent asked;
- :mod:`~parley.endpointing.estimate` — a signal's opinion and how opinions combine;
- :mod:`~parley.endpointing.model` — :class:`EndOfTurn`: signals in, a wait out; the
  ``semantic_vad`` eagerness curves; a flow phase's :class:`PhasePolicy`;
- :mod:`~parley.endpointing.rule` — the first three-way rule (:func:`judge`) and
  :class:`EndpointPolicy`, which the engines hold (``mode`` picks rule or model).

Measured on the held-out half of the turn-taking corpus (``bench/turns.py``, Whisper
in the loop, Twilio-faithful audio): see that bench's docstring and the README.
"""

from parley.endpointing.context import Expectation, context_estimate, expectation_from
from parley.endpointing.estimate import Estimate, combine
from parley.endpointing.model import (
    EAGERNESS,
    Decision,
    Eagerness,
    EndOfTurn,
    EndOfTurnConfig,
    EndOfTurnInput,
    PhasePolicy,
    Verdict,
    eagerness_config,
)
from parley.endpointing.rule import Completeness, EndpointConfig, EndpointPolicy, judge
from parley.endpointing.syntax import count_digits, syntax_estimate

__all__ = [
    "EAGERNESS",
    "Completeness",
    "Decision",
    "Eagerness",
    "EndOfTurn",
    "EndOfTurnConfig",
    "EndOfTurnInput",
    "EndpointConfig",
    "EndpointPolicy",
    "Estimate",
    "Expectation",
    "PhasePolicy",
    "Verdict",
    "combine",
    "context_estimate",
    "count_digits",
    "eagerness_config",
    "expectation_from",
    "judge",
    "syntax_estimate",
]

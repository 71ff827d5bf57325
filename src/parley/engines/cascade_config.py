"""The settings of one cascade engine (:class:`~parley.engines.cascade.CascadeEngine`),
in a module of their own so the engine's module stays its behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field

from parley.bargein import BargeInConfig
from parley.endpointing import EndpointConfig
from parley.turns import TurnConfig

__all__ = ["DEFAULT_APOLOGY", "DEFAULT_INPUT_QUEUE", "CascadeConfig"]

DEFAULT_APOLOGY = "Sorry, something went wrong on my side. Could you say that again?"


#: Caller audio chunks a cascade holds before dropping newer ones (≈ 4 s of 20 ms).
DEFAULT_INPUT_QUEUE = 200


@dataclass(frozen=True, slots=True)
class CascadeConfig:
    """Settings of one cascade engine (one call)."""

    instructions: str = ""
    turn: TurnConfig = field(default_factory=TurnConfig)
    speculative_stt: bool = True  # transcribe at the first short silence
    # What the speculative transcript does to the end-of-turn wait (needs speculative_stt).
    endpointing: EndpointConfig = field(default_factory=EndpointConfig)
    # Backchannel-aware barge-in (parley.bargein); None stops a reply at any speech.
    barge_in: BargeInConfig | None = None
    # The first clause may be this short ("You said:"), so audio starts after a few
    # words; later clauses are whole sentences (see parley.providers.sentences).
    first_clause_chars: int = 8
    max_tool_rounds: int = 4  # LLM → tools → LLM rounds before giving up on text
    max_history: int = 200  # messages kept (oldest dropped first)
    input_queue_chunks: int = DEFAULT_INPUT_QUEUE  # beyond that, caller audio is dropped
    event_queue_size: int = 256
    clause_queue_size: int = 16
    # Spoken when a provider or a text hook fails in a turn; "" says nothing (the
    # ErrorEvent and the failed ResponseDone still come).
    apology_text: str = DEFAULT_APOLOGY

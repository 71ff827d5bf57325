"""The per-call state machine: one enum and one transition table.

    LISTENING ──speech──▶ USER_SPEAKING ──end of turn──▶ THINKING ──audio──▶ SPEAKING
        ▲                                                   │                   │
        └──────────── reply done / nothing to say ◀─────────┴───────────────────┘
    SPEAKING/THINKING ──barge-in──▶ INTERRUPTED ──▶ USER_SPEAKING
    any ──▶ ENDED (final)

An illegal transition is our bug, so it raises ``LocalProtocolError``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from parley.errors import LocalProtocolError

__all__ = ["TRANSITIONS", "ConversationState", "StateMachine"]


class ConversationState(StrEnum):
    LISTENING = "listening"
    USER_SPEAKING = "user_speaking"
    THINKING = "thinking"
    SPEAKING = "speaking"
    INTERRUPTED = "interrupted"
    ENDED = "ended"


_S = ConversationState

TRANSITIONS: Final[dict[ConversationState, frozenset[ConversationState]]] = {
    # THINKING from LISTENING: a typed message; INTERRUPTED from LISTENING: barge-in
    # on audio still playing after the reply was fully generated.
    _S.LISTENING: frozenset({_S.USER_SPEAKING, _S.THINKING, _S.INTERRUPTED, _S.ENDED}),
    # LISTENING from USER_SPEAKING: the transcript came back empty (a noise).
    _S.USER_SPEAKING: frozenset({_S.THINKING, _S.LISTENING, _S.ENDED}),
    _S.THINKING: frozenset({_S.SPEAKING, _S.LISTENING, _S.USER_SPEAKING, _S.INTERRUPTED, _S.ENDED}),
    _S.SPEAKING: frozenset({_S.LISTENING, _S.INTERRUPTED, _S.USER_SPEAKING, _S.ENDED}),
    _S.INTERRUPTED: frozenset({_S.USER_SPEAKING, _S.LISTENING, _S.THINKING, _S.ENDED}),
    _S.ENDED: frozenset(),
}


class StateMachine:
    """Holds the current state; ``to()`` moves it along the table or raises."""

    __slots__ = ("_state",)

    def __init__(self, initial: ConversationState = ConversationState.LISTENING) -> None:
        self._state = initial

    @property
    def state(self) -> ConversationState:
        return self._state

    def can(self, target: ConversationState) -> bool:
        return target is self._state or target in TRANSITIONS[self._state]

    def to(self, target: ConversationState) -> bool:
        """Move to ``target``; False if already there, raises if the table forbids it."""
        if target is self._state:
            return False
        if target not in TRANSITIONS[self._state]:
            raise LocalProtocolError(
                f"conversation cannot go from {self._state.value} to {target.value}",
                code="illegal_transition",
            )
        self._state = target
        return True

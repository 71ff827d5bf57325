"""The transcript of one conversation: who said what, when, and whether it was cut."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from parley.events import Role

__all__ = ["Transcript", "Turn"]


@dataclass(slots=True)
class Turn:
    """One turn. ``text`` of an interrupted assistant turn is what the caller heard.

    Times are wall-clock seconds (``time.time()``); ``ended_at`` is None while open.
    """

    role: Role
    text: str
    started_at: float
    ended_at: float | None = None
    interrupted: bool = False
    response_id: str = ""
    failed: bool = False  # a reply that failed (a provider error); its text is the apology


class Transcript:
    """Ordered turns of a conversation."""

    __slots__ = ("_turns",)

    def __init__(self) -> None:
        self._turns: list[Turn] = []

    def __iter__(self) -> Iterator[Turn]:
        return iter(self._turns)

    def __len__(self) -> int:
        return len(self._turns)

    def __getitem__(self, index: int) -> Turn:
        return self._turns[index]

    @property
    def turns(self) -> list[Turn]:
        return list(self._turns)

    def open(self, role: Role, started_at: float, *, response_id: str = "") -> Turn:
        turn = Turn(role, "", started_at, response_id=response_id)
        self._turns.append(turn)
        return turn

    def last(self, role: Role) -> Turn | None:
        for turn in reversed(self._turns):
            if turn.role is role:
                return turn
        return None

    def find(self, response_id: str) -> Turn | None:
        for turn in reversed(self._turns):
            if turn.response_id == response_id:
                return turn
        return None

    def drop_empty(self, turn: Turn) -> None:
        """Remove ``turn`` if it holds no text (a noise that was not speech)."""
        if not turn.text and turn in self._turns:
            self._turns.remove(turn)

    def as_text(self) -> str:
        return "\n".join(f"{t.role.value}: {t.text}" for t in self._turns if t.text)

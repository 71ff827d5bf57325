"""Prices as dated data: each name has a history of rows, the one in force on a day wins.

A price changes on a known day (OpenAI cut ``gpt-4o-realtime-preview`` audio from
$100 to $40 per 1M input tokens when the 2024-12-17 snapshot became the alias), so a
row says from when it applies and where the figure comes from. ``at(name, on)`` is
the row in force on ``on``: the newest whose ``effective`` is not after it. A dated
snapshot name (``gpt-realtime-2025-08-28``) falls back to its base model's history
unless the snapshot has rows of its own. A name with no row in force is ``None``:
better no figure than a wrong one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Generic, TypeVar

__all__ = ["Dated", "PriceTable", "today"]

P = TypeVar("P")

_SNAPSHOT = re.compile(r"^(?P<base>.+)-\d{4}-\d{2}-\d{2}$")


def today() -> date:
    """The UTC date: the day a live call is priced on."""
    return datetime.now(UTC).date()


@dataclass(frozen=True, slots=True)
class Dated(Generic[P]):
    """``prices`` apply from ``effective`` on (UTC dates), as ``source`` says.

    ``effective`` is the day the source gives for the price (a launch or a price
    change); where the source gives none, the day the source was read, and ``source``
    says so ("listed on …").
    """

    prices: P
    effective: date
    source: str


class PriceTable(Generic[P]):
    """Name (model, line) → its price history, oldest first. Immutable."""

    __slots__ = ("_rows",)

    def __init__(self, rows: Mapping[str, Iterable[Dated[P]]]) -> None:
        self._rows: dict[str, tuple[Dated[P], ...]] = {
            name: tuple(sorted(history, key=lambda r: r.effective))
            for name, history in rows.items()
        }
        for name, history in self._rows.items():
            if not history:
                raise ValueError(f"price table row {name!r} has no prices")

    def __contains__(self, name: object) -> bool:
        return name in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._rows)

    def history(self, name: str) -> tuple[Dated[P], ...]:
        """Every row of ``name`` (or of its base model for a dated snapshot), oldest first."""
        found = self._rows.get(name)
        if found is None:
            m = _SNAPSHOT.match(name)
            found = self._rows.get(m.group("base")) if m else None
        return found or ()

    def row(self, name: str, on: date | None = None) -> Dated[P] | None:
        """The row of ``name`` in force on ``on`` (default: today, UTC)."""
        day = on or today()
        current: Dated[P] | None = None
        for r in self.history(name):
            if r.effective <= day:
                current = r
            else:
                break
        return current

    def at(self, name: str, on: date | None = None) -> P | None:
        """The prices of ``name`` in force on ``on`` (default: today, UTC), else ``None``."""
        r = self.row(name, on)
        return r.prices if r is not None else None

    def latest(self, name: str) -> P | None:
        """The newest prices of ``name`` whatever their date."""
        history = self.history(name)
        return history[-1].prices if history else None

    def with_row(self, name: str, row: Dated[P]) -> PriceTable[P]:
        """A copy with one more dated row for ``name`` (a price change, a new model)."""
        rows: dict[str, Sequence[Dated[P]]] = dict(self._rows)
        rows[name] = (*self._rows.get(name, ()), row)
        return PriceTable(rows)

    def override(self, name: str, prices: P, source: str = "override") -> PriceTable[P]:
        """A copy where ``name`` costs ``prices`` on every day (a negotiated rate
        replaces the list price and its history)."""
        rows: dict[str, Sequence[Dated[P]]] = dict(self._rows)
        rows[name] = (Dated(prices, date.min, source),)
        return PriceTable(rows)

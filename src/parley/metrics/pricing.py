"""Realtime API prices (USD per 1M tokens) as dated data, and the cost of a usage block.

The table is protocols.md §1.9; prices change per snapshot and over time, so they
live in :data:`REALTIME` — model → rows with the day each price took effect and
its source — not in code paths. :data:`PRICES` is the newest row of each model. A
dated snapshot name (``gpt-realtime-2025-08-28``) falls back to its base model
unless the snapshot has its own row (``gpt-4o-realtime-preview-2024-10-01`` does:
it kept its launch price after the alias moved to the cheaper 2024-12-17 snapshot).

Cost formula (protocols.md §1.8): cached tokens are a subset of input tokens, so
each modality is billed ``(input - cached) × in + cached × cached_price``, plus
output tokens × output price.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType

from parley.errors import ConfigError
from parley.events import Usage
from parley.metrics.table import Dated, PriceTable

__all__ = ["PRICES", "REALTIME", "ModelPrices", "cost_usd", "prices_for"]


@dataclass(frozen=True, slots=True)
class ModelPrices:
    """USD per 1M tokens. ``None`` for an image price the reference does not give."""

    text_in: float
    text_cached: float
    text_out: float
    audio_in: float
    audio_cached: float
    audio_out: float
    image_in: float | None = None
    image_cached: float | None = None


_GPT_4O_PREVIEW = ModelPrices(5.00, 2.50, 20.00, 40.00, 2.50, 80.00)
_GPT_4O_PREVIEW_LAUNCH = ModelPrices(5.00, 2.50, 20.00, 100.00, 20.00, 200.00)
_GPT_4O_MINI_PREVIEW = ModelPrices(0.60, 0.30, 2.40, 10.00, 0.30, 20.00)
_GPT_REALTIME = ModelPrices(4.00, 0.40, 16.00, 32.00, 0.40, 64.00, 5.00, 0.50)
_GPT_REALTIME_1_5 = ModelPrices(4.00, 0.40, 16.00, 32.00, 0.40, 64.00)
_GPT_REALTIME_2 = ModelPrices(4.00, 0.40, 24.00, 32.00, 0.40, 64.00)
_GPT_REALTIME_2_1_MINI = ModelPrices(0.60, 0.06, 2.40, 10.00, 0.30, 20.00)

_MODELS = "developers.openai.com/api/docs/models/"
_LAUNCH = "launch 2024-10-01, openai.com/index/introducing-the-realtime-api"
_DEC_2024 = (
    "2024-12-17 snapshot and price cut (cached audio $2.50): openai.com/index/"
    "o1-and-new-tools-for-developers; " + _MODELS + "gpt-4o-realtime-preview"
)
_LISTED = "listed on protocols.md §1.9 (July 2026; the page gives no launch date): " + _MODELS


def _rows(*rows: tuple[ModelPrices, date, str]) -> tuple[Dated[ModelPrices], ...]:
    return tuple(Dated(p, d, s) for p, d, s in rows)


_PREVIEW_HISTORY = _rows(
    (_GPT_4O_PREVIEW_LAUNCH, date(2024, 10, 1), _LAUNCH),
    (_GPT_4O_PREVIEW, date(2024, 12, 17), _DEC_2024),
)

#: Model (or snapshot) → dated prices, oldest first; protocols.md §1.9 with its sources.
REALTIME: PriceTable[ModelPrices] = PriceTable(
    {
        "gpt-realtime": _rows(
            (_GPT_REALTIME, date(2025, 8, 28), _MODELS + "gpt-realtime (GA, 2025-08-28)")
        ),
        "gpt-realtime-2025-08-28": _rows(
            (_GPT_REALTIME, date(2025, 8, 28), _MODELS + "gpt-realtime")
        ),
        "gpt-realtime-1.5": _rows(
            (_GPT_REALTIME_1_5, date(2026, 7, 1), _LISTED + "gpt-realtime-1.5")
        ),
        "gpt-realtime-2": _rows((_GPT_REALTIME_2, date(2026, 7, 1), _LISTED + "gpt-realtime-2")),
        "gpt-realtime-2.1-mini": _rows(
            (_GPT_REALTIME_2_1_MINI, date(2026, 7, 1), _LISTED + "gpt-realtime-2.1-mini")
        ),
        # The alias followed the default snapshot: launch prices, then the Dec 2024 cut.
        "gpt-4o-realtime-preview": _PREVIEW_HISTORY,
        "gpt-4o-realtime-preview-2024-12-17": _PREVIEW_HISTORY[1:],
        "gpt-4o-realtime-preview-2025-06-03": _rows(
            (_GPT_4O_PREVIEW, date(2025, 6, 3), _MODELS + "gpt-4o-realtime-preview")
        ),
        "gpt-4o-realtime-preview-2024-10-01": _PREVIEW_HISTORY[:1],
        "gpt-4o-mini-realtime-preview": _rows(
            (_GPT_4O_MINI_PREVIEW, date(2024, 12, 17), _MODELS + "gpt-4o-mini-realtime-preview")
        ),
        "gpt-4o-mini-realtime-preview-2024-12-17": _rows(
            (_GPT_4O_MINI_PREVIEW, date(2024, 12, 17), _MODELS + "gpt-4o-mini-realtime-preview")
        ),
    }
)

#: Model (or snapshot) → its newest prices (the live view of :data:`REALTIME`).
PRICES: Mapping[str, ModelPrices] = MappingProxyType(
    {name: REALTIME.history(name)[-1].prices for name in REALTIME.names}
)

_SNAPSHOT = re.compile(r"^(?P<base>.+)-\d{4}-\d{2}-\d{2}$")


def prices_for(model: str, table: Mapping[str, ModelPrices] = PRICES) -> ModelPrices | None:
    """The newest prices of ``model``: its own row, else its base model's for a dated
    snapshot, else ``None`` (unknown: better no figure than a wrong one). For the
    price in force on a given day use ``REALTIME.at(model, on)``."""
    found = table.get(model)
    if found is not None:
        return found
    m = _SNAPSHOT.match(model)
    return table.get(m.group("base")) if m else None


def cost_usd(usage: Usage, prices: ModelPrices) -> float:
    """The USD cost of one usage block (or a sum of them: the formula is linear).

    Raises ``ConfigError`` if the block has image tokens and the model has no image price.
    """
    image = 0.0
    if usage.input_image_tokens:
        if prices.image_in is None or prices.image_cached is None:
            raise ConfigError("no image-token price for this model", field="pricing")
        image = (
            usage.input_image_tokens - usage.cached_image_tokens
        ) * prices.image_in + usage.cached_image_tokens * prices.image_cached
    per_million = (
        (usage.input_text_tokens - usage.cached_text_tokens) * prices.text_in
        + usage.cached_text_tokens * prices.text_cached
        + (usage.input_audio_tokens - usage.cached_audio_tokens) * prices.audio_in
        + usage.cached_audio_tokens * prices.audio_cached
        + image
        + usage.output_text_tokens * prices.text_out
        + usage.output_audio_tokens * prices.audio_out
    )
    return per_million / 1_000_000

"""``DictConfigurationProvider``: the document's sections as a dict (for tests)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parley.realtime_conversation.adapters.config.settings import SectionedConfiguration

__all__ = ["DictConfigurationProvider"]


class DictConfigurationProvider(SectionedConfiguration):
    """Checks ``config`` at once (keys in :mod:`.settings`)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config, "a dict")

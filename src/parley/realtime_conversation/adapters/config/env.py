"""``EnvConfigurationProvider``: the document's environment variables.

``{prefix}{SECTION}_{KEY}`` in upper case, for example ``CONV_STT_ENGINE_MODEL_SIZE``,
``CONV_PAUSE_DETECTION_AGGRESSIVENESS`` (sections and keys in :mod:`.settings`;
values are converted to the key's type). A variable with the prefix that names no
setting is refused with the variables that exist: a typo must not be ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from parley.errors import ConfigError
from parley.realtime_conversation.adapters.config.settings import SECTIONS, SectionedConfiguration

__all__ = ["EnvConfigurationProvider"]


def _variables(prefix: str) -> list[str]:
    return [
        f"{prefix}{section}_{key}".upper()
        for section, model in SECTIONS.items()
        for key in model.model_fields
    ]


def _sections(environ: Mapping[str, str], prefix: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    # Longest section first, so a section whose name starts another's cannot steal it.
    order = sorted(SECTIONS, key=len, reverse=True)
    for name, value in environ.items():
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix) :].lower()
        section = next((s for s in order if rest.startswith(f"{s}_")), None)
        key = rest[len(section) + 1 :] if section is not None else ""
        if section is None or key not in SECTIONS[section].model_fields:
            raise ConfigError(
                f"{name} is not a setting (known: {', '.join(_variables(prefix))})",
                field=name,
            )
        found.setdefault(section, {})[key] = value
    return found


class EnvConfigurationProvider(SectionedConfiguration):
    """Reads and checks the ``prefix`` variables of ``environ`` (default ``os.environ``)."""

    def __init__(self, prefix: str = "CONV_", *, environ: Mapping[str, str] | None = None) -> None:
        if not prefix:
            raise ConfigError("needs a prefix (such as 'CONV_')", field="prefix")
        self.prefix = prefix
        env = os.environ if environ is None else environ
        super().__init__(_sections(env, prefix), f"the {prefix}* environment variables")

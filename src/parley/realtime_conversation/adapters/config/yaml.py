"""``YAMLConfigurationProvider``: the document's YAML file (keys in
:mod:`.settings`)."""

from __future__ import annotations

from pathlib import Path

import yaml

from parley.errors import ConfigError
from parley.realtime_conversation.adapters.config.settings import SectionedConfiguration

__all__ = ["YAMLConfigurationProvider"]


class YAMLConfigurationProvider(SectionedConfiguration):
    """Reads and checks ``path`` at once (a missing file or a bad key is a ``ConfigError``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc}", field="config") from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{self.path} is not valid YAML: {exc}", field="config") from exc
        super().__init__(data, str(self.path))

"""``python -m parley.server``: serve with the settings from the environment / PARLEY_CONFIG."""

from __future__ import annotations

from parley.app import Parley
from parley.config import load_settings


def main() -> None:
    settings = load_settings()
    if settings.workers > 1:
        from parley.server.run import DEFAULT_APP_FACTORY

        Parley(settings=settings).run(app_import=DEFAULT_APP_FACTORY)
    else:
        Parley(settings=settings).run()


if __name__ == "__main__":
    main()

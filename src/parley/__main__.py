"""``python -m parley``: the same as the ``parley`` command."""

from __future__ import annotations

from parley.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    main()

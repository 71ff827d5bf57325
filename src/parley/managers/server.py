"""``HOST`` and ``PORT``: where the user's app is served (the document's ``server.py``)."""

from __future__ import annotations

import os
from typing import Any

from parley.errors import ConfigError

__all__ = ["listen_address", "run"]


def listen_address() -> tuple[str, int]:
    """``($HOST, $PORT)``; unset: 127.0.0.1 and 8000 (``HOST=0.0.0.0`` listens on
    every interface, as the document's example sets it)."""
    host = os.environ.get("HOST", "").strip() or "127.0.0.1"
    raw = os.environ.get("PORT", "").strip() or "8000"
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ConfigError(f"PORT must be a port number (0-65535), not {raw!r}", field="PORT")
    return host, port


def run(app: Any, **options: Any) -> None:
    """Serve the ASGI ``app`` with uvicorn on :func:`listen_address` until stopped."""
    import uvicorn

    host, port = listen_address()
    uvicorn.run(app, host=host, port=port, **options)

"""``POST /conversations`` from Python: create a conversation on a Parley server.

The standard library's ``urllib`` is enough for one JSON request, so this needs no
HTTP client package (the examples of seed 002 run with Parley's base install).
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Mapping
from typing import Any

__all__ = ["create_conversation"]


def create_conversation(
    body: Mapping[str, Any],
    server: str = "http://127.0.0.1:8000",
    *,
    api_key: str | None = None,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """``POST {server}/conversations`` with ``body``: the server's answer
    (``session_id``, ``realtime_url``, …). ``api_key`` (default ``PARLEY_API_KEY``) is
    sent as a bearer token, for a server with authentication on; an HTTP error raises
    :class:`urllib.error.HTTPError` with the server's JSON reason as its body."""
    headers = {"Content-Type": "application/json"}
    key = api_key or os.environ.get("PARLEY_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(
        f"{server.rstrip('/')}/conversations",
        data=json.dumps(body).encode(),
        headers=headers,
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as answer:
        created: dict[str, Any] = json.load(answer)
    return created

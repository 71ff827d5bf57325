"""Public URLs: from ``settings.public_url`` behind a proxy, else from the request."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from parley.config import ParleySettings

__all__ = ["http_base", "request_url", "ws_base"]


def http_base(conn: HTTPConnection, settings: ParleySettings) -> str:
    """``https://host`` (no trailing slash) that clients reach this server at."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    scheme = "https" if conn.url.scheme in ("https", "wss") else "http"
    host = conn.headers.get("host") or conn.url.netloc
    return f"{scheme}://{host}"


def ws_base(conn: HTTPConnection, settings: ParleySettings) -> str:
    base = http_base(conn, settings)
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :]
    return "ws://" + base[len("http://") :] if base.startswith("http://") else base


def request_url(conn: HTTPConnection, settings: ParleySettings) -> str:
    """The full URL as the client requested it (what Twilio signs)."""
    url = http_base(conn, settings) + conn.url.path
    return f"{url}?{conn.url.query}" if conn.url.query else url

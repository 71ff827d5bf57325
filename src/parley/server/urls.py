"""Public URLs: from ``settings.public_url`` behind a proxy, else the address the
connection reached (the socket's, from the ASGI scope) — never the ``Host:`` header,
which the client chooses: a URL we hand out (``websocket_url``, TwiML's
``<Stream url>``) must not point wherever a request said."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from parley.config import ParleySettings

__all__ = ["http_base", "request_url", "ws_base"]


def http_base(conn: HTTPConnection, settings: ParleySettings) -> str:
    """``https://host`` (no trailing slash) that clients reach this server at."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    scheme = "https" if conn.url.scheme in ("https", "wss") else "http"
    server = conn.scope.get("server")
    if server is None:  # no socket address (an in-process test client)
        return f"{scheme}://{settings.host}:{settings.port}"
    host, port = server[0], server[1]
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}" if port is not None else f"{scheme}://{host}"


def ws_base(conn: HTTPConnection, settings: ParleySettings) -> str:
    base = http_base(conn, settings)
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :]
    return "ws://" + base[len("http://") :] if base.startswith("http://") else base


def request_url(conn: HTTPConnection, settings: ParleySettings) -> str:
    """The full URL as the client requested it (what Twilio signs). Here the
    ``Host:`` header is right: it is only compared with an HMAC that it cannot forge."""
    if settings.public_url:
        base = settings.public_url.rstrip("/")
    else:
        scheme = "https" if conn.url.scheme in ("https", "wss") else "http"
        base = f"{scheme}://{conn.headers.get('host') or conn.url.netloc}"
    url = base + conn.url.path
    return f"{url}?{conn.url.query}" if conn.url.query else url

"""Input bounds of the HTTP side: what any byte sequence a client sends gets back.

- :class:`BodyLimit` — an ASGI middleware refusing a request body over the limit
  with 413, from its ``Content-Length`` before reading, or as soon as a streamed
  (chunked) body passes it: memory per request is bounded whatever the route.
- :func:`install_error_handlers` — 422s that name the field and the problem but
  never echo the input (a 5 MB prompt is not sent back), JSON rendered as ASCII (a
  lone surrogate in a key or a path cannot break the response), and a last handler
  that answers an unexpected error with a typed 500 without the traceback (logged).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, Final

from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "BodyLimit",
    "BodyTooLarge",
    "SafeJSONResponse",
    "install_error_handlers",
    "safe_errors",
    "unicode_text",
]

log = logging.getLogger("parley.server")

_MAX_MSG: Final = 300
_MAX_LOC: Final = 100
_MAX_ERRORS: Final = 20


class SafeJSONResponse(JSONResponse):
    """JSON as ASCII: every string renders, lone surrogates included."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


class BodyTooLarge(HTTPException):
    """An HTTPException, so FastAPI's body parsing lets it through as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=f"request body larger than {limit} bytes")


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await _drain(receive, _DRAIN_BYTES)
                await _too_large(send, limit)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)


#: A refused body is read and dropped up to this much, so that the client, still
#: sending, reads the 413 instead of a reset connection; past it, the connection closes.
_DRAIN_BYTES: Final = 64 * 1024 * 1024


async def _drain(receive: Receive, budget: int) -> None:
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def unicode_text(value: str) -> str:
    """A pydantic validator: ``value`` must be encodable as UTF-8 (JSON's ``\\ud800``
    escapes decode to lone surrogates, which no store, log or response can hold)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text with a lone surrogate (not valid Unicode)") from None
    return value


def _clip(value: object, n: int) -> str | int:
    if isinstance(value, int):
        return value
    text = str(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def safe_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Validation errors without their input: location, message, type — clipped."""
    out: list[dict[str, Any]] = []
    for e in list(errors)[:_MAX_ERRORS]:
        if not isinstance(e, dict):
            out.append({"loc": [], "msg": _clip(e, _MAX_MSG), "type": "value_error"})
            continue
        out.append(
            {
                "loc": [_clip(p, _MAX_LOC) for p in e.get("loc", ())][:10],
                "msg": _clip(e.get("msg", ""), _MAX_MSG),
                "type": _clip(e.get("type", "value_error"), _MAX_LOC),
            }
        )
    return out


def install_error_handlers(api: FastAPI) -> None:
    async def invalid(_request: Request, exc: Exception) -> SafeJSONResponse:
        assert isinstance(exc, RequestValidationError)
        return SafeJSONResponse({"detail": safe_errors(exc.errors())}, status_code=422)

    async def http_error(_request: Request, exc: Exception) -> SafeJSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail: Any = exc.detail
        if isinstance(detail, list):
            detail = safe_errors(detail)
        elif not isinstance(detail, dict):
            detail = _clip(detail, _MAX_MSG)
        return SafeJSONResponse(
            {"detail": detail}, status_code=exc.status_code, headers=exc.headers
        )

    async def internal(request: Request, exc: Exception) -> SafeJSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        body = {"error": {"code": "internal_error", "message": "internal server error"}}
        return SafeJSONResponse(body, status_code=500)

    api.add_exception_handler(RequestValidationError, invalid)
    api.add_exception_handler(StarletteHTTPException, http_error)
    api.add_exception_handler(Exception, internal)

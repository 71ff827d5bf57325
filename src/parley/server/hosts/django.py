"""Django Channels: Parley's endpoints behind an ``AsyncWebsocketConsumer``.

Channels wants a consumer subclass, so :class:`ParleyConsumer` is one; all it does
is adapt itself to a :class:`~parley.transports.socket.WireSocket` and hand that to
the switchboard, exactly like the FastAPI routes. The URL patterns are generated
from the platform registry (plus ``/v1/realtime``).

    # myproject/asgi.py
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.core.asgi import get_asgi_application

    django_http = get_asgi_application()  # sets Django up before the imports below

    from parley.server.hosts.django import parley_urlpatterns
    from myproject.voice import voice  # a parley.Parley

    application = ProtocolTypeRouter({
        "http": django_http,
        "websocket": URLRouter(parley_urlpatterns(voice)),
    })

Serve it with any ASGI server (``uvicorn myproject.asgi:application`` or
``daphne myproject.asgi:application``). No channel layer is needed. With the local
engine, ``await voice.switchboard.warmup()`` at start loads the models before the
first call instead of during it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any
from urllib.parse import parse_qsl

from channels.generic.websocket import (  # type: ignore[import-untyped]
    AsyncWebsocketConsumer,
)
from django.urls import URLPattern, path  # type: ignore[import-untyped]

from parley.server.hosts.inbox import FrameInbox
from parley.server.hosts.websockets import HasSwitchboard
from parley.server.switchboard import Endpoint
from parley.tasks import cancel_and_wait
from parley.transports.platform import Connection, Refusal
from parley.transports.socket import CLOSE_NORMAL, close_reason

__all__ = ["ChannelsSocket", "ParleyConsumer", "parley_urlpatterns"]


class ChannelsSocket:
    """A :class:`ParleyConsumer`'s connection as a ``WireSocket``."""

    __slots__ = ("_closed", "_consumer", "inbox")

    def __init__(self, consumer: ParleyConsumer) -> None:
        self._consumer = consumer
        self.inbox = FrameInbox()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def receive(self) -> str | bytes | None:
        if self._closed:
            return None
        frame = await self.inbox.get()
        if frame is None:
            self._closed = True
        return frame

    async def send_text(self, data: str) -> None:
        if self._closed:
            return
        try:
            await self._consumer.send(text_data=data)
        except (RuntimeError, OSError):  # the peer left mid-send (uvicorn: OSError)
            self._closed = True

    async def send_bytes(self, data: bytes) -> None:
        if self._closed:
            return
        try:
            await self._consumer.send(bytes_data=data)
        except (RuntimeError, OSError):
            self._closed = True

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        self.inbox.discard()
        with contextlib.suppress(RuntimeError, OSError):  # the peer left first
            await self._consumer.close(code, close_reason(reason))

    def peer_closed(self) -> None:
        self.inbox.end()


def _connection(scope: dict[str, Any]) -> Connection:
    headers = {
        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
    }
    client = scope.get("client")
    return Connection(
        path=str(scope.get("path", "")),
        params={k: str(v) for k, v in scope.get("url_route", {}).get("kwargs", {}).items()},
        query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))),
        headers=headers,
        subprotocols=tuple(scope.get("subprotocols") or ()),
        client=f"{client[0]}:{client[1]}" if client else "",
    )


class ParleyConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """One call per WebSocket: ``ParleyConsumer.as_asgi(endpoint=...)``."""

    def __init__(self, *, endpoint: Endpoint, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.wire = ChannelsSocket(self)
        self._call: asyncio.Task[None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # The server dropped the connection without a disconnect message (e.g. it
            # is stopping): the call must not outlive its consumer.
            call = self._call
            if call is not None and not call.done():
                await cancel_and_wait(call)

    async def dispatch(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.receive":
            # Channels runs close_old_connections() in a worker thread before every
            # message; a call's frames never touch the ORM, so the hot path skips it.
            await self.websocket_receive(message)
            return
        await super().dispatch(message)

    async def connect(self) -> None:
        connection = _connection(self.scope)
        verdict = await self.endpoint.admit(connection)
        if isinstance(verdict, Refusal):
            # Channels refuses before accepting with a 403 (its only HTTP answer).
            await self.close(verdict.close_code)
            return
        await self.accept(verdict.subprotocol)
        self._call = asyncio.create_task(self._serve(connection))

    async def _serve(self, connection: Connection) -> None:
        try:
            await self.endpoint.serve(self.wire, connection)
        finally:
            await self.wire.close()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.wire.inbox.put(text_data if text_data is not None else bytes_data or b"")

    async def disconnect(self, code: int) -> None:
        self.wire.peer_closed()
        if self._call is not None:
            await asyncio.wait([self._call])  # the call ends on the peer's hang-up


_PARAM = re.compile(r"\{([a-z_]+)\}")


def parley_urlpatterns(app: HasSwitchboard, prefix: str = "") -> list[URLPattern]:
    """Channels routes for ``URLRouter``, one per route of every endpoint (the same
    paths as the FastAPI app's, ``{name}`` parameters as ``<str:name>``)."""
    patterns: list[URLPattern] = []
    for endpoint in app.switchboard.endpoints():
        consumer = ParleyConsumer.as_asgi(endpoint=endpoint)
        for template in endpoint.routes:
            route = _PARAM.sub(r"<str:\1>", template.lstrip("/"))
            patterns.append(path(f"{prefix}{route}", consumer))
    return patterns

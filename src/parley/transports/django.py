"""Django Channels: a Parley call behind an ``AsyncWebsocketConsumer``.

Channels wants a consumer subclass, so :class:`ParleyConsumer` is one; all it does
is adapt itself to a :class:`~parley.transports.socket.WireSocket` and hand that to
:func:`~parley.transports.serve.serve_call`, exactly like the FastAPI routes.

    # myproject/asgi.py
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.core.asgi import get_asgi_application

    django_http = get_asgi_application()  # sets Django up before the imports below

    from parley.transports.django import parley_urlpatterns
    from myproject.voice import voice  # a parley.Parley

    application = ProtocolTypeRouter({
        "http": django_http,
        "websocket": URLRouter(parley_urlpatterns(voice)),
    })

Serve it with any ASGI server (``uvicorn myproject.asgi:application`` or
``daphne myproject.asgi:application``). No channel layer is needed. With the local
engine, ``await voice.engines.warmup()`` at start loads the models before the
first call instead of during it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Literal

from channels.generic.websocket import (  # type: ignore[import-untyped]
    AsyncWebsocketConsumer,
)
from django.urls import URLPattern, path  # type: ignore[import-untyped]

from parley.transports.inbox import FrameInbox
from parley.transports.serve import serve_call
from parley.transports.socket import CLOSE_NORMAL, close_reason

if TYPE_CHECKING:
    from parley.app import Parley

__all__ = ["ChannelsSocket", "ParleyConsumer", "parley_urlpatterns"]

CallKind = Literal["twilio", "browser"]


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


class ParleyConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """One call per WebSocket: build with ``ParleyConsumer.as_asgi(parley=app, kind=...)``.

    A route may capture ``conversation_id`` (a conversation created over REST) for
    the browser protocol; without it, connecting creates the conversation.
    """

    def __init__(self, *, parley: Parley, kind: CallKind = "browser", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.parley = parley
        self.kind: CallKind = kind
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
                call.cancel()
                await asyncio.wait([call])

    async def dispatch(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.receive":
            # Channels runs close_old_connections() in a worker thread before every
            # message; a call's frames never touch the ORM, so the hot path skips it.
            await self.websocket_receive(message)
            return
        await super().dispatch(message)

    async def connect(self) -> None:
        await self.accept()
        kwargs = self.scope.get("url_route", {}).get("kwargs", {})
        conversation_id = kwargs.get("conversation_id")
        self._call = asyncio.create_task(self._serve(conversation_id))

    async def _serve(self, conversation_id: str | None) -> None:
        try:
            await serve_call(self.parley, self.wire, self.kind, conversation_id)
        finally:
            await self.wire.close()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.wire.inbox.put(text_data if text_data is not None else bytes_data or b"")

    async def disconnect(self, code: int) -> None:
        self.wire.peer_closed()
        if self._call is not None:
            await asyncio.wait([self._call])  # the call ends on the peer's hang-up


def parley_urlpatterns(app: Parley, prefix: str = "") -> list[URLPattern]:
    """Channels routes for ``URLRouter``: ``{prefix}ws/audio/<conversation_id>``,
    ``{prefix}ws/audio`` (browser protocol) and ``{prefix}twilio/stream`` (Media
    Streams) — the same paths as the FastAPI app's."""
    browser = ParleyConsumer.as_asgi(parley=app, kind="browser")
    return [
        path(f"{prefix}ws/audio/<str:conversation_id>", browser),
        path(f"{prefix}ws/audio", browser),
        path(f"{prefix}twilio/stream", ParleyConsumer.as_asgi(parley=app, kind="twilio")),
    ]

"""The ``Platform`` seam: one way callers reach Parley (Twilio, a browser page, …).

A platform is a name, the WebSocket routes it is served on, a check before the
socket is accepted, and how it turns an accepted socket into a
:class:`PlatformStream` — a :class:`~parley.conversation.CallStream` plus the
handshake and the few things the switchboard says to the peer (ready, rejected,
ended). It holds no call state and knows nothing of the server: the switchboard
(``parley.server.switchboard``) creates, refuses, runs and ends every call, and
the hosts (FastAPI, ``websockets``, Django Channels, Socket.IO) generate their
routes from the registry of platforms. Adding a phone platform is one protocol
module (``parley.protocols``), one shell with its ``Platform`` (here, in
``parley.transports``), and one line in ``parley.server.platforms``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from parley.conversation.state import ConversationState
from parley.conversation.stream import CallStream
from parley.events import Event
from parley.transports.socket import WireSocket

__all__ = [
    "Accept",
    "Caller",
    "Connection",
    "Platform",
    "PlatformStream",
    "Refusal",
    "match_route",
]


@dataclass(frozen=True, slots=True)
class Connection:
    """What a host knows of a WebSocket before accepting it."""

    path: str
    params: Mapping[str, str] = field(default_factory=dict)  # from the route template
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    subprotocols: tuple[str, ...] = ()
    client: str = ""  # the peer's address, for logs
    #: What the server's admission learnt (who connects), for its ``serve`` of the
    #: same connection: hosts hand the one ``Connection`` to both. Not part of equality.
    state: dict[str, object] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Accept:
    """Accept the socket, choosing ``subprotocol`` if the peer offered some."""

    subprotocol: str | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Refuse the socket: HTTP ``status`` before the upgrade where the host can, else
    accept and close with ``close_code`` and ``reason``."""

    status: int
    close_code: int
    reason: str
    body: Mapping[str, object] | None = None  # a JSON body for the HTTP refusal


@dataclass(frozen=True, slots=True)
class Caller:
    """What a platform's handshake tells about the call."""

    user_id: str | None = None
    call_sid: str = ""  # the provider's own id of the call (Twilio CallSid …)
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: The platform identified on a shared endpoint (``/phone/stream``): the record's
    #: ``kind``; None means the endpoint's own platform.
    platform: str | None = None
    #: A session the peer asks to resume (the browser's ``start.session_id``).
    session_id: str = ""
    #: The platform itself proved the call genuine (Twilio: the signed webhook's
    #: one-time token); with authentication on, other calls need credentials.
    verified: bool = False


@runtime_checkable
class PlatformStream(CallStream, Protocol):
    """A call stream with the handshake and what the switchboard tells the peer."""

    @property
    def closed(self) -> bool: ...

    async def handshake(self) -> Caller | None:
        """Read the peer's frames up to its start; None if it left first. A malformed
        frame or a failed check closes the socket with the reason and raises
        (``RemoteProtocolError``, ``AuthError``)."""
        ...

    async def ready(self, call_id: str) -> None:
        """The call is set up (the browser page gets its ``ready``)."""

    async def reject(self, code: str, message: str, close_code: int) -> None:
        """Refuse the call after the handshake started, saying why, and close."""

    async def show(self, event: Event, state: ConversationState) -> None:
        """An event of the call the peer may want to see (the page's transcript)."""

    async def end(self, code: int, reason: str) -> None:
        """Close with ``code`` and ``reason`` (shutdown, engine unavailable)."""


@runtime_checkable
class Platform(Protocol):
    """One way in. ``routes`` are path templates (``/ws/audio/{conversation_id}``); a
    ``conversation_id`` parameter claims a conversation created over REST."""

    @property
    def name(self) -> str: ...

    @property
    def routes(self) -> tuple[str, ...]: ...

    def admit(self, connection: Connection) -> Accept | Refusal:
        """Before the socket is accepted (no I/O)."""
        ...

    def open(self, socket: WireSocket, connection: Connection) -> PlatformStream:
        """The stream of an accepted socket (no I/O until its ``handshake``)."""
        ...


_PARAM = re.compile(r"\{([a-z_]+)\}")


def match_route(template: str, path: str) -> dict[str, str] | None:
    """The parameters of ``path`` under ``template`` (a trailing slash is allowed),
    or None when it does not match."""
    parts = _PARAM.split(template)  # literal, name, literal, name, …, literal
    pattern = "".join(
        f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts)
    )
    found = re.fullmatch(pattern + "/?", path)
    return dict(found.groupdict()) if found is not None else None

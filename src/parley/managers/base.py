"""Seed 001's connection managers, over the switchboard.

A manager is mounted in the user's own FastAPI app: its WebSocket route calls
``await manager.connect(websocket, session_id)`` then ``await
manager.handle_message_stream(websocket, session_id)``. ``connect`` is the
switchboard's admission of the socket (authentication, limits, draining) and its
accept or refusal; ``handle_message_stream`` is :meth:`Switchboard.serve
<parley.server.switchboard.Switchboard.serve>` of the platform's stream with the
manager's :class:`~parley.server.calls.CallOptions`: the call's id is the route's
``session_id``, it may open with the manager's greeting, and its engine holds at most
``{PLATFORM}_AUDIO_QUEUE_SIZE`` caller audio chunks. Nothing about a call lives
here: the manager only remembers which sockets it accepted.

Every manager of a process shares one :class:`~parley.Parley` app (its settings from
``PARLEY_*`` and ``PARLEY_CONFIG``) unless given its own with ``app=``.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from parley.app import Parley
from parley.errors import ConfigError
from parley.server.calls import CallOptions, CallRecord, CallStatus
from parley.server.switchboard import Switchboard
from parley.transports.platform import Connection, Platform, Refusal
from parley.transports.socket import CLOSE_NORMAL, CLOSE_POLICY, StarletteSocket
from parley.transports.starlette import refuse_starlette, starlette_connection

__all__ = ["BaseConnectionManager", "StreamConnectionManager", "default_app", "queue_size"]

log = logging.getLogger("parley.managers")

_default: Parley | None = None


def default_app() -> Parley:
    """The process's shared app (made on first use, from the environment)."""
    global _default
    if _default is None:
        _default = Parley()
    return _default


def queue_size(variable: str) -> int | None:
    """``$variable`` as a positive chunk count; None when unset."""
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return None
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if size <= 0:
        raise ConfigError(f"{variable} must be a positive number of chunks, not {raw!r}")
    return size


class BaseConnectionManager(ABC):
    """The document's four required methods and the health report."""

    def __init__(self, app: Parley | None = None) -> None:
        self.app = app if app is not None else default_app()

    @property
    def switchboard(self) -> Switchboard:
        return self.app.switchboard

    @abstractmethod
    async def connect(self, websocket: WebSocket, session_id: str) -> None:
        """Admit and accept (or refuse) the socket of session ``session_id``."""

    @abstractmethod
    async def handle_message_stream(self, websocket: WebSocket, session_id: str) -> None:
        """Serve the session until it ends."""

    @abstractmethod
    async def disconnect(self, session_id: str) -> None:
        """End the session (nothing if there is none)."""

    async def send_message(self, session_id: str, message: str) -> bool:
        """The assistant says ``message`` on the live call ``session_id`` now (a reply of
        its own, kept in the transcript); False when no such call is live."""
        if not isinstance(message, str):
            raise ConfigError(
                f"send_message takes the text to say, not {type(message).__name__}",
                field="message",
            )
        record = self._live(session_id)
        if record is None or record.live_engine is None:
            return False
        await record.live_engine.greet(message)
        return True

    def sessions(self) -> list[str]:
        """The ids of this manager's sessions with a socket."""
        return []

    def get_health_status(self) -> dict[str, Any]:
        """``status`` (``ok`` | ``draining``), this manager's ``active_connections``
        (sockets) and ``active_audio_handlers`` (live calls), their ``calls``, and the
        whole server's report under ``server``."""
        board = self.switchboard
        report = board.health()
        mine = [r for sid in self.sessions() if (r := board.calls.get(sid)) is not None]
        return {
            "status": report["status"],
            "active_connections": len(self.sessions()),
            "active_audio_handlers": sum(1 for r in mine if r.status is CallStatus.LIVE),
            "calls": [r.health() for r in mine if r.status is not CallStatus.ENDED],
            "server": report,
        }

    def _live(self, session_id: str) -> CallRecord | None:
        record = self.switchboard.calls.get(session_id)
        if record is None or record.status is not CallStatus.LIVE:
            return None
        return record


@dataclass(slots=True)
class _Session:
    websocket: WebSocket
    connection: Connection


class StreamConnectionManager(BaseConnectionManager):
    """A manager of one Parley platform's sockets (Twilio, the browser protocol, …)."""

    #: The platform's ``*_AUDIO_QUEUE_SIZE`` variable.
    queue_variable = ""

    def __init__(
        self, platform: Platform, *, app: Parley | None = None, greeting: str = ""
    ) -> None:
        super().__init__(app)
        self.platform = platform
        self.greeting = greeting
        self.audio_queue = queue_size(self.queue_variable) if self.queue_variable else None
        self._endpoint = self.switchboard.endpoint(platform)
        self._sessions: dict[str, _Session] = {}

    def sessions(self) -> list[str]:
        return list(self._sessions)

    async def connect(self, websocket: WebSocket, session_id: str) -> None:
        if not session_id:
            await websocket.close(CLOSE_POLICY, "session_in_use: a session needs an id")
            return
        board = self.switchboard
        taken = board.calls.get(session_id)
        if session_id in self._sessions or (
            taken is not None and taken.status is not CallStatus.ENDED
        ):
            reason = f"session_in_use: session {session_id!r} is connected"
            await refuse_starlette(websocket, Refusal(409, CLOSE_POLICY, reason))
            return
        # The route's own parameters are the user's: none of them claims a conversation.
        seen = starlette_connection(websocket)
        connection = Connection(
            seen.path, {}, seen.query, seen.headers, seen.subprotocols, seen.client
        )
        verdict = await self._endpoint.admit(connection)
        if isinstance(verdict, Refusal):
            await refuse_starlette(websocket, verdict)
            return
        await websocket.accept(subprotocol=verdict.subprotocol)
        self._sessions[session_id] = _Session(websocket, connection)

    async def handle_message_stream(self, websocket: WebSocket, session_id: str) -> None:
        session = self._sessions.get(session_id)
        if session is None and websocket.application_state is WebSocketState.CONNECTING:
            await self.connect(websocket, session_id)  # the route skipped connect
            session = self._sessions.get(session_id)
        if session is None or session.websocket is not websocket:
            return  # refused at connect (the socket is closed), or another's socket
        options = CallOptions(session_id, self.greeting, self.audio_queue)
        try:
            await self.switchboard.serve(
                self.platform, StarletteSocket(websocket), session.connection, options
            )
        finally:
            if self._sessions.get(session_id) is session:
                del self._sessions[session_id]

    async def disconnect(self, session_id: str) -> None:
        session = self._sessions.get(session_id)
        if not await self.switchboard.end_call(session_id) and session is not None:
            # Accepted but not served yet: close it; its admission's slot is freed.
            del self._sessions[session_id]
            await self.switchboard.admission.forget(session.connection)
            await StarletteSocket(session.websocket).close(CLOSE_NORMAL, "disconnected")

"""Seed 001's ``BaseAudioConnectionManager``: a platform of the user's own.

A subclass says how its platform's socket becomes an :class:`AudioHandler`
(``create_audio_handler``) and reads the platform's messages
(``handle_message_stream``, feeding ``handler.add_input_audio``). ``connect``
accepts the socket, makes the handler and starts its :class:`VoiceAssistant` — a
Parley call of kind ``platform`` on the app's engine, run by
:meth:`Switchboard.run_call <parley.server.switchboard.Switchboard.run_call>` over the
handler as a stream (registered, in the health report, hooks and metrics as any
call). ``disconnect`` shuts the handler down and waits for the call's end.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod

from starlette.websockets import WebSocket, WebSocketState

from parley.app import Parley
from parley.managers.audio_handler import AudioHandler, HandlerStream
from parley.managers.base import BaseConnectionManager, queue_size
from parley.server.calls import CallStatus
from parley.server.switchboard import Switchboard

__all__ = ["BaseAudioConnectionManager", "VoiceAssistant"]


class VoiceAssistant:
    """One session's call over its handler; ``start()`` runs it in a task."""

    def __init__(
        self,
        board: Switchboard,
        session_id: str,
        handler: AudioHandler,
        *,
        platform: str,
        greeting: str = "",
    ) -> None:
        self.board = board
        self.session_id = session_id
        self.handler = handler
        self.platform = platform
        self.greeting = greeting
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self.run(), name=f"parley-{self.session_id}")

    async def run(self) -> None:
        """The call, until the handler shuts down or the engine ends it."""
        board = self.board
        refusal = board.refusal()
        if refusal is not None:
            await self.handler.shutdown()
            return
        record = board.new_record(kind=self.platform, record_id=self.session_id)
        record.move(CallStatus.CONNECTING)
        record.greeting, record.audio_queue = self.greeting, self.handler.queue_size
        try:
            await board.run_call(record, HandlerStream(self.handler))
        finally:
            await self.handler.shutdown()

    async def wait(self) -> None:
        if self.task is not None:
            await asyncio.shield(self.task)


class BaseAudioConnectionManager(BaseConnectionManager):
    """See the module docstring. ``platform``: the calls' kind; ``queue_variable``:
    its ``*_AUDIO_QUEUE_SIZE`` (the handlers' input queue)."""

    platform = "custom"
    queue_variable = ""

    def __init__(self, app: Parley | None = None, *, initial_message: str = "") -> None:
        super().__init__(app)
        self.initial_message = initial_message
        self.audio_queue = queue_size(self.queue_variable) if self.queue_variable else None
        self.audio_handlers: dict[str, AudioHandler] = {}
        self.assistants: dict[str, VoiceAssistant] = {}

    @abstractmethod
    def create_audio_handler(self, websocket: WebSocket, session_id: str) -> AudioHandler:
        """The session's handler (pass ``queue_size=self.audio_queue``)."""

    def create_voice_assistant(
        self, session_id: str, audio_handler: AudioHandler
    ) -> VoiceAssistant:
        return VoiceAssistant(
            self.switchboard,
            session_id,
            audio_handler,
            platform=self.platform,
            greeting=self.initial_message,
        )

    def sessions(self) -> list[str]:
        return list(self.audio_handlers)

    async def connect(self, websocket: WebSocket, session_id: str) -> None:
        if session_id in self.audio_handlers:
            await websocket.close(1008, f"session_in_use: session {session_id!r} is connected")
            return
        if websocket.application_state is WebSocketState.CONNECTING:
            await websocket.accept()
        handler = self.create_audio_handler(websocket, session_id)
        assistant = self.create_voice_assistant(session_id, handler)
        self.audio_handlers[session_id], self.assistants[session_id] = handler, assistant
        assistant.start()

    async def disconnect(self, session_id: str) -> None:
        handler = self.audio_handlers.pop(session_id, None)
        assistant = self.assistants.pop(session_id, None)
        if handler is not None:
            await handler.shutdown()
        if assistant is not None:
            await assistant.wait()

"""The switchboard's OpenAI-Realtime-compatible endpoint: ``/v1/realtime`` opens a
new call, ``/realtime/{conversation_id}`` (seed 002) claims one created by ``POST
/conversations`` and runs it with that conversation's own flow, prompt and limits.

Both are one route set of one :class:`~parley.server.switchboard.Endpoint`, with the
same admission as every socket: the key before the handshake (``Authorization:
Bearer`` or the ``openai-insecure-api-key.`` subprotocol), capacity and draining,
the limits. A claim follows :meth:`~parley.server.admission.CallAdmission.claim`: a
pending conversation is its owner's to claim (another user's or tenant's is
answered exactly as an unknown one), once. A refused claim is accepted, then told
why in the protocol's own ``error`` event and closed with 1008 and the same reason
(``unknown_conversation: …``, ``conversation_taken: …``, ``conversation_expired:
…``), never a bare HTTP 403.

A session is a call of kind "realtime" on the cascade in text mode: the Realtime
session does its own turn detection and transcription (the backend's VAD and STT)
and asks the engine, which carries the app's brain, tools, middleware, context and
the conversation's flow.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from parley.audio.format import AudioFormat
from parley.config import ParleySettings
from parley.conversation.journal import Journal
from parley.engines.seams import CallEngine
from parley.engines.spec import EngineKind
from parley.errors import ConfigError, RateLimited
from parley.protocols.openai_realtime import ErrorDetail, RealtimeErrorEvent, encode_event_text
from parley.realtime_server import RealtimeBackend, admission, serve_realtime
from parley.security.principal import Principal
from parley.security.refusals import refusal_for
from parley.server.admission import CallAdmission
from parley.server.call import LiveCall
from parley.server.calls import CallRecord, CallRegistry, CallStatus
from parley.server.engines import CallEngines
from parley.server.persistence import resume
from parley.server.security import Security
from parley.transports.platform import Accept, Connection, PlatformStream, Refusal
from parley.transports.socket import CLOSE_POLICY, CLOSE_TRY_AGAIN, WireSocket

__all__ = ["REALTIME_CLAIM_PATH", "REALTIME_PATH", "Board", "RealtimeDoor"]

log = logging.getLogger("parley.server")

#: Where the OpenAI-Realtime-compatible endpoint is served.
REALTIME_PATH: Final = "/v1/realtime"
#: The same endpoint claiming a conversation created over REST (seed 002).
REALTIME_CLAIM_PATH: Final = "/realtime/{conversation_id}"
_CLOSE_INTERNAL: Final = 1011
_DEFAULT_MODEL: Final = "parley-realtime"
#: The Realtime wire: PCM16 mono at 24 kHz both ways.
_WIRE = AudioFormat("pcm16", 24000, 1)


class Board(Protocol):
    """What the door uses of the switchboard (which owns it)."""

    settings: ParleySettings
    security: Security
    admission: CallAdmission
    calls: CallRegistry
    engines: CallEngines

    def refusal(self) -> str | None: ...

    def log_refused(self, what: str, connection: Connection, reason: str) -> None: ...

    def new_record(
        self,
        *,
        kind: str | None = None,
        user_id: str | None = None,
        owner: Principal | None = None,
    ) -> CallRecord: ...

    def open_live(
        self, record: CallRecord, engine: CallEngine, journal: Journal | None = None
    ) -> LiveCall: ...

    async def run_live(
        self,
        record: CallRecord,
        stream: PlatformStream | None,
        engine: CallEngine,
        run: Callable[[], Awaitable[None]],
        principal: Principal | None,
        max_seconds: float | None,
        stop: Callable[[str], Awaitable[None]],
    ) -> None: ...


class RealtimeDoor:
    """``admit`` and ``serve`` of the switchboard's realtime endpoint."""

    routes: Final = (REALTIME_PATH, REALTIME_CLAIM_PATH)

    def __init__(self, board: Board) -> None:
        self.board = board

    async def admit(self, connection: Connection) -> Accept | Refusal:
        """The key: the server's credentials with authentication on, else
        ``realtime_server_api_key`` if set (never echoed back)."""
        board = self.board
        key = board.settings.realtime_server_api_key
        legacy = key.get_secret_value() if key is not None and not board.security.enabled else None
        verdict = admission(legacy, connection)
        if isinstance(verdict, Refusal):
            board.log_refused("realtime", connection, verdict.reason)
            return verdict
        return await board.admission.admit("realtime", connection, verdict, deferred=False)

    def backend(self) -> RealtimeBackend:
        """The sessions' shared input side: the configured VAD and STT."""
        return self.board.engines.realtime_backend()

    async def serve(self, socket: WireSocket, connection: Connection) -> None:
        board = self.board
        board.calls.connections += 1
        try:
            refusal = board.refusal()
            if refusal is not None:
                board.log_refused("realtime", connection, refusal)
                await socket.close(CLOSE_TRY_AGAIN, refusal)
                return
            admitted = await board.admission.of("realtime", connection, deferred=False)
            if isinstance(admitted, Refusal):
                await socket.close(admitted.close_code, admitted.reason)
                return
            principal = admitted.principal
            assert principal is not None  # not deferred: known at admission
            claim = connection.params.get("conversation_id")
            if claim:
                claimed = await board.admission.claim(claim, principal)
                if not isinstance(claimed, CallRecord):
                    board.log_refused("realtime", connection, claimed[1])
                    await _refuse(socket, *claimed)
                    return
                record, pending = claimed, not claimed.resumed_turns
                record.kind = "realtime"
            else:
                if (denied := board.admission.may_open(principal)) is not None:
                    board.log_refused("realtime", connection, denied.reason)
                    await socket.close(CLOSE_POLICY, f"forbidden: {denied.reason}")
                    return
                user = connection.query.get("user")
                if board.security.enabled and not principal.is_admin:
                    user = principal.user_id
                record = board.new_record(kind="realtime", user_id=user, owner=principal)
                record.move(CallStatus.CONNECTING)
                pending = False
            try:
                max_s = await board.admission.start(record, principal, pending=pending)
            except RateLimited as exc:
                spec = refusal_for(exc)
                board.log_refused("realtime", connection, spec.reason)
                await socket.close(spec.close_code, spec.reason)
                return
            await self._run(socket, connection, record, principal, max_s)
        finally:
            board.calls.connections -= 1

    async def _run(
        self,
        socket: WireSocket,
        connection: Connection,
        record: CallRecord,
        principal: Principal,
        max_s: float | None,
    ) -> None:
        board = self.board
        try:
            built = board.engines.build(record, _WIRE, EngineKind.LOCAL)
        except ConfigError as exc:
            log.error("call %s: cannot build the engine: %s", record.id, exc)
            record.end_reason = "engine_unavailable"
            board.calls.ended(record)
            await board.admission.finish(record, principal)
            await socket.close(_CLOSE_INTERNAL, f"engine unavailable: {exc}")
            return
        engine = built.engine
        journal = Journal(serving=engine.stats().serving)
        live = board.open_live(record, engine, journal)
        built.report_to(live.observe)
        record.journal = journal
        resume(record, engine)  # a session reconnecting within the resume window
        model = connection.query.get("model") or _DEFAULT_MODEL
        backend = self.backend()

        async def run() -> None:
            await live.start()
            try:
                await serve_realtime(socket, backend, engine, model=model, on_event=live.observe)
            finally:
                await live.end()

        async def stop(reason: str) -> None:
            await socket.close(CLOSE_POLICY, reason)
            await engine.close()

        await board.run_live(record, None, engine, run, principal, max_s, stop)


async def _refuse(socket: WireSocket, code: str, message: str) -> None:
    """A refused claim, said the Realtime way: an ``error`` event, then 1008."""
    event = RealtimeErrorEvent(
        error=ErrorDetail(type="invalid_request_error", code=code, message=message)
    )
    await socket.send_text(encode_event_text(event))
    # A close reason holds at most 123 bytes.
    reason = f"{code}: {message}".encode()[:123].decode("utf-8", "ignore")
    await socket.close(CLOSE_POLICY, reason)

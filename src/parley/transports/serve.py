"""``serve_call``: the one coroutine every framework adapter calls with a WireSocket.

It refuses the call when the server is draining or full (close 1013), reads the
protocol's handshake (Twilio ``start`` with its one-time token, the page's
``start``), builds the call stream, the engine and the
:class:`~parley.conversation.Conversation`, registers the call, runs it, and
unregisters it. A peer's malformed frame closes only that socket, with 1007/1008/
1009 and the error's code and message as the reason; other calls never notice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Literal

from parley.conversation.session import Conversation
from parley.errors import AuthError, ConfigError, RemoteProtocolError
from parley.events import Event
from parley.protocols.twilio import Start
from parley.transports.browser import BrowserCallStream
from parley.transports.socket import CLOSE_POLICY, CLOSE_TRY_AGAIN, WireSocket
from parley.transports.twilio import TwilioCallStream

if TYPE_CHECKING:
    from parley.app import Parley
    from parley.server.registry import CallRecord

__all__ = ["HANDSHAKE_TIMEOUT_S", "serve_call"]

log = logging.getLogger("parley.server")

#: A peer that connects but sends no ``start`` within this time is closed (1008).
HANDSHAKE_TIMEOUT_S = 10.0

_CLOSE_INTERNAL = 1011


async def serve_call(
    app: Parley,
    socket: WireSocket,
    kind: Literal["twilio", "browser"],
    conversation_id: str | None = None,
) -> None:
    """Serve one accepted WebSocket until the call ends; never raises for a peer's fault."""
    calls = app.calls
    calls.connections += 1
    try:
        refusal = app.refusal()
        if refusal is not None:
            await socket.close(CLOSE_TRY_AGAIN, refusal)
            return
        if kind == "twilio":
            await _serve_twilio(app, socket)
        else:
            await _serve_browser(app, socket, conversation_id)
    except (RemoteProtocolError, AuthError):
        pass  # the stream already closed the socket with the reason
    finally:
        calls.connections -= 1


async def _handshake_timeout(socket: WireSocket) -> None:
    await socket.close(CLOSE_POLICY, f"no 'start' within {HANDSHAKE_TIMEOUT_S:g} s")


async def _serve_twilio(app: Parley, socket: WireSocket) -> None:
    stream = TwilioCallStream(socket)
    tokens = app.twilio_tokens

    def check(start: Start) -> None:
        if tokens is not None:
            params = start.custom_parameters
            tokens.check(params.get("token"), start.call_sid, params.get("from", ""))

    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
            start = await stream.handshake(check)
    except TimeoutError:
        await _handshake_timeout(socket)
        return
    if start is None:
        return
    record = app.new_record(kind="twilio", user_id=start.custom_parameters.get("from") or None)
    record.call_sid = start.call_sid
    record.status = "connecting"
    await _run(app, record, stream)


async def _serve_browser(app: Parley, socket: WireSocket, conversation_id: str | None) -> None:
    stream = BrowserCallStream(socket)
    record: CallRecord | None = None
    if conversation_id is not None:
        record = app.calls.get(conversation_id)
        if record is None:
            await stream.reject(
                "unknown_conversation", f"no conversation {conversation_id!r}", CLOSE_POLICY
            )
            return
        if record.status != "pending":
            await stream.reject(
                "conversation_taken",
                f"conversation {conversation_id!r} is {record.status}",
                CLOSE_POLICY,
            )
            return
        record.status = "connecting"  # claimed: a second socket for this id is refused
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
            start = await stream.handshake()
    except TimeoutError:
        await _handshake_timeout(socket)
        start = None
    except RemoteProtocolError:
        if record is not None:
            record.status = "pending"  # a bad page does not use up the conversation
        raise
    if start is None:
        if record is not None:
            record.status = "pending"  # the page left before starting: it may retry
        return
    if record is None:
        record = app.new_record(kind="browser", user_id=start.user_id)
        record.status = "connecting"
    record.kind = "browser"
    record.user_id = record.user_id or start.user_id
    record.metadata.update(start.metadata)
    await stream.ready(record.id)
    await _run(app, record, stream)


async def _run(
    app: Parley, record: CallRecord, stream: TwilioCallStream | BrowserCallStream
) -> None:
    try:
        engine = app.make_engine(
            record, stream.input_format.sample_rate, stream.input_format.encoding
        )
    except ConfigError as exc:
        log.error("call %s: cannot build the engine: %s", record.id, exc)
        app.calls.ended(record)
        await stream.end(_CLOSE_INTERNAL, f"engine unavailable: {exc}")
        return
    dispatch = app.event_dispatcher(record.id)
    on_event = None
    if isinstance(stream, BrowserCallStream):
        browser = stream

        async def on_event(conv: Conversation, event: Event) -> None:
            await browser.on_event(event, conv.state)
            if dispatch is not None:
                await dispatch(event)

    elif dispatch is not None:
        user_dispatch = dispatch

        async def on_event(conv: Conversation, event: Event) -> None:
            await user_dispatch(event)

    conversation = Conversation(
        stream,
        engine,
        conversation_id=record.id,
        on_start=app.start_hook(record),
        on_end=app.end_hook(record),
        on_event=on_event,
        audio_preprocessor=app.audio_preprocessor_for(engine),
    )
    record.conversation = conversation
    record.stream = stream
    record.status = "live"
    try:
        if record.end_requested:  # DELETE arrived during the handshake
            await conversation.end()
        await conversation.run()
    finally:
        app.calls.ended(record)

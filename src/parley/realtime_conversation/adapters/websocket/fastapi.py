"""The FastAPI (Starlette) adapter and the ``/ws/conversation`` wire.

The wire is Parley's browser protocol (docs/protocol.md §1) with ``start``
optional, which is what a legacy conversation endpoint's clients expect: binary
frames are raw PCM16 little-endian mono audio both ways (16 kHz unless the engine's
``audio.sample_rate`` or the client's ``start`` says otherwise), text frames are
JSON control messages (``text``, ``playback``, ``stop``, ``ping`` from the client;
``ready``, ``transcript``, ``response_*``, ``interrupted``, ``metrics``, ``state``,
``error`` from the server). A client whose first frame is not ``start`` has started
implicitly in the engine's format. The token for authentication middleware comes
from ``start.metadata.token``, the ``token`` query parameter or an
``Authorization: Bearer`` header. docs/seeds.md (§003) has the whole exchange.

The stream is :class:`parley.transports.browser.BrowserCallStream` itself (one
protocol implementation): only its handshake is extended, by replaying the first
frame after an implied ``start``.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import msgspec
from starlette.websockets import WebSocket, WebSocketState

from parley.audio.format import AudioFormat
from parley.conversation.stream import Inbound
from parley.errors import ConfigError
from parley.protocols.browser import (
    SUPPORTED_SAMPLE_RATES,
    PCMFormat,
    StartMessage,
    encode_client_message,
)
from parley.protocols.limits import MAX_TEXT_FRAME_BYTES
from parley.realtime_conversation.core.data import AudioData
from parley.realtime_conversation.core.interfaces import WebSocketAdapter
from parley.transports.browser import BrowserCallStream
from parley.transports.platform import Caller
from parley.transports.socket import CLOSE_NORMAL, StarletteSocket

__all__ = ["FastAPIWebSocketAdapter"]

_ids = itertools.count(1)


class _Tagged(msgspec.Struct):
    type: str = ""


_TAG: Final = msgspec.json.Decoder(_Tagged)


def _is_start(frame: str | bytes) -> bool:
    if not isinstance(frame, str) or len(frame) > MAX_TEXT_FRAME_BYTES:
        return False  # audio, or a frame the protocol refuses anyway
    try:
        return _TAG.decode(frame).type == "start"
    except (msgspec.DecodeError, UnicodeError, RecursionError):
        return False  # the browser session reports it once the call has started


class _Socket:
    """A Starlette WebSocket as a ``WireSocket``, accepted on first use, with frames
    to hand back before the socket's own (the implied ``start``, the peeked frame)."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self._socket = StarletteSocket(websocket)
        self._replay: deque[str | bytes] = deque()

    async def accept(self) -> None:
        if self.websocket.application_state is WebSocketState.CONNECTING:
            await self.websocket.accept()

    def replay(self, frame: str | bytes) -> None:
        self._replay.append(frame)

    async def receive(self) -> str | bytes | None:
        if self._replay:
            return self._replay.popleft()
        return await self._socket.receive()

    async def send_text(self, data: str) -> None:
        await self._socket.send_text(data)

    async def send_bytes(self, data: bytes) -> None:
        await self._socket.send_bytes(data)

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        await self._socket.close(code, reason)


class _ConversationWire(BrowserCallStream):
    """The browser protocol's stream with ``start`` optional (see the module docstring)."""

    def __init__(self, socket: _Socket, adapter: FastAPIWebSocketAdapter, implied: int) -> None:
        super().__init__(socket)
        self._wire = socket
        self._adapter = adapter
        self._implied = implied

    async def handshake(self) -> Caller | None:
        await self._wire.accept()
        first = await self._wire.receive()
        if first is None:
            self.closed = True
            return None
        if not _is_start(first):
            start = StartMessage(format=PCMFormat(sample_rate=self._implied))
            self._wire.replay(encode_client_message(start))
        self._wire.replay(first)
        caller = await super().handshake()
        if caller is None:
            return None
        metadata = dict(caller.metadata)
        token = metadata.get("token") or self._adapter.token
        if token:
            metadata["token"] = token
        return Caller(caller.user_id or self._adapter.user_id, caller.call_sid, metadata)


def _bearer(headers: Mapping[str, str]) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


class FastAPIWebSocketAdapter(WebSocketAdapter):
    """A FastAPI/Starlette ``WebSocket`` for :meth:`ConversationEngine.handle_conversation`.

    The endpoint need not accept the socket: the adapter does. ``sample_rate``
    overrides the engine's ``audio.sample_rate`` for this socket's implied start. The
    conversation's events reach the client as the protocol's control messages
    (``transcript``, ``response_done``, ``error`` …), not through ``on_event``.
    ``receive_audio``/``send_audio``/``send_json`` also work on their own (a loop of
    your own instead of ``handle_conversation``); ``receive_audio`` then returns only
    audio (typed text and playback reports are for the engine).
    """

    def __init__(self, websocket: WebSocket, *, sample_rate: int | None = None) -> None:
        self.websocket = websocket
        self.sample_rate = sample_rate
        self.channels = 1  # the wire is mono
        self.token = websocket.query_params.get("token") or _bearer(websocket.headers)
        self.user_id = websocket.query_params.get("user_id")
        self._socket = _Socket(websocket)
        self._stream: _ConversationWire | None = None
        self._started = False
        self._inbound: AsyncIterator[Inbound] | None = None

    def call_stream(self, audio: AudioFormat) -> BrowserCallStream:
        if self._stream is None:
            rate = self.sample_rate or audio.sample_rate
            if rate not in SUPPORTED_SAMPLE_RATES or audio.channels != 1:
                rates = ", ".join(str(r) for r in SUPPORTED_SAMPLE_RATES)
                raise ConfigError(
                    f"the /ws/conversation wire carries PCM16 mono at {rates} Hz, not "
                    f"{rate} Hz x{audio.channels}",
                    field="audio",
                )
            self._stream = _ConversationWire(self._socket, self, rate)
        return self._stream

    async def _open(self) -> BrowserCallStream | None:
        """For direct use: the handshake and ``ready`` that handle_conversation does."""
        stream = self.call_stream(AudioFormat("pcm16", 16000))
        if not self._started:
            self._started = True
            if await stream.handshake() is None:
                return None
            await stream.ready(f"ws_{next(_ids)}")
        return None if stream.closed else stream

    async def receive_audio(self) -> AudioData | None:
        stream = await self._open()
        if stream is None:
            return None
        if self._inbound is None:
            self._inbound = stream.inbound()
        while (item := await anext(self._inbound, None)) is not None:
            if isinstance(item, bytes):
                return AudioData(item, stream.input_format.sample_rate)
        return None

    async def send_audio(self, audio: AudioData) -> None:
        stream = await self._open()
        if stream is None:
            return
        rate = stream.output_format.sample_rate
        if audio.sample_rate != rate or audio.channels != 1:
            raise ConfigError(
                f"this socket carries PCM16 mono at {rate} Hz, not {audio.sample_rate} Hz "
                f"x{audio.channels}",
                field="audio",
            )
        await stream.send_audio(audio.data, response_id="")

    async def send_json(self, message: Mapping[str, Any]) -> None:
        await self._socket.accept()
        await self._socket.send_text(json.dumps(message))

    async def close(self) -> None:
        if self._stream is not None:
            await self._stream.close()
        else:
            await self._socket.close()

"""The *Vonage* side of a Voice API WebSocket, sans-I/O (for tests and test phones).

:mod:`parley.protocols.vonage` is the server's half; :class:`VonageCaller` is the
mirror image. Vonage mixes frame types, and so does this: text frames are ``str``
(``websocket:connected`` with the NCCO headers flattened in, ``websocket:dtmf``,
``websocket:notify`` echoes, ``websocket:cleared``) and audio frames are ``bytes``
(raw PCM16 little-endian, 20 ms each). ``receive()`` takes what the server sent:
``bytes`` must be exactly one 20 ms frame, ``str`` one of ``{"action":"clear"}`` or
``{"action":"notify","payload":{…}}``; anything else is a
:class:`~parley.errors.RemoteProtocolError`.

Use :class:`parley.protocols.playback.Playout` (``bytes_per_ms = rate / 500``) to
know when to echo a notify; on ``clear`` this phone drops the pending notifies and
answers ``websocket:cleared`` (Vonage documents no echo of flushed notifies).
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

import msgspec

from parley.errors import LocalProtocolError, RemoteProtocolError
from parley.protocols._phone_json import DTMF_DIGITS
from parley.protocols.limits import check_frame_size
from parley.protocols.vonage import FRAME_MS, RATES

__all__ = ["Clear", "OutboundAudio", "OutboundNotify", "ServerEvent", "VonageCaller"]

_MAX_TEXT: Final = 64 * 1024


class OutboundAudio(msgspec.Struct, frozen=True, gc=False):
    """One 20 ms binary frame of server audio (PCM16 little-endian)."""

    payload: bytes


class OutboundNotify(msgspec.Struct, frozen=True):
    """The server asks to be told when the audio sent so far has played."""

    payload: dict[str, Any]


class Clear(msgspec.Struct, frozen=True):
    """The server asks to drop the playback buffer (barge-in)."""


ServerEvent: TypeAlias = OutboundAudio | OutboundNotify | Clear


class _NotifyMsg(msgspec.Struct, tag_field="action", tag="notify", frozen=True):
    payload: dict[str, Any]


class _ClearMsg(msgspec.Struct, tag_field="action", tag="clear", frozen=True):
    pass


_DECODER: Final[msgspec.json.Decoder[_NotifyMsg | _ClearMsg]] = msgspec.json.Decoder(
    _NotifyMsg | _ClearMsg
)
_ENCODER: Final = msgspec.json.Encoder()
_CLEAR: Final = Clear()


class VonageCaller:
    """One Voice API WebSocket as Vonage drives it: ``connected()`` first, then audio."""

    __slots__ = ("_connected", "frame_bytes", "headers", "sample_rate")

    def __init__(self, *, sample_rate: int = 16000, headers: dict[str, Any] | None = None) -> None:
        if sample_rate not in RATES:
            raise ValueError(f"sample_rate must be one of {sorted(RATES)}")
        self.sample_rate = sample_rate
        #: Bytes of one 20 ms frame (640 at 16 kHz).
        self.frame_bytes = sample_rate * 2 * FRAME_MS // 1000
        self.headers = dict(headers or {})
        self._connected = False

    @property
    def content_type(self) -> str:
        return f"audio/l16;rate={self.sample_rate}"

    # -- Vonage → server ------------------------------------------------------------

    def connected(self) -> str:
        """The first (text) frame, the NCCO headers flattened into it."""
        if self._connected:
            raise LocalProtocolError("already connected", code="out_of_order")
        self._connected = True
        return _ENCODER.encode(
            {"event": "websocket:connected", "content-type": self.content_type, **self.headers}
        ).decode()

    def audio(self, pcm: bytes) -> bytes:
        """One binary audio frame (PCM16 little-endian; 20 ms on a real call)."""
        self._need_connected("audio")
        return bytes(pcm)

    def frames(self, pcm: bytes) -> list[bytes]:
        """``pcm`` cut into 20 ms binary frames, the last padded with silence."""
        self._need_connected("audio")
        size = self.frame_bytes
        out = [pcm[i : i + size] for i in range(0, len(pcm), size)]
        if out and len(out[-1]) < size:
            out[-1] += bytes(size - len(out[-1]))
        return out

    def dtmf(self, digit: str, duration_ms: int = 260) -> str:
        self._need_connected("dtmf")
        if len(digit) != 1 or digit not in DTMF_DIGITS:
            raise LocalProtocolError(f"DTMF digit {digit!r} is not one of 0-9 * # A-D")
        return _ENCODER.encode(
            {"event": "websocket:dtmf", "digit": digit, "duration": duration_ms}
        ).decode()

    def notify(self, payload: dict[str, Any]) -> str:
        """The echo of a server's ``notify``: the audio before it has played."""
        self._need_connected("notify")
        return _ENCODER.encode({"event": "websocket:notify", "payload": payload}).decode()

    def cleared(self) -> str:
        """The acknowledgement of a server's ``clear``."""
        self._need_connected("cleared")
        return '{"event":"websocket:cleared"}'

    def _need_connected(self, what: str) -> None:
        if not self._connected:
            raise LocalProtocolError(
                f"cannot send '{what}' before 'websocket:connected'", code="out_of_order"
            )

    # -- server → Vonage ------------------------------------------------------------

    def receive(self, frame: str | bytes) -> ServerEvent:
        """Parse one server frame; ``RemoteProtocolError`` if Vonage would not take it."""
        if isinstance(frame, bytes | bytearray | memoryview):
            if len(frame) != self.frame_bytes:
                raise RemoteProtocolError(
                    f"audio frame of {len(frame)} bytes is not one 20 ms frame "
                    f"({self.frame_bytes} bytes at {self.sample_rate} Hz)",
                    code="bad_audio_length",
                )
            return OutboundAudio(bytes(frame))
        check_frame_size(frame, _MAX_TEXT, "server text frame")
        try:
            msg = _DECODER.decode(frame)
        except msgspec.ValidationError as exc:
            raise RemoteProtocolError(
                f"not a Vonage command: {exc}", code="invalid_message"
            ) from None
        except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
            raise RemoteProtocolError(f"not valid JSON: {exc}", code="bad_json") from None
        if isinstance(msg, _NotifyMsg):
            return OutboundNotify(msg.payload)
        return _CLEAR

"""Test phones: the far end of each platform's socket, speaking its exact messages.

Each is a :class:`ConformancePhone` (the seam :mod:`parley.testing.conformance` drives),
built on the platform's sans-I/O caller module (``parley.protocols.*_caller``) or
its client protocol (the browser page's), so a phone sends what the provider sends
and refuses what the provider would refuse from a server. A phone is handed
PCM16 mono at its ``sample_rate`` to say and gives back what it heard as PCM16 at
its ``output_rate``; it keeps the server's checkpoints with the reply time they
close and, told how much of the reply has played, answers them the way its
platform does (and answers a clear the way its platform does).

A phone dials a :class:`Line` (a WebSocket, :class:`WebSocketLine`, for all but
WebRTC: ``parley.testing.webrtc_phone``). A third-party platform's test phone
implements the same eight members.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias, runtime_checkable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from parley.audio.g711 import ulaw_decode, ulaw_encode
from parley.protocols import plivo_caller, telnyx_caller, twilio_caller, vonage_caller
from parley.protocols.browser import (
    InterruptedMessage,
    PlaybackMessage,
    ResponseStartedMessage,
    StartMessage,
    StopMessage,
    encode_client_message,
    parse_server_frame,
)
from parley.protocols.phone_audio import l16_be_from_pcm16
from parley.protocols.telnyx import Codec

__all__ = [
    "BrowserTestPhone",
    "ConformancePhone",
    "Frame",
    "Heard",
    "Line",
    "LineClosed",
    "PlivoTestPhone",
    "TelnyxTestPhone",
    "TwilioTestPhone",
    "VonageTestPhone",
    "WebSocketLine",
]

Frame: TypeAlias = str | bytes  # a WebSocket frame: str is text, bytes binary


@dataclass(frozen=True, slots=True)
class Heard:
    """What one server frame meant to the phone."""

    audio: bytes = b""  # reply audio, PCM16 mono at ``output_rate``
    cleared: bool = False  # the server's barge-in (its clear, or the page's interrupted)
    answer: tuple[Frame, ...] = ()  # what the platform sends back at once (acks)


class LineClosed(Exception):
    """The server closed the line; ``code`` and ``reason`` as its close frame said."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed with {code}: {reason}")
        self.code, self.reason = code, reason


class Line(Protocol):
    """A phone's connection to the server: a WebSocket, or WebRTC's channel and tracks."""

    async def send(self, frame: Frame) -> None: ...

    async def recv(self) -> Frame:
        """The next server frame; :class:`LineClosed` once the server has closed."""
        ...

    async def close(self) -> None: ...


class WebSocketLine:
    """A WebSocket (``websockets``) as a :class:`Line`."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, url: str) -> WebSocketLine:
        return cls(await connect(url))

    async def send(self, frame: Frame) -> None:
        try:
            await self.ws.send(frame)
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def recv(self) -> Frame:
        try:
            return await self.ws.recv()
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def close(self) -> None:
        await self.ws.close()


def _closed(exc: ConnectionClosed) -> LineClosed:
    rcvd = exc.rcvd
    return LineClosed(rcvd.code if rcvd else None, rcvd.reason if rcvd else "")


@runtime_checkable
class ConformancePhone(Protocol):
    """The far end of one platform's WebSocket (see the module docstring)."""

    @property
    def kind(self) -> str:
        """The platform the server should record the call as."""
        ...

    @property
    def path(self) -> str:
        """The route the phone connects to (``/twilio/stream``, ``/phone/stream``, …)."""
        ...

    @property
    def sample_rate(self) -> int: ...

    @property
    def output_rate(self) -> int: ...

    async def dial(self, url: str) -> Line:
        """Connect to the server at ``url`` (``ws://host:port``)."""
        ...

    def opening(self) -> Sequence[Frame]:
        """The frames up to the call's start."""
        ...

    def speak(self, pcm: bytes) -> Sequence[Frame]:
        """Frames carrying ``pcm`` (20 ms of PCM16 mono at ``sample_rate``)."""
        ...

    def hear(self, frame: Frame) -> Heard:
        """Parse one server frame (raise ``RemoteProtocolError`` if the platform would)."""
        ...

    def played(self, ms: float) -> Sequence[Frame]:
        """The caller has heard ``ms`` of the current reply: the platform's reports."""
        ...

    def malformed(self) -> Frame:
        """A frame the platform's protocol forbids (after the opening)."""
        ...

    def hangup(self) -> Sequence[Frame]:
        """The frames of a hang-up (none where closing the socket is the hang-up)."""
        ...


class _Checkpoints:
    """Named checkpoints with the reply time (ms) each one closes."""

    def __init__(self) -> None:
        self.reply_ms = 0.0
        self.pending: list[tuple[str, float]] = []

    def audio(self, ms: float) -> None:
        self.reply_ms += ms

    def add(self, name: str) -> None:
        self.pending.append((name, self.reply_ms))

    def upto(self, ms: float) -> list[str]:
        due = [name for name, at in self.pending if at <= ms]
        self.pending = [(n, at) for n, at in self.pending if at > ms]
        return due

    def flush(self) -> list[str]:
        names = [name for name, _ in self.pending]
        self.pending = []
        self.reply_ms = 0.0
        return names


def _text(frame: bytes) -> str:
    return frame.decode()


class TwilioTestPhone:
    """Twilio Media Streams (µ-law 8 kHz); marks echo when played, all at once on clear."""

    kind = "twilio"
    sample_rate = output_rate = 8000

    def __init__(self, *, path: str = "/twilio/stream", parameters: dict[str, str] | None = None):
        self.path = path
        self.caller = twilio_caller.TwilioCaller(custom_parameters=parameters)
        self.marks = _Checkpoints()

    async def dial(self, url: str) -> Line:
        return await WebSocketLine.open(url + self.path)

    def opening(self) -> Sequence[Frame]:
        return [_text(self.caller.connected()), _text(self.caller.start())]

    def speak(self, pcm: bytes) -> Sequence[Frame]:
        return [_text(self.caller.media(ulaw_encode(pcm)))]

    def hear(self, frame: Frame) -> Heard:
        event = self.caller.receive(frame)
        if isinstance(event, twilio_caller.OutboundMedia):
            self.marks.audio(len(event.payload) / 8)
            return Heard(audio=ulaw_decode(event.payload))
        if isinstance(event, twilio_caller.OutboundMark):
            self.marks.add(event.name)
            return Heard()
        return Heard(cleared=True, answer=tuple(self._echo(self.marks.flush())))

    def _echo(self, names: list[str]) -> list[Frame]:
        return [_text(self.caller.mark(n)) for n in names]

    def played(self, ms: float) -> Sequence[Frame]:
        return self._echo(self.marks.upto(ms))

    def malformed(self) -> Frame:
        return '{"event":"media","media":{"payload":"%%%"}'  # truncated JSON

    def hangup(self) -> Sequence[Frame]:
        return [_text(self.caller.stop())]


class TelnyxTestPhone:
    """Telnyx media streaming, PCMU 8 kHz by default (or L16 16 kHz); marks as Twilio's."""

    kind = "telnyx"

    def __init__(
        self,
        *,
        path: str = "/telnyx/stream",
        parameters: dict[str, str] | None = None,
        l16: bool = False,
    ) -> None:
        self.path = path
        codec: Codec = "L16" if l16 else "PCMU"
        rate = 16000 if l16 else 8000
        self.caller = telnyx_caller.TelnyxCaller(
            encoding=codec,
            sample_rate=rate,
            bidirectional_codec=codec,
            custom_parameters=parameters,
        )
        self.sample_rate = self.output_rate = rate
        self._l16 = l16
        self.marks = _Checkpoints()

    async def dial(self, url: str) -> Line:
        return await WebSocketLine.open(url + self.path)

    def opening(self) -> Sequence[Frame]:
        return [_text(self.caller.connected()), _text(self.caller.start())]

    def speak(self, pcm: bytes) -> Sequence[Frame]:
        if self._l16:
            return [_text(self.caller.media(l16_be_from_pcm16(pcm)))]
        return [_text(self.caller.media(ulaw_encode(pcm)))]

    def hear(self, frame: Frame) -> Heard:
        event = self.caller.receive(frame)
        if isinstance(event, telnyx_caller.OutboundMedia):
            audio = self.caller.audio(event)
            self.marks.audio(self.caller.output_format.duration_ms(len(audio)))
            return Heard(audio=audio if self._l16 else ulaw_decode(audio))
        if isinstance(event, telnyx_caller.OutboundMark):
            self.marks.add(event.name)
            return Heard()
        return Heard(cleared=True, answer=tuple(self._echo(self.marks.flush())))

    def _echo(self, names: list[str]) -> list[Frame]:
        return [_text(self.caller.mark(n)) for n in names]

    def played(self, ms: float) -> Sequence[Frame]:
        return self._echo(self.marks.upto(ms))

    def malformed(self) -> Frame:
        return f'{{"event":"media","stream_id":"{self.caller.stream_id}","media":7}}'

    def hangup(self) -> Sequence[Frame]:
        return [_text(self.caller.stop())]


class PlivoTestPhone:
    """Plivo audio streaming, µ-law 8 kHz; ``playedStream`` only for audio that played,
    ``clearedAudio`` after a clear (the flushed checkpoints never come back)."""

    kind = "plivo"
    sample_rate = output_rate = 8000

    def __init__(self, *, path: str = "/plivo/stream", extra_headers: str = "") -> None:
        self.path = path
        self.caller = plivo_caller.PlivoCaller(extra_headers=extra_headers)
        self.marks = _Checkpoints()

    async def dial(self, url: str) -> Line:
        return await WebSocketLine.open(url + self.path)

    def opening(self) -> Sequence[Frame]:
        return [_text(self.caller.start())]

    def speak(self, pcm: bytes) -> Sequence[Frame]:
        return [_text(self.caller.media(ulaw_encode(pcm)))]

    def hear(self, frame: Frame) -> Heard:
        event = self.caller.receive(frame)
        if isinstance(event, plivo_caller.OutboundMedia):
            self.marks.audio(len(event.payload) / 8)
            return Heard(audio=ulaw_decode(event.payload))
        if isinstance(event, plivo_caller.OutboundCheckpoint):
            self.marks.add(event.name)
            return Heard()
        self.marks.flush()
        return Heard(cleared=True, answer=(_text(self.caller.cleared_audio()),))

    def played(self, ms: float) -> Sequence[Frame]:
        return [_text(self.caller.played_stream(n)) for n in self.marks.upto(ms)]

    def malformed(self) -> Frame:
        return "[1, 2, 3]"  # JSON, but not an object

    def hangup(self) -> Sequence[Frame]:
        return [_text(self.caller.stop())]


class VonageTestPhone:
    """The Vonage Voice API WebSocket: binary L16 16 kHz frames of exactly 20 ms both
    ways; ``websocket:notify`` echoes, ``websocket:cleared`` after a clear. A hang-up
    is the socket closing."""

    kind = "vonage"

    def __init__(
        self,
        *,
        path: str = "/vonage/stream",
        headers: dict[str, str] | None = None,
        sample_rate: int = 16000,
    ) -> None:
        self.path = path
        self.caller = vonage_caller.VonageCaller(
            sample_rate=sample_rate, headers=dict(headers or {})
        )
        self.sample_rate = self.output_rate = sample_rate
        self.marks = _Checkpoints()

    async def dial(self, url: str) -> Line:
        return await WebSocketLine.open(url + self.path)

    def opening(self) -> Sequence[Frame]:
        return [self.caller.connected()]

    def speak(self, pcm: bytes) -> Sequence[Frame]:
        return [self.caller.audio(pcm)]

    def hear(self, frame: Frame) -> Heard:
        event = self.caller.receive(frame)
        if isinstance(event, vonage_caller.OutboundAudio):
            self.marks.audio(len(event.payload) / 2 / self.sample_rate * 1000)
            return Heard(audio=event.payload)
        if isinstance(event, vonage_caller.OutboundNotify):
            name = event.payload.get("name")
            self.marks.add(name if isinstance(name, str) else "")
            return Heard()
        self.marks.flush()
        return Heard(cleared=True, answer=(self.caller.cleared(),))

    def played(self, ms: float) -> Sequence[Frame]:
        return [self.caller.notify({"name": n}) for n in self.marks.upto(ms)]

    def malformed(self) -> Frame:
        return b"\x01\x02\x03"  # audio that is not whole 16-bit samples

    def hangup(self) -> Sequence[Frame]:
        return []


class BrowserTestPhone:
    """The talk page's protocol (docs/protocol.md): PCM16 24 kHz binary frames, JSON
    control; ``playback`` reports where it stands, ``interrupted`` is the barge-in."""

    kind = "browser"
    sample_rate = output_rate = 24000

    def __init__(self, *, path: str = "/ws/audio") -> None:
        self.path = path
        self._response = ""

    async def dial(self, url: str) -> Line:
        return await WebSocketLine.open(url + self.path)

    def opening(self) -> Sequence[Frame]:
        return [encode_client_message(StartMessage())]

    def speak(self, pcm: bytes) -> Sequence[Frame]:
        return [pcm]

    def hear(self, frame: Frame) -> Heard:
        if isinstance(frame, bytes):
            return Heard(audio=frame)
        msg = parse_server_frame(frame)
        if isinstance(msg, ResponseStartedMessage):
            self._response = msg.response_id
        elif isinstance(msg, InterruptedMessage):
            return Heard(cleared=True)
        return Heard()

    def played(self, ms: float) -> Sequence[Frame]:
        if not self._response:
            return []
        return [encode_client_message(PlaybackMessage(self._response, ms))]

    def malformed(self) -> Frame:
        return b"\x00" * 961  # an odd number of bytes of PCM16

    def hangup(self) -> Sequence[Frame]:
        return [encode_client_message(StopMessage())]

"""A browser over WebRTC (aiortc): Opus audio by RTP, the page's protocol on a data channel.

The talk page can call over WebRTC instead of its WebSocket: the microphone goes
out as an Opus track at 48 kHz with the browser's own echo cancellation, noise
suppression and gain control, the reply comes back as a track the browser plays
through its jitter buffer, and the control messages of docs/protocol.md (``start``,
``ready``, ``transcript``, ``response_*``, ``interrupted``, ``metrics``, …) travel on
a data channel named ``parley``. Signalling is one REST call, ``POST /webrtc/offer``
(``parley.server.webrtc``): the page's offer in, our answer out (no trickle ICE:
both sides gather before they answer).

The conversation core does not change: the data channel is a
:class:`~parley.transports.socket.WireSocket` (:class:`DataChannelSocket`) whose
frames are the channel's messages, and the decoded microphone audio (PCM16 mono at
48 kHz, one ``av`` resampler per call: Opus stereo → mono) is handed out on it as
binary frames, exactly the browser protocol's audio frames — so the stream is the
page's :class:`~parley.transports.browser.BrowserCallStream` with two differences
(:class:`WebRTCCallStream`): reply audio goes to the outbound track, and a
barge-in drops what the track has not sent yet.

Playback truth: the page cannot tell what it played of a WebRTC track (no worklet
to count samples), so the outbound track reports what it has handed to the Opus
encoder, every 100 ms of a reply and at its end, as the protocol's ``playback``
messages. The audio the caller has not yet heard is then only what is in flight and
in the browser's jitter buffer (tens of ms): barge-in truncation is that accurate.

aiortc (the ``webrtc`` extra) is imported when a call is set up, not with this
module, so a server without it still starts (``POST /webrtc/offer`` says what is
missing).
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from parley.audio.format import AudioFormat
from parley.conversation.state import ConversationState
from parley.conversation.stream import Inbound
from parley.errors import ConfigError, RemoteProtocolError
from parley.events import Event
from parley.protocols.browser import PlaybackMessage, encode_client_message
from parley.transports.browser import BrowserCallStream
from parley.transports.platform import Accept, Caller, Connection, Refusal
from parley.transports.playout import PlayoutBuffer
from parley.transports.socket import CLOSE_NORMAL, WireSocket

if TYPE_CHECKING:
    from aiortc import RTCPeerConnection

__all__ = [
    "RATE",
    "DataChannelSocket",
    "WebRTCCallStream",
    "WebRTCPlatform",
    "answer_offer",
    "restrict_ice_addresses",
]

#: The rate of both tracks (Opus runs at 48 kHz).
RATE: Final = 48000
_FRAME_SAMPLES: Final = RATE // 50  # 20 ms
_FRAME_BYTES: Final = _FRAME_SAMPLES * 2
_MAX_AUDIO_FRAMES: Final = 100  # 2 s of microphone audio waiting: newer frames are dropped
_MAX_CONTROL: Final = 256
_CHANNEL: Final = "parley"


def _need_aiortc() -> Any:
    try:
        import aiortc
    except ImportError:
        raise ConfigError(
            "WebRTC needs aiortc: pip install 'parley-voice[webrtc]'", field="webrtc"
        ) from None
    return aiortc


_ice_addresses: tuple[str, ...] | None = None


def restrict_ice_addresses(addresses: Sequence[str] | None) -> None:
    """Offer ICE host candidates on ``addresses`` only (None: every interface, as aioice
    does by default; it never offers loopback). Process-wide: aioice has no
    per-connection address list, so its address lookup is wrapped once. For a test on
    one machine, ``["127.0.0.1"]`` keeps the media on loopback."""
    global _ice_addresses
    import aioice.ice

    original = getattr(aioice.ice, "_parley_original_hosts", None)
    if original is None:
        original = aioice.ice.get_host_addresses
        aioice.ice._parley_original_hosts = original  # type: ignore[attr-defined]

        def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            if _ice_addresses is None:
                return list(original(use_ipv4, use_ipv6))
            return [
                a for a in _ice_addresses if (":" in a and use_ipv6) or (":" not in a and use_ipv4)
            ]

        aioice.ice.get_host_addresses = host_addresses
    _ice_addresses = tuple(addresses) if addresses is not None else None


class DataChannelSocket:
    """The ``parley`` data channel as a :class:`WireSocket`, with the microphone track's
    audio handed out as binary frames (dropped until the page's ``start`` is read)."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        self.pc = pc
        self.channel: Any = None
        self.track: Any = None  # the reply track (see _reply_track)
        self.audio_enabled = False  # set once the handshake read ``start``
        self.dropped_audio = 0
        self._items: deque[str | bytes | None] = deque()
        self._audio = 0
        self._waiting = asyncio.Event()
        self._closed = False
        self._reader: asyncio.Future[None] | None = None

    # -- wiring (called from aiortc's events) ----------------------------------------

    def attach_channel(self, channel: Any) -> None:
        if channel.label != _CHANNEL or self.channel is not None:
            channel.close()  # not ours: one control channel per call
            return
        self.channel = channel
        channel.on("message", self._on_message)
        channel.on("close", self._hang_up)

    def attach_microphone(self, track: Any) -> None:
        if track.kind == "audio" and self._reader is None:
            self._reader = asyncio.ensure_future(self._read(track))

    def _on_message(self, message: str | bytes) -> None:
        if len(self._items) >= _MAX_CONTROL + _MAX_AUDIO_FRAMES:
            self._hang_up()  # a peer flooding its control channel
            return
        self._put(message if isinstance(message, str) else bytes(message))

    def _put(self, item: str | bytes | None) -> None:
        self._items.append(item)
        self._waiting.set()

    def report(self, response_id: str, played_ms: float, done: bool) -> None:
        """The reply track's progress, as the page's ``playback`` message would say it."""
        if not self._closed:
            self._put(encode_client_message(PlaybackMessage(response_id, played_ms, done)))

    def _hang_up(self) -> None:
        if not self._closed:
            self._put(None)

    async def _read(self, track: Any) -> None:
        import av
        from aiortc.mediastreams import MediaStreamError

        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        try:
            while True:
                frame = await track.recv()
                if not self.audio_enabled or self._closed:
                    continue
                for out in resampler.resample(frame):
                    if self._audio >= _MAX_AUDIO_FRAMES:
                        self.dropped_audio += 1
                        continue
                    self._audio += 1
                    self._put(out.to_ndarray().tobytes())
        except MediaStreamError:
            self._hang_up()  # the page's track ended

    # -- WireSocket -------------------------------------------------------------------

    async def receive(self) -> str | bytes | None:
        while not self._items:
            if self._closed:
                return None
            self._waiting.clear()
            await self._waiting.wait()
        item = self._items.popleft()
        if item is None:
            self._closed = True
        elif isinstance(item, bytes):
            self._audio -= 1
        return item

    async def send_text(self, data: str) -> None:
        channel = self.channel
        if channel is not None and channel.readyState == "open" and not self._closed:
            channel.send(data)

    async def send_bytes(self, data: bytes) -> None:
        return  # audio goes by RTP (WebRTCCallStream.send_audio), never on the channel

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if self._closed and self.pc.connectionState == "closed":
            return
        self._closed = True
        self._put(None)
        if self._reader is not None:
            self._reader.cancel()
        await self.pc.close()


def _reply_track(socket: DataChannelSocket) -> Any:
    """The outbound track: 20 ms frames paced in real time, silence between replies."""
    _need_aiortc()
    import av
    from aiortc import MediaStreamTrack
    from aiortc.mediastreams import MediaStreamError

    class ReplyTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.playout = PlayoutBuffer(RATE, socket.report)
            self._start: float | None = None
            self._pts = 0
            self._time_base = fractions.Fraction(1, RATE)
            self._silence = bytes(_FRAME_BYTES)

        def push(self, pcm: bytes, response_id: str) -> None:
            self.playout.push(pcm, response_id)

        def clear(self) -> None:
            self.playout.clear()

        async def recv(self) -> Any:
            if self.readyState != "live":
                raise MediaStreamError
            now = time.monotonic()
            if self._start is None:
                self._start = now
            else:
                wait = self._start + self._pts / RATE - now
                if wait > 0:
                    await asyncio.sleep(wait)
            chunk = self.playout.take(_FRAME_BYTES) or self._silence
            samples = np.frombuffer(chunk, dtype="<i2").reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = RATE
            frame.pts = self._pts
            frame.time_base = self._time_base
            self._pts += _FRAME_SAMPLES
            return frame

    return ReplyTrack()


async def answer_offer(sdp: str) -> tuple[str, DataChannelSocket]:
    """Answer a page's offer: the answer's SDP (ICE gathered) and the call's socket.

    ``ValueError`` for an offer that is not one (aiortc's own message), ``ConfigError``
    without aiortc."""
    aiortc = _need_aiortc()
    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    socket = DataChannelSocket(pc)
    socket.track = _reply_track(socket)
    pc.on("datachannel", socket.attach_channel)
    pc.on("track", socket.attach_microphone)

    def changed() -> None:
        if pc.connectionState in ("failed", "closed"):
            socket._hang_up()

    pc.on("connectionstatechange", changed)

    try:
        await pc.setRemoteDescription(aiortc.RTCSessionDescription(sdp=sdp, type="offer"))
        if not any(t.kind == "audio" for t in pc.getTransceivers()):
            raise ValueError("the offer has no audio")
        pc.addTrack(socket.track)
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
    except BaseException:
        await pc.close()
        raise
    return pc.localDescription.sdp, socket


class WebRTCCallStream:
    """The page's protocol over a :class:`DataChannelSocket`; audio by RTP."""

    def __init__(self, socket: DataChannelSocket) -> None:
        self.socket = socket
        self.browser = BrowserCallStream(socket)

    @property
    def closed(self) -> bool:
        return self.browser.closed

    @property
    def input_format(self) -> AudioFormat:
        return AudioFormat("pcm16", RATE)

    @property
    def output_format(self) -> AudioFormat:
        return AudioFormat("pcm16", RATE)

    async def handshake(self) -> Caller | None:
        caller = await self.browser.handshake()
        start = self.browser.start
        if caller is not None and start is not None and start.format.sample_rate != RATE:
            message = f"a WebRTC call's audio is {RATE} Hz; start says {start.format.sample_rate}"
            await self.browser.reject("unsupported_format", message, 1007)
            raise RemoteProtocolError(message, code="unsupported_format")
        self.socket.audio_enabled = caller is not None
        return caller

    def inbound(self) -> AsyncIterator[Inbound]:
        return self.browser.inbound()

    async def send_audio(self, audio: bytes, *, response_id: str, text: str = "") -> None:
        if not self.browser.closed and audio:
            self.socket.track.push(audio, response_id)

    async def clear(self, response_id: str) -> None:
        self.socket.track.clear()  # the page is told by the Interrupted event (show)

    async def ready(self, call_id: str) -> None:
        await self.browser.ready(call_id)

    async def reject(self, code: str, message: str, close_code: int) -> None:
        await self.browser.reject(code, message, close_code)

    async def show(self, event: Event, state: ConversationState) -> None:
        await self.browser.show(event, state)

    async def close(self) -> None:
        await self.browser.close()

    async def end(self, code: int, reason: str) -> None:
        await self.browser.end(code, reason)


class WebRTCPlatform:
    """WebRTC calls: no WebSocket route; ``POST /webrtc/offer`` sets each one up and
    hands its :class:`DataChannelSocket` to the switchboard."""

    name = "webrtc"
    routes: tuple[str, ...] = ()

    def admit(self, connection: Connection) -> Accept | Refusal:
        return Accept()

    def open(self, socket: WireSocket, connection: Connection) -> WebRTCCallStream:
        if not isinstance(socket, DataChannelSocket):
            raise TypeError("a WebRTC call runs over the DataChannelSocket of its offer")
        return WebRTCCallStream(socket)

"""A WebRTC test phone (aiortc): the talk page's side of a WebRTC call, in Python.

:class:`WebRTCTestPhone` is a :class:`~parley.testing.phones.ConformancePhone`:
``dial`` posts an offer to ``/webrtc/offer`` and waits for the ``parley`` data
channel; its :class:`RTCLine` sends text frames on the channel and audio (PCM16 mono
48 kHz) into a :class:`Microphone` track paced in real time, and receives the
channel's messages as text frames and the reply track's audible 20 ms frames as
binary ones. WebRTC has no close frame: when the server ends a call after a fatal
``error`` message (a malformed frame), the line reports the close code the
WebSocket would have carried (1007/1008) and that error as the reason.

Needs the ``webrtc`` extra (aiortc); ICE is kept to ``ice_addresses`` (loopback by
default, :func:`parley.transports.webrtc.restrict_ice_addresses`, process-wide).
"""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from collections.abc import Sequence
from typing import Any

import av
import httpx
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from parley.errors import RemoteProtocolError
from parley.protocols.browser import (
    ErrorMessage,
    InterruptedMessage,
    PCMFormat,
    StartMessage,
    StopMessage,
    encode_client_message,
    parse_server_frame,
)
from parley.testing.phones import Frame, Heard, Line, LineClosed
from parley.transports.socket import close_code_for
from parley.transports.webrtc import RATE, restrict_ice_addresses

__all__ = ["Microphone", "RTCLine", "WebRTCTestPhone"]

_FRAME = RATE // 50


class Microphone(MediaStreamTrack):
    """A 48 kHz mono track: the queued PCM, then silence, paced in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.pcm = bytearray()
        self.sent = asyncio.Event()
        self._pts = 0
        self._t0: float | None = None

    def push(self, pcm: bytes) -> None:
        """Queue ``pcm``; silence is dropped while more than 60 ms wait (a caller that
        sends faster than real time must not push its speech seconds behind)."""
        if len(self.pcm) > 2 * RATE * 60 // 1000 and not any(pcm):
            return
        self.sent.clear()
        self.pcm += pcm

    async def say(self, pcm: bytes) -> None:
        self.push(pcm)
        await self.sent.wait()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._t0 is None:
            self._t0 = time.monotonic()
        await asyncio.sleep(max(0.0, self._t0 + self._pts / RATE - time.monotonic()))
        chunk = bytes(self.pcm[: 2 * _FRAME]).ljust(2 * _FRAME, b"\0")
        del self.pcm[: 2 * _FRAME]
        if not self.pcm:
            self.sent.set()
        frame = av.AudioFrame.from_ndarray(
            np.frombuffer(chunk, "<i2").reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = RATE, self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += _FRAME
        return frame


class RTCLine:
    """One WebRTC call as a :class:`~parley.testing.phones.Line`."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.mic = Microphone()
        self.pc.addTrack(self.mic)
        self.channel = self.pc.createDataChannel("parley")
        self._items: asyncio.Queue[Frame | None] = asyncio.Queue()
        self._open = asyncio.Event()
        self._fatal: ErrorMessage | None = None
        self._reader: asyncio.Future[None] | None = None
        self.channel.on("open", self._open.set)
        self.channel.on("message", self._on_message)
        self.channel.on("close", lambda: self._items.put_nowait(None))
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    def _on_message(self, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode()
        msg = json.loads(text)
        if msg.get("type") == "error" and msg.get("fatal"):
            self._fatal = ErrorMessage(msg["code"], msg["message"], True)
        self._items.put_nowait(text)

    def _on_state(self) -> None:
        if self.pc.connectionState in ("closed", "failed"):
            self._items.put_nowait(None)

    def _on_track(self, track: Any) -> None:
        async def read() -> None:
            try:
                while True:
                    frame = await track.recv()
                    mono = frame.to_ndarray().reshape(-1, 2)[:, 0].astype("<i2")
                    self._items.put_nowait(mono.tobytes())
            except MediaStreamError:
                return

        self._reader = asyncio.ensure_future(read())

    async def dial(self, url: str) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        base = url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
        async with httpx.AsyncClient() as client:
            r = await client.post(
                base + "/webrtc/offer", json={"sdp": self.pc.localDescription.sdp, "type": "offer"}
            )
        if r.status_code != 200:
            await self.pc.close()
            raise LineClosed(None, f"POST /webrtc/offer: HTTP {r.status_code} {r.text}")
        await self.pc.setRemoteDescription(RTCSessionDescription(**r.json()))
        await asyncio.wait_for(self._open.wait(), 15)

    async def send(self, frame: Frame) -> None:
        if isinstance(frame, bytes):
            self.mic.push(frame)
        elif self.channel.readyState == "open":
            self.channel.send(frame)
        else:
            raise self._closed()

    async def recv(self) -> Frame:
        item = await self._items.get()
        if item is None:
            self._items.put_nowait(None)  # stays closed
            raise self._closed()
        return item

    def _closed(self) -> LineClosed:
        fatal = self._fatal
        if fatal is None:
            return LineClosed(1000, "")
        code = close_code_for(RemoteProtocolError(fatal.message, code=fatal.code))
        return LineClosed(code, f"{fatal.code}: {fatal.message}")

    async def close(self) -> None:
        await self.pc.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


class WebRTCTestPhone:
    """The talk page over WebRTC: control on the data channel, Opus audio both ways;
    the server reports playback itself, so ``played`` sends nothing."""

    kind = "webrtc"
    path = "/webrtc/offer"
    sample_rate = output_rate = RATE

    def __init__(self, *, ice_addresses: Sequence[str] | None = ("127.0.0.1",)) -> None:
        self._ice = ice_addresses

    async def dial(self, url: str) -> Line:
        if self._ice is not None:
            restrict_ice_addresses(self._ice)
        line = RTCLine()
        await line.dial(url)
        return line

    def opening(self) -> Sequence[Frame]:
        return [encode_client_message(StartMessage(format=PCMFormat(sample_rate=RATE)))]

    def speak(self, pcm: bytes) -> Sequence[Frame]:
        return [pcm]

    def hear(self, frame: Frame) -> Heard:
        if isinstance(frame, bytes):
            loud = np.abs(np.frombuffer(frame, "<i2")).max(initial=0) > 500
            return Heard(audio=frame if loud else b"")  # the track is silent between replies
        msg = parse_server_frame(frame)
        return Heard(cleared=isinstance(msg, InterruptedMessage))

    def played(self, ms: float) -> Sequence[Frame]:
        return []

    def malformed(self) -> Frame:
        return "{this is not json"

    def hangup(self) -> Sequence[Frame]:
        return [encode_client_message(StopMessage())]

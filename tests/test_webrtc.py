"""WebRTC calls (aiortc) with a Python peer: ``POST /webrtc/offer`` signalling, Opus over
UDP on loopback only, the page's protocol on the ``parley`` data channel, the reply
heard on the track, barge-in truncating the reply, the call's record and its end.
(The talk page in Chromium: tests/test_talk_page_webrtc.py.)"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from parley.events import Role
from parley.server.calls import CallStatus
from parley.testing.conformance import REPLY, conformance_app
from parley.testing.fakes import silence, tone
from parley.testing.webrtc_phone import Microphone
from parley.transports.webrtc import restrict_ice_addresses
from servers import serve_app

RATE = 48000


class Peer:
    """The page's side of a WebRTC call, in Python."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.mic = Microphone()
        self.pc.addTrack(self.mic)
        self.channel = self.pc.createDataChannel("parley")
        self.messages: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.heard_ms = 0.0
        self.pc.on("track", self._on_track)
        self.channel.on("message", self._on_message)
        self.channel.on(
            "open",
            lambda: self.channel.send(
                json.dumps({"type": "start", "format": {"sample_rate": RATE}})
            ),
        )
        self._reader: asyncio.Future[None] | None = None

    def _on_message(self, message: str) -> None:
        self.messages.append(json.loads(message))
        self.changed.set()

    def _on_track(self, track: Any) -> None:
        async def read() -> None:
            try:
                while True:
                    frame = await track.recv()
                    if np.abs(frame.to_ndarray()).max() > 500:  # reply audio, not silence
                        self.heard_ms += frame.samples / RATE * 1000
                        self.changed.set()
            except MediaStreamError:
                return

        self._reader = asyncio.ensure_future(read())

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def until(self, check: Any, within_s: float = 15.0) -> None:
        async with asyncio.timeout(within_s):
            while not check():
                self.changed.clear()
                await self.changed.wait()

    def types(self) -> list[str]:
        return [m["type"] for m in self.messages]

    async def close(self) -> None:
        await self.pc.close()
        if self._reader is not None:
            await self._reader


@pytest.fixture(autouse=True)
def loopback_ice() -> Any:
    restrict_ice_addresses(["127.0.0.1"])  # this process's client and server both
    yield
    restrict_ice_addresses(None)


async def test_a_webrtc_call_transcribes_answers_and_barges_in() -> None:
    app = conformance_app(webrtc_ice_addresses=["127.0.0.1"])
    async with serve_app(app) as server, httpx.AsyncClient() as client:
        created = (await client.post(server.url + "/conversations", json={})).json()
        peer = Peer()
        r = await client.post(
            server.url + "/webrtc/offer",
            json={"sdp": await peer.offer(), "type": "offer", "conversation_id": created["id"]},
        )
        assert r.status_code == 200, r.text
        answer = r.json()
        candidates = [x for x in answer["sdp"].splitlines() if x.startswith("a=candidate")]
        assert candidates and all(" 127.0.0.1 " in c for c in candidates)
        offered = [x for x in peer.pc.localDescription.sdp.splitlines() if x.startswith("a=cand")]
        assert offered and all(" 127.0.0.1 " in c for c in offered)
        assert "opus/48000/2" in answer["sdp"]
        await peer.pc.setRemoteDescription(RTCSessionDescription(**answer))

        await peer.until(lambda: "ready" in peer.types())
        assert peer.messages[0]["session_id"] == created["id"]
        await peer.mic.say(tone(600, RATE) + silence(900, RATE))
        # The transcript and the reply's text on the channel, its audio on the track.
        await peer.until(lambda: "response_started" in peer.types() and peer.heard_ms > 500)
        user = next(m for m in peer.messages if m["type"] == "transcript")
        assert (user["role"], user["text"]) == ("user", "hello there")
        # Barge-in: the caller talks over the reply.
        await peer.mic.say(tone(600, RATE))
        await peer.until(lambda: "interrupted" in peer.types())
        cut = next(m for m in peer.messages if m["type"] == "interrupted")
        assert 400 < cut["played_ms"] < 3000
        assert REPLY.startswith(cut["played_text"]) and cut["played_text"] != REPLY

        record = app.calls.get(created["id"])
        assert record is not None and record.kind == "webrtc"
        assert record.status is CallStatus.LIVE
        assert record.journal is not None
        reply = next(t for t in record.journal.transcript if t.role is Role.ASSISTANT)
        assert reply.interrupted and reply.text == cut["played_text"]
        await peer.close()
        await asyncio.wait_for(record.finished.wait(), 10)
        assert record.status is CallStatus.ENDED


async def test_offers_that_cannot_be_answered() -> None:
    app = conformance_app()
    async with serve_app(app) as server, httpx.AsyncClient() as client:
        unknown = await client.post(
            server.url + "/webrtc/offer", json={"sdp": "v=0", "conversation_id": "conv_nope"}
        )
        garbage = await client.post(server.url + "/webrtc/offer", json={"sdp": "v=0\r\nnonsense"})
        app.draining = True
        draining = await client.post(server.url + "/webrtc/offer", json={"sdp": "v=0"})
    assert unknown.status_code == 404
    assert garbage.status_code == 400, garbage.text
    assert draining.status_code == 503
    assert not app.calls.records()

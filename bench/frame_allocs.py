"""Memory allocated per 20 ms frame on the phone call's hot path, counted with tracemalloc.

    python bench/frame_allocs.py            # 2,000 frames after a 200-frame warm-up

One real call in process: :class:`parley.transports.twilio.TwilioCallStream` over an
in-memory WireSocket, a :class:`parley.conversation.Conversation` and the loopback
engine in the line's µ-law (what ``parley serve --engine loopback`` runs per call).
Each frame is Twilio's real ``media`` JSON; the caller side echoes marks. Measured
over the steady state:

* ``blocks_per_frame``: memory blocks allocated and *kept* per frame (a leak would
  show here; a bounded call keeps nothing per frame once warm),
* ``retained_bytes_per_frame``: the same in bytes,
* ``peak_bytes_per_frame``: the largest transient footprint of one frame (everything
  it allocates at once: the decoded frame, the payload, the event, the JSON out).

Prints one JSON line. ``tests/test_frame_allocs.py`` holds the bounds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import tracemalloc
from collections import deque
from typing import Any

from parley.conversation.session import Conversation
from parley.engines.loopback import LoopbackEngine
from parley.transports.twilio import TwilioCallStream

SID = "MZ" + "0" * 32


class Wire:
    """The server's side of a socket in memory; the test is the caller."""

    def __init__(self) -> None:
        self.incoming: deque[str] = deque()
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.sent = 0
        self.marks: list[str] = []

    async def receive(self) -> str | bytes | None:
        while not self.incoming:
            self.wake.clear()
            self.idle.set()
            await self.wake.wait()
        return self.incoming.popleft()

    async def send_text(self, data: str) -> None:
        self.sent += 1
        if '"mark"' in data:
            self.marks.append(json.loads(data)["mark"]["name"])

    async def send_bytes(self, data: bytes) -> None:
        raise AssertionError("Twilio frames are text")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.incoming.append("")  # wakes the reader; the stream is closed by then

    def put(self, frame: str) -> None:
        self.incoming.append(frame)
        self.idle.clear()
        self.wake.set()


def media_frames(n: int) -> list[str]:
    payload = base64.b64encode(bytes(range(160))).decode()
    return [
        json.dumps(
            {
                "event": "media",
                "sequenceNumber": str(i + 2),
                "media": {
                    "track": "inbound",
                    "chunk": str(i + 1),
                    "timestamp": str(20 * i),
                    "payload": payload,
                },
                "streamSid": SID,
            }
        )
        for i in range(n)
    ]


async def measure(frames: int = 2000, warmup: int = 200) -> dict[str, Any]:
    wire = Wire()
    stream = TwilioCallStream(wire)
    start = {"streamSid": SID, "callSid": "CA1", "accountSid": "AC1", "tracks": ["inbound"]}
    wire.put(json.dumps({"event": "start", "start": start, "streamSid": SID}))
    assert await stream.handshake() is not None
    conversation = Conversation(stream, LoopbackEngine(8000, encoding="ulaw"))
    call = asyncio.create_task(conversation.run())
    inbound = media_frames(frames + warmup)

    async def step(frame: str) -> None:
        for name in wire.marks:  # the caller echoes the marks (as played at once)
            wire.put(json.dumps({"event": "mark", "streamSid": SID, "mark": {"name": name}}))
        wire.marks.clear()
        wire.put(frame)
        await wire.idle.wait()
        for _ in range(4):  # the event pump sends the echo
            await asyncio.sleep(0)

    for frame in inbound[:warmup]:
        await step(frame)
    tracemalloc.start()
    peak = 0
    before_blocks = _blocks()
    before, _ = tracemalloc.get_traced_memory()
    sent_before = wire.sent
    for frame in inbound[warmup:]:
        current, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        await step(frame)
        peak = max(peak, tracemalloc.get_traced_memory()[1] - current)
    after, _ = tracemalloc.get_traced_memory()
    after_blocks = _blocks()
    tracemalloc.stop()
    sent = wire.sent - sent_before
    wire.put(json.dumps({"event": "stop", "streamSid": SID}))
    await asyncio.wait_for(call, 5)
    return {
        "bench": "frame_allocs",
        "frames": frames,
        "messages_sent_per_frame": round(sent / frames, 3),
        "blocks_per_frame": round((after_blocks - before_blocks) / frames, 3),
        "retained_bytes_per_frame": round((after - before) / frames, 1),
        "peak_bytes_per_frame": peak,
    }


def _blocks() -> int:
    snapshot = tracemalloc.take_snapshot()
    return sum(stat.count for stat in snapshot.statistics("filename"))


def main() -> None:
    print(json.dumps(asyncio.run(measure())))


if __name__ == "__main__":
    main()

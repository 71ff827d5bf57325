"""Hostile connections over real sockets (the cases of ``parley.testing.fuzz``), for
tests/test_abuse_sockets.py: each case is one WebSocket that sends its frames and
reports how the server closed it."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import websockets
from websockets.frames import Close

from parley.testing.fuzz import CaseMaker, Frame

#: A close the server chose must say why, as ``slug: message`` (or a bare slug).
TYPED_REASON = re.compile(r"^[a-z][a-z0-9_]*(:|$)")


@dataclass
class Tally:
    connections: int = 0
    frames: int = 0
    closes: Counter[int] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    untyped: list[str] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)  # HTTP answers to the upgrade
    answered: int = 0  # connections still serving after their frames (the probe's reply)


@dataclass(frozen=True)
class Probe:
    """A frame sent after the case's, and how its reply looks: the server processes a
    connection's frames in order, so the reply (or a close) says it read them all."""

    frame: str
    reply: str  # a substring of the reply frame


PROBES = {
    "twilio": Probe(
        '{"event":"media","sequenceNumber":"9","streamSid":"MZ00000000000000000000000000000000",'
        '"media":{"track":"inbound","chunk":"9","timestamp":"180","payload":"' + "/" * 212 + '"}}',
        '"event":"media"',
    ),
    "browser": Probe('{"type":"ping","id":"probe"}', '"probe"'),
    "realtime": Probe('{"type":"input_audio_buffer.clear"}', "input_audio_buffer.cleared"),
}


async def run_case(
    url: str, frames: Sequence[Frame], rng: random.Random, tally: Tally, probe: Probe
) -> None:
    try:
        ws = await websockets.connect(url, max_size=None, open_timeout=10, close_timeout=2)
    except websockets.InvalidStatus as refused:
        tally.refused[refused.response.status_code] += 1
        return
    tally.connections += 1
    try:
        for frame in frames:
            # Some binary junk goes as a text frame: invalid UTF-8 where text is expected.
            as_text = isinstance(frame, str) or rng.random() < 0.2
            if isinstance(frame, str):  # lone surrogates go as the bytes a peer would send
                frame = frame.encode("utf-8", "surrogatepass")
            await ws.send(frame, text=as_text)
            tally.frames += 1
        await ws.send(probe.frame)
        async with asyncio.timeout(0.5):
            while True:
                reply = await ws.recv()
                if isinstance(reply, str) and probe.reply in reply:
                    tally.answered += 1
                    break
        await ws.close()
    except (websockets.ConnectionClosed, TimeoutError):
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.close()
    with contextlib.suppress(asyncio.TimeoutError, websockets.ConnectionClosed):
        await asyncio.wait_for(ws.wait_closed(), 5)
    received: Close | None = ws.protocol.close_rcvd
    if received is None:
        tally.closes[-1] += 1
        return
    tally.closes[received.code] += 1
    if received.code not in (1000, 1001) and received.code >= 1002:
        reason = received.reason
        slug = reason.split(":", 1)[0]
        tally.reasons[slug] += 1
        if not TYPED_REASON.match(reason):
            tally.untyped.append(
                f"{received.code} {reason!r} after {[str(f)[:60] for f in frames]}"
            )


async def fuzz(
    url: str, maker: CaseMaker, probe: Probe, count: int, *, seed: int, parallel: int = 16
) -> Tally:
    """``count`` cases from fixed seeds, ``parallel`` connections at a time."""
    tally = Tally()
    queue = iter(range(seed, seed + count))

    async def worker() -> None:
        for case_seed in queue:
            await run_case(url, maker.case(case_seed), random.Random(case_seed), tally, probe)

    await asyncio.gather(*(worker() for _ in range(parallel)))
    return tally

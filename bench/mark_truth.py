"""Barge-in truncation accuracy of the Twilio mark cadence: what the engine is told the
caller heard at a barge-in, against what the caller really heard.

    python bench/mark_truth.py              # every cadence, 400 barge-ins each
    python bench/mark_truth.py --trials 50

A reply streams through the real :class:`parley.transports.twilio.TwilioCallStream`
to a simulated Twilio on a virtual clock (20 ms ticks): the phone plays the audio it
receives in order, back to back (:class:`parley.protocols.playback.Playout`), and
echoes each mark only once the audio before it has played, on its next 20 ms media
tick, as Twilio does; it also sends the caller's 20 ms frame every tick. At a random
moment inside the reply's playback the caller barges in: the *reported* figure is the
latest ``PlaybackReport`` the stream produced for the reply (what the cascade truncates
the reply's text at), the *truth* is the audio the phone had played by then. The
error (truth − reported, ms) is never negative when the reports are honest; its bound
is the mark interval plus the echo's way back.

Two ways a reply arrives: ``tts`` (1 s clauses, each ready 60 ms after the previous
one started: audio ahead of playback) and ``echo`` (20 ms pieces every 20 ms, as the
loopback engine sends the caller's audio back). Cadences: ``per-chunk`` (a mark after
every media message, the earlier default) and ``mark_ms`` = 100 (the default), 200
and 500. Prints one JSON line: for each arrival × cadence, the error's p50/p99/max and
the messages sent and received per second of reply.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
from collections import deque
from typing import Any

from parley.conversation.stream import PlaybackReport
from parley.protocols.playback import Playout
from parley.transports.twilio import DEFAULT_MARK_MS, TwilioCallStream

SID = "MZ" + "0" * 32
TICK_MS = 20
BYTES_PER_MS = 8
FRAME = json.dumps(
    {
        "event": "media",
        "streamSid": SID,
        "media": {
            "track": "inbound",
            "chunk": "1",
            "timestamp": "0",
            "payload": base64.b64encode(b"\xff" * 160).decode(),
        },
    }
)


class Wire:
    """The server's side of the socket in memory; what it sends is kept for the phone."""

    def __init__(self) -> None:
        self.incoming: deque[str] = deque()
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()  # the stream has read everything put so far
        self.outgoing: list[dict[str, Any]] = []

    async def receive(self) -> str | bytes | None:
        while not self.incoming:
            self.wake.clear()
            self.idle.set()
            await self.wake.wait()
        return self.incoming.popleft()

    async def send_text(self, data: str) -> None:
        self.outgoing.append(json.loads(data))

    async def send_bytes(self, data: bytes) -> None:
        raise AssertionError("Twilio frames are text")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        return

    def put(self, frame: str) -> None:
        self.incoming.append(frame)
        self.idle.clear()
        self.wake.set()


def arrivals(kind: str, reply_ms: int) -> list[tuple[int, int]]:
    """(virtual ms it is ready, its length in ms) of each piece of the reply."""
    if kind == "tts":
        return [(i * 60, min(1000, reply_ms - s)) for i, s in enumerate(range(0, reply_ms, 1000))]
    return [(t, TICK_MS) for t in range(0, reply_ms, TICK_MS)]


async def one_barge_in(
    kind: str, mark_ms: int, reply_ms: int, barge_at_ms: int
) -> tuple[float, int, int]:
    """(truth − reported ms, messages sent, messages received) for one barge-in."""
    wire = Wire()
    stream = TwilioCallStream(wire, mark_ms=mark_ms)
    start = {"streamSid": SID, "callSid": "CA1", "accountSid": "AC1", "tracks": ["inbound"]}
    wire.put(json.dumps({"event": "start", "start": start, "streamSid": SID}))
    assert await stream.handshake() is not None
    reports: list[float] = []

    async def listen() -> None:
        async for item in stream.inbound():
            if isinstance(item, PlaybackReport):
                reports.append(item.played_ms)  # noqa: PERF401 - read live by the clock loop

    listener = asyncio.create_task(listen())
    phone = Playout(BYTES_PER_MS)
    played: list[tuple[float, float]] = []  # (start s, duration s) as the phone plays them
    pending = deque(arrivals(kind, reply_ms))
    seen = received = 0
    t_ms = 0
    while t_ms <= barge_at_ms:
        now = t_ms / 1000
        while pending and pending[0][0] <= t_ms:
            _, length = pending.popleft()
            await stream.send_audio(b"\x7f" * (length * BYTES_PER_MS), response_id="r1")
        for message in wire.outgoing[seen:]:
            if message["event"] == "media":
                n = len(base64.b64decode(message["media"]["payload"]))
                begin = max(phone.busy_until(), now)
                played.append((begin, n / BYTES_PER_MS / 1000))
                phone.push_audio(n, now)
            elif message["event"] == "mark":
                phone.push_mark(message["mark"]["name"], now)
        seen = len(wire.outgoing)
        # Twilio's next media tick: the caller's frame and the marks whose audio played.
        for name in phone.due(now):
            wire.put(json.dumps({"event": "mark", "streamSid": SID, "mark": {"name": name}}))
            received += 1
        wire.put(FRAME)
        received += 1
        await wire.idle.wait()
        t_ms += TICK_MS
    barge = barge_at_ms / 1000
    truth = sum(min(max(barge - begin, 0.0), length) for begin, length in played) * 1000
    reported = reports[-1] if reports else 0.0
    listener.cancel()
    await asyncio.gather(listener, return_exceptions=True)
    return truth - reported, len(wire.outgoing), received


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


async def measure(trials: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    reply_ms = 4000
    cadences = {"per-chunk": 0, "mark_ms=100": 100, "mark_ms=200": 200, "mark_ms=500": 500}
    out: dict[str, Any] = {}
    for kind in ("tts", "echo"):
        times = [rng.randrange(200, reply_ms - 100, 10) for _ in range(trials)]
        for name, mark_ms in cadences.items():
            errors, sent, got, span = [], 0, 0, 0
            for barge in times:
                error, n_sent, n_got = await one_barge_in(kind, mark_ms, reply_ms, barge)
                errors.append(error)
                sent, got, span = sent + n_sent, got + n_got, span + barge
            out[f"{kind} {name}"] = {
                "error_ms": {
                    "p50": percentile(errors, 0.5),
                    "p99": percentile(errors, 0.99),
                    "max": round(max(errors), 1),
                    "min": round(min(errors), 1) + 0.0,  # no "-0.0"
                },
                "messages_sent_per_s": round(sent / (span / 1000), 1),
                "messages_received_per_s": round(got / (span / 1000), 1),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    cadences = asyncio.run(measure(args.trials, args.seed))
    default = f"mark_ms={DEFAULT_MARK_MS}"
    bound = DEFAULT_MARK_MS + 2 * TICK_MS  # the mark interval + the echo's next media tick
    print(
        json.dumps(
            {
                "bench": "bargein",
                "trials": args.trials,
                "default": default,
                "stated_bound_ms": bound,
                "default_within_bound": all(
                    v["error_ms"]["min"] >= 0 and v["error_ms"]["max"] <= bound
                    for k, v in cadences.items()
                    if k.endswith(default)
                ),
                "cadences": cadences,
            }
        )
    )


if __name__ == "__main__":
    main()

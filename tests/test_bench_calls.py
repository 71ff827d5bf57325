"""The hot path at scale: ``bench/calls.py`` end to end (a real server, real Node callers)
and the Twilio stream's mark cadence (``mark_ms``) that halves its messages per frame."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import pytest

from parley.conversation.stream import PlaybackReport
from parley.engines.loopback import LoopbackEngine
from parley.errors import ConfigError
from parley.events import AudioDelta
from parley.transports.twilio import TwilioCallStream
from servers import ROOT

SID = "MZ" + "0" * 32
T = TypeVar("T")

# ---------------------------------------------------------------- bench/calls.py


def test_bench_prints_one_json_line_with_the_audio_back() -> None:
    out = subprocess.run(
        [sys.executable, "bench/calls.py", "--calls", "5", "--duration", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out.stdout
    result = json.loads(lines[0])
    assert result["calls"] == result["calls_connected"] == 5
    assert result["calls_failed"] == result["calls_closed_early"] == 0
    assert result["workers"] == 2
    # Every call heard its own audio back, and its tone bursts were timed.
    assert result["audio_returned"] >= 0.99
    assert result["worst_call_audio_returned"] >= 0.99
    assert result["bursts_sent"] >= 5 * 3
    assert result["bursts_timed"] >= 0.9 * result["bursts_sent"]
    echo = result["echo_delay_ms"]
    assert 0 < echo["p50"] <= echo["p99"] <= echo["max"]
    assert echo["p50"] < 200  # loose: CI machines are busy; the bench states the goal
    # CPU: the supervisor and both workers were measured, and the generator too.
    assert len(result["server_cpu_cores_by_process"]) >= 3
    assert result["server_cpu_cores"] > 0
    assert result["server_cpu_pct_of_core_per_call"] > 0
    assert result["loadgen_cpu_cores"] > 0
    assert set(result["goal"]) >= {"audio_returned", "echo_p99", "met"}
    assert "not in this run" in result["reference"]["name"]


# ------------------------------------------------------------------- mark cadence


class MemorySocket:
    """The peer side of a WireSocket, in memory: frames in through a queue, sent kept."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[str | None] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> str | bytes | None:
        return await self.incoming.get()

    async def send_text(self, data: str) -> None:
        self.sent.append(json.loads(data))

    async def send_bytes(self, data: bytes) -> None:
        raise AssertionError("Twilio frames are text")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        return

    def put(self, message: dict[str, object]) -> None:
        self.incoming.put_nowait(json.dumps({**message, "streamSid": SID}))

    def media(self) -> None:
        payload = base64.b64encode(b"\xff" * 160).decode()
        self.put(
            {
                "event": "media",
                "media": {"track": "inbound", "chunk": 1, "timestamp": 0, "payload": payload},
            }
        )

    def kinds(self) -> list[str]:
        return [str(m["event"]) for m in self.sent]


async def started(mark_ms: int) -> tuple[TwilioCallStream, MemorySocket]:
    sock = MemorySocket()
    stream = TwilioCallStream(sock, mark_ms=mark_ms)
    sock.put(
        {
            "event": "start",
            "start": {
                "streamSid": SID,
                "callSid": "CA1",
                "accountSid": "AC1",
                "tracks": ["inbound"],
            },
        }
    )
    assert await stream.handshake() is not None
    return stream, sock


async def next_item(items: AsyncIterator[T]) -> T:
    return await asyncio.wait_for(anext(items), 2)


async def test_mark_every_100_ms_and_the_tail_when_the_output_pauses() -> None:
    stream, sock = await started(mark_ms=100)
    for _ in range(12):  # 240 ms of reply in 20 ms chunks, as the loopback sends it
        await stream.send_audio(b"\x7f" * 160, response_id="r1")
    kinds = sock.kinds()
    assert kinds.count("media") == 12
    assert kinds.count("mark") == 2  # after 100 ms and 200 ms; 40 ms not yet marked
    assert kinds.index("mark") == 5
    inbound = stream.inbound()
    sock.media()  # the caller's next frame: audio went out since the previous one
    assert isinstance(await next_item(inbound), bytes)
    assert sock.kinds().count("mark") == 2
    sock.media()  # a frame later nothing more was sent: the output paused, mark the tail
    assert isinstance(await next_item(inbound), bytes)
    assert sock.kinds().count("mark") == 3
    names = [m["mark"]["name"] for m in sock.sent if m["event"] == "mark"]
    for name, played in zip(names, (100.0, 200.0, 240.0), strict=True):
        sock.put({"event": "mark", "mark": {"name": name}})
        report = await next_item(inbound)
        assert report == PlaybackReport("r1", played)


async def test_a_mark_never_spans_two_responses_and_clear_drops_the_unmarked() -> None:
    stream, sock = await started(mark_ms=100)
    await stream.send_audio(b"\x7f" * 160, response_id="r1")
    await stream.send_audio(b"\x7f" * 160, response_id="r2")
    assert sock.kinds() == ["media", "mark", "media"]  # r1's 20 ms closed before r2
    await stream.clear("r2")
    inbound = stream.inbound()
    sock.media()
    assert isinstance(await next_item(inbound), bytes)
    assert sock.kinds() == ["media", "mark", "media", "clear"]  # no mark for flushed audio


async def test_default_marks_every_chunk() -> None:
    stream, sock = await started(mark_ms=0)
    await stream.send_audio(b"\x7f" * 2000, response_id="r1")
    # 250 ms in chunks of at most 100 ms, each followed by its mark
    assert sock.kinds() == ["media", "mark"] * 3
    sizes = [len(base64.b64decode(m["media"]["payload"])) for m in sock.sent[::2]]
    assert sizes == [800, 800, 400]


# ------------------------------------------------------------ loopback pass-through


async def test_loopback_in_the_line_format_echoes_the_bytes_untouched() -> None:
    engine = LoopbackEngine(8000, encoding="ulaw")
    assert engine.input_format.encoding == "ulaw"
    await engine.send_audio(b"\x01\x02\x03")
    events = engine.events()
    delta = await next_item(events)
    assert delta == AudioDelta("loopback", b"\x01\x02\x03", 8000, encoding="ulaw")
    with pytest.raises(ConfigError):
        LoopbackEngine(8000, encoding="opus")

"""The platform conformance suite: what every way into Parley must do over a real socket.

``await run_conformance(url, make_phone, app=app)`` connects a
:class:`~parley.testing.phones.ConformancePhone` to a running server and checks, in
order:

1. **connect** — the opening frames are accepted (the socket stays open);
2. **speak** — the caller says something (600 ms of tone, then silence, from a
   microphone that keeps sending 20 ms frames like a phone line does);
3. **reply audio** — at least a second of the reply comes back, in the platform's
   format, with its checkpoints;
4. **barge-in** — once the phone reports 400 ms played, the caller talks over the
   reply and the server sends the platform's clear (and, with ``app``, the
   transcript keeps only what was played);
5. **close** — the caller hangs up and the server ends the call (with ``app``: the
   record is ``ended`` and its ``kind`` is the phone's platform);
6. **malformed frame** — on a second call, a frame the protocol forbids closes that
   socket with 1007, 1008 or 1009 and a reason.

The server must answer with :func:`conformance_engine` (``conformance_app()`` is a
loopback-configured :class:`~parley.app.Parley` with it): an energy VAD, a scripted
transcript and reply, and a tone as long as the reply would take to say — real turn
taking and barge-in in milliseconds, no model files. A third-party platform passes
by registering its ``Platform`` and writing its test phone (seven members).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from parley.app import Parley
from parley.config import EngineKind, ParleySettings
from parley.engines.cascade import CascadeConfig, CascadeEngine
from parley.engines.seams import CallEngine
from parley.engines.spec import EngineRequest
from parley.events import Role
from parley.server.calls import CallRecord, CallStatus
from parley.testing.fakes import FakeLLM, FakeSTT, FakeTTS, FakeVAD, silence, tone
from parley.testing.phones import ConformancePhone, Frame, Line, LineClosed

__all__ = [
    "REPLY",
    "ConformanceFailure",
    "ConformanceReport",
    "conformance_app",
    "conformance_engine",
    "run_conformance",
]

#: What the conformance engine answers (about 3 s of tone at 40 ms a character).
REPLY = "Thank you for calling the support line of a very talkative company today."
_FRAME_MS = 20


class ConformanceFailure(AssertionError):
    """A platform failed a step; the message names the step and what was seen."""


@dataclass(slots=True)
class ConformanceReport:
    """What one run saw."""

    kind: str
    reply_ms: float = 0.0  # reply audio received before the barge-in
    cleared: bool = False
    close_code: int | None = None  # the malformed frame's close
    close_reason: str = ""
    steps: list[str] = field(default_factory=list)
    #: The server's record of the call (run with ``app``): an ended call leaves the
    #: registry, so this is how a test reads it afterwards.
    record: CallRecord | None = None


def conformance_engine(request: EngineRequest) -> CallEngine:
    """The engine the suite expects on the server (pass as ``engine_factory``)."""
    return CascadeEngine(
        FakeVAD(16000),
        FakeSTT("hello there"),
        FakeLLM([REPLY]),
        FakeTTS(16000, ms_per_char=40.0),
        CascadeConfig(instructions=request.instructions, speculative_stt=False),
    )


def conformance_app(**settings: object) -> Parley:
    """A :class:`Parley` app answering with :func:`conformance_engine`."""
    base = ParleySettings(engine=EngineKind.LOOPBACK, **settings)  # type: ignore[arg-type]
    return Parley(settings=base, engine_factory=conformance_engine)


class _Microphone:
    """Sends the phone's 20 ms frames at ``speed`` × real time: speech when given,
    else silence, as a phone line never stops sending."""

    def __init__(self, ws: Line, phone: ConformancePhone, speed: float) -> None:
        self._ws, self._phone = ws, phone
        self._period = _FRAME_MS / 1000 / speed
        self._frame = phone.sample_rate * 2 * _FRAME_MS // 1000
        self._speech: list[bytes] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._lock = asyncio.Lock()
        self.task: asyncio.Task[None] = asyncio.ensure_future(self.run())

    async def send(self, frames: list[Frame] | tuple[Frame, ...]) -> None:
        async with self._lock:  # one sender at a time: frames never interleave
            for frame in frames:
                await self._ws.send(frame)

    async def say(self, pcm: bytes) -> None:
        step = self._frame
        self._speech += [pcm[i : i + step].ljust(step, b"\0") for i in range(0, len(pcm), step)]
        self._idle.clear()
        idle = asyncio.ensure_future(self._idle.wait())
        try:
            await asyncio.wait((idle, self.task), return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
        if self.task.done():
            raise ConformanceFailure(f"speak: the line broke ({self.task.exception()!r})")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        quiet = bytes(self._frame)
        next_t = loop.time()
        while True:
            pcm = self._speech.pop(0) if self._speech else quiet
            await self.send(list(self._phone.speak(pcm)))
            if not self._speech:
                self._idle.set()
            next_t += self._period
            await asyncio.sleep(max(0.0, next_t - loop.time()))


async def _frame(ws: Line, step: str, timeout_s: float) -> Frame:
    try:
        return await asyncio.wait_for(ws.recv(), timeout_s)
    except TimeoutError:
        raise ConformanceFailure(f"{step}: nothing from the server in {timeout_s:g} s") from None
    except LineClosed as exc:
        raise ConformanceFailure(f"{step}: the server closed the socket ({exc})") from None


async def run_conformance(
    url: str,
    make_phone: Callable[[], ConformancePhone],
    *,
    app: Parley | None = None,
    speed: float = 2.0,
    timeout_s: float = 15.0,
    report: ConformanceReport | None = None,
) -> ConformanceReport:
    """Run the suite against the server at ``url`` (``ws://host:port``); raise
    :class:`ConformanceFailure` at the first step that fails. With ``app`` (the
    server's), check its call records too."""
    phone = make_phone()
    if report is None:  # given, it holds what was seen even when a step fails
        report = ConformanceReport(kind=phone.kind)
    before = {r.id for r in app.calls.records()} if app is not None else set()
    # Taken while the call is live: an ended call leaves the registry (the store has it).
    new: list[CallRecord] = []
    ws = await phone.dial(url)
    try:
        for frame in phone.opening():
            await ws.send(frame)
        report.steps.append("connect")
        mic = _Microphone(ws, phone, speed)
        try:
            async with asyncio.timeout(4 * timeout_s):
                await _converse(ws, phone, mic, report, timeout_s)
            if app is not None:
                new = [r for r in app.calls.records() if r.id not in before]
                report.record = new[0] if len(new) == 1 else None
        except TimeoutError:
            steps = ("connect", "speak", "reply audio", "barge-in")
            raise ConformanceFailure(f"{steps[len(report.steps)]}: no progress") from None
        finally:
            mic.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, LineClosed):
                await mic.task
        hangup = list(phone.hangup())
        for frame in hangup:
            await ws.send(frame)
        if not hangup:
            await ws.close()
        await _until_closed(ws, "close", timeout_s)
    finally:
        await ws.close()
    report.steps.append("close")
    if app is not None:
        await _check_record(new, phone, timeout_s)
    await _malformed(url, make_phone(), report, timeout_s)
    return report


async def _converse(
    ws: Line,
    phone: ConformancePhone,
    mic: _Microphone,
    report: ConformanceReport,
    timeout_s: float,
) -> None:
    rate = phone.sample_rate
    await mic.say(tone(600, rate) + silence(300, rate))
    report.steps.append("speak")
    received = 0
    while received < phone.output_rate * 2:  # a second of reply audio
        heard = phone.hear(await _frame(ws, "reply audio", timeout_s))
        if heard.answer:
            await mic.send(heard.answer)
        if heard.cleared:
            raise ConformanceFailure("reply audio: a clear before any barge-in")
        received += len(heard.audio)
    report.reply_ms = received / 2 / phone.output_rate * 1000
    report.steps.append("reply audio")
    await mic.send(list(phone.played(400.0)))
    talking = asyncio.create_task(mic.say(tone(500, rate)))
    try:
        while not report.cleared:
            heard = phone.hear(await _frame(ws, "barge-in", timeout_s))
            if heard.answer:
                await mic.send(heard.answer)
            report.cleared = heard.cleared
    finally:
        await talking
    report.steps.append("barge-in")


async def _until_closed(ws: Line, step: str, timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                await ws.recv()
    except LineClosed:
        return
    except TimeoutError:
        raise ConformanceFailure(f"{step}: the server kept the socket open") from None


async def _check_record(new: list[CallRecord], phone: ConformancePhone, timeout_s: float) -> None:
    if len(new) != 1:
        raise ConformanceFailure(f"close: expected one new call record, found {len(new)}")
    record: CallRecord = new[0]
    try:
        await asyncio.wait_for(record.finished.wait(), timeout_s)
    except TimeoutError:
        raise ConformanceFailure(f"close: the call is still {record.status}") from None
    if record.status is not CallStatus.ENDED:
        raise ConformanceFailure(f"close: the call is {record.status}, not ended")
    if record.kind != phone.kind:
        raise ConformanceFailure(f"connect: the call was recorded as {record.kind!r}")
    journal = record.journal
    turns = [t for t in journal.transcript if t.role is Role.ASSISTANT] if journal else []
    if not turns or not turns[0].interrupted:
        raise ConformanceFailure(f"barge-in: the reply is not marked interrupted ({turns})")
    said = turns[0].text
    if not said or not REPLY.startswith(said) or len(said) >= len(REPLY) / 2:
        raise ConformanceFailure(f"barge-in: the transcript kept {said!r}, not what played")


async def _malformed(
    url: str, phone: ConformancePhone, report: ConformanceReport, timeout_s: float
) -> None:
    ws = await phone.dial(url)
    try:
        for frame in (*phone.opening(), *phone.speak(silence(_FRAME_MS, phone.sample_rate))):
            await ws.send(frame)
        await ws.send(phone.malformed())
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    await ws.recv()
        except LineClosed as exc:
            close = exc
        except TimeoutError:
            raise ConformanceFailure("malformed frame: the socket stayed open") from None
    finally:
        await ws.close()
    if close.code not in (1007, 1008, 1009) or not close.reason:
        raise ConformanceFailure(f"malformed frame: closed with {close}, not 1007/1008/1009")
    if close.reason.startswith("unauthorized"):
        raise ConformanceFailure(f"malformed frame: the call was refused first ({close.reason})")
    report.close_code, report.close_reason = close.code, close.reason
    report.steps.append("malformed frame")

"""Place a simulated Twilio call against a Media Streams WebSocket (``/twilio/stream``).

An asyncio shell around :class:`~parley.protocols.twilio_caller.TwilioCaller`:
it connects with ``websockets``, sends ``connected`` and ``start`` (a one-time
``token`` goes in ``customParameters``, as the TwiML ``<Parameter>`` would put
it), then a continuous stream of 20 ms µ-law frames at real-time pace — a little
silence, each utterance, then silence while the agent answers — exactly as a
phone line does. Returned audio goes through a :class:`Playout`, so marks are
echoed when their audio has *played* (and at once after a ``clear``), as Twilio
does. Per turn it measures the latency from the end of the caller's speech to
the first audible reply audio (leading silence in a reply is not an answer).

Frames are paced against the loop clock (``next += 20 ms``), not by sleeping
20 ms after each send, so the stream does not drift late under load.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from parley.audio import ULAW_SILENCE, ulaw_decode_array
from parley.errors import ParleyError, RemoteProtocolError
from parley.protocols.twilio_caller import (
    Clear,
    OutboundMark,
    OutboundMedia,
    Playout,
    TwilioCaller,
)

__all__ = [
    "CallFailed",
    "CallResult",
    "TurnResult",
    "place_call",
    "trim_trailing_silence",
]

_FRAME_BYTES_PER_MS = 8  # µ-law 8 kHz


class CallFailed(ParleyError):
    """The call could not be placed or the server broke it off."""


@dataclass(slots=True)
class TurnResult:
    """One caller utterance and what came back after it."""

    speech_ms: float
    #: End of the caller's speech → first audible reply audio (None: no reply came).
    latency_ms: float | None = None
    #: The agent's µ-law audio received during this turn (before a clear dropped any).
    reply_ulaw: bytearray = field(default_factory=bytearray)
    clears: int = 0

    @property
    def reply_ms(self) -> float:
        return len(self.reply_ulaw) / _FRAME_BYTES_PER_MS


@dataclass(slots=True)
class CallResult:
    """Everything one call measured."""

    stream_sid: str
    turns: list[TurnResult]
    marks_received: int = 0
    marks_echoed: int = 0
    frames_sent: int = 0
    #: The server's close code and reason if it closed the call before our ``stop``
    #: (None: the call ran until we hung up).
    close_code: int | None = None
    close_reason: str = ""
    #: A malformed frame from the server, if any (the call stops there).
    protocol_error: RemoteProtocolError | None = None


def _audible(ulaw: bytes, threshold: int) -> bool:
    return _audible_samples(ulaw_decode_array(ulaw), threshold)


def trim_trailing_silence(ulaw: bytes, *, threshold: int = 300, frame_ms: int = 20) -> bytes:
    """Drop trailing frames whose peak is below ``threshold`` (PCM16 units).

    TTS output and WAV files end with some silence; the latency clock should start
    at the end of the *speech*, not of the file. Frames are counted from the start,
    as :func:`place_call` sends them, so the last frame sent is an audible one.
    """
    frame = frame_ms * _FRAME_BYTES_PER_MS
    samples = ulaw_decode_array(ulaw)
    end = -(-len(ulaw) // frame) * frame  # a partial last frame is padded when sent
    while end > 0:
        start = end - frame
        if _audible_samples(samples[start:end], threshold):
            break
        end = start
    return ulaw[:end]


def _audible_samples(samples: npt.NDArray[np.int16], threshold: int) -> bool:
    return bool(samples.size) and bool(samples.max() >= threshold or samples.min() <= -threshold)


class _Call:
    def __init__(
        self,
        ws: ClientConnection,
        caller: TwilioCaller,
        *,
        frame_ms: int,
        lead_silence_s: float,
        trailing_silence_s: float,
        reply_timeout_s: float,
        reply_gap_s: float,
        threshold: int,
    ) -> None:
        self.ws = ws
        self.threshold = threshold
        self.caller = caller
        self.frame_bytes = frame_ms * _FRAME_BYTES_PER_MS
        self.frame_s = frame_ms / 1000
        self.silence = bytes([ULAW_SILENCE]) * self.frame_bytes
        self.lead_silence_s = lead_silence_s
        self.trailing_silence_s = trailing_silence_s
        self.reply_timeout_s = reply_timeout_s
        self.reply_gap_s = reply_gap_s
        self.loop = asyncio.get_running_loop()
        self.playout = Playout()
        self.echoes: list[str] = []  # marks to echo on the next tick (after a clear)
        self.result = CallResult(stream_sid=caller.stream_sid, turns=[])
        self.turn: TurnResult | None = None
        self.speech_end_t = 0.0
        self.stop_sent = False
        self.audible_played_t = 0.0  # when the latest audible reply audio ends playing
        self.next_t = 0.0

    # -- sending (one task: every send happens here, in order) -------------------------

    async def run(self, utterances: Sequence[bytes]) -> None:
        await self.ws.send(self.caller.connected(), text=True)
        await self.ws.send(self.caller.start(), text=True)
        self.next_t = self.loop.time()
        await self._silence_for(self.lead_silence_s)
        for ulaw in utterances:
            turn = TurnResult(speech_ms=len(ulaw) / _FRAME_BYTES_PER_MS)
            self.result.turns.append(turn)
            self.turn = turn
            self.speech_end_t = 0.0 if ulaw else self.loop.time()
            last = len(ulaw) - 1
            for i in range(0, len(ulaw), self.frame_bytes):
                chunk = ulaw[i : i + self.frame_bytes]
                await self._send_frame(
                    chunk + self.silence[len(chunk) :], speech_ends=i + self.frame_bytes > last
                )
            await self._wait_for_reply(turn)
        await self._tick_marks()
        self.stop_sent = True  # from here on, the server closing is the normal end
        await self.ws.send(self.caller.stop(), text=True)

    async def _wait_for_reply(self, turn: TurnResult) -> None:
        start = self.loop.time()
        while True:
            await self._send_frame(self.silence)
            now = self.loop.time()
            waited = now - start
            if waited < self.trailing_silence_s:
                continue
            if turn.latency_ms is None:
                if waited >= self.reply_timeout_s:
                    return
                continue
            # Done once the last *audible* reply audio has played and a quiet gap
            # followed: a server may keep streaming silence (a loopback does).
            if now >= self.audible_played_t + self.reply_gap_s:
                return

    async def _silence_for(self, seconds: float) -> None:
        for _ in range(round(seconds / self.frame_s)):
            await self._send_frame(self.silence)

    async def _send_frame(self, ulaw: bytes, *, speech_ends: bool = False) -> None:
        self.next_t += self.frame_s
        delay = self.next_t - self.loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if speech_ends:
            # A phone sends a frame once its 20 ms were captured: the caller stopped
            # talking now. Set before the send, so even an instant echo counts.
            self.speech_end_t = self.loop.time()
        await self.ws.send(self.caller.media(ulaw), text=True)
        self.result.frames_sent += 1
        await self._tick_marks()

    async def _tick_marks(self) -> None:
        due = self.echoes + self.playout.due(self.loop.time())
        self.echoes = []
        for name in due:
            await self.ws.send(self.caller.mark(name), text=True)
        self.result.marks_echoed += len(due)

    # -- receiving ---------------------------------------------------------------------

    async def receive(self) -> None:
        async for frame in self.ws:
            now = self.loop.time()
            event = self.caller.receive(frame)
            if isinstance(event, OutboundMedia):
                payload = event.payload
                self.playout.push_audio(len(payload), now)
                turn = self.turn
                if turn is None or not payload:
                    continue
                turn.reply_ulaw += payload
                if _audible(payload, self.threshold):
                    self.audible_played_t = self.playout.busy_until()
                    if turn.latency_ms is None and self.speech_end_t and now >= self.speech_end_t:
                        turn.latency_ms = (now - self.speech_end_t) * 1000
            elif isinstance(event, OutboundMark):
                self.result.marks_received += 1
                self.playout.push_mark(event.name, now)
            elif isinstance(event, Clear):
                self.echoes.extend(self.playout.clear(now))
                self.audible_played_t = min(self.audible_played_t, now)  # dropped, not played
                if self.turn is not None:
                    self.turn.clears += 1


async def place_call(
    url: str,
    utterances: Sequence[bytes],
    *,
    token: str | None = None,
    custom_parameters: Mapping[str, str] | None = None,
    frame_ms: int = 20,
    lead_silence_s: float = 0.5,
    trailing_silence_s: float = 2.0,
    reply_timeout_s: float = 20.0,
    reply_gap_s: float = 1.0,
    open_timeout_s: float = 10.0,
    audible_threshold: int = 300,
) -> CallResult:
    """Call ``url`` as Twilio would and say each of ``utterances`` (µ-law 8 kHz mono).

    After each utterance the caller keeps sending silence: at least
    ``trailing_silence_s``, then until the reply has played and nothing new came for
    ``reply_gap_s`` (or ``reply_timeout_s`` passed with no reply). Reply audio
    counts as *audible* (for the latency and the end of the reply) when a sample
    reaches ``audible_threshold`` (PCM16 units; 300 ≈ -41 dBFS). Raises
    :class:`CallFailed` if the connection cannot be opened; a server that closes the
    call early or sends a malformed frame ends the call, and the result says so.
    Wrap in ``asyncio.timeout`` for an overall limit.
    """
    params = dict(custom_parameters or {})
    if token is not None:
        params["token"] = token
    caller = TwilioCaller(custom_parameters=params)
    try:
        ws = await connect(url, open_timeout=open_timeout_s, max_size=None, compression=None)
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
        raise CallFailed(f"cannot connect to {url}: {exc}") from exc
    call = _Call(
        ws,
        caller,
        frame_ms=frame_ms,
        lead_silence_s=lead_silence_s,
        trailing_silence_s=trailing_silence_s,
        reply_timeout_s=reply_timeout_s,
        reply_gap_s=reply_gap_s,
        threshold=audible_threshold,
    )
    result = call.result
    async with ws:
        receiver = asyncio.create_task(call.receive())
        sender = asyncio.create_task(call.run(utterances))
        try:
            # Whichever ends first decides: the sender finishing is a normal hang-up;
            # the receiver ending means the server closed or sent garbage.
            await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sender, receiver):
                task.cancel()
            outcomes = await asyncio.gather(sender, receiver, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, RemoteProtocolError):
                result.protocol_error = outcome
                await ws.close(1008, outcome.code[:100])
            elif isinstance(outcome, ConnectionClosed | asyncio.CancelledError | None):
                continue
            elif isinstance(outcome, BaseException):
                raise outcome
        if ws.close_code is None:
            with contextlib.suppress(ConnectionClosed):
                await ws.close()
    proto = ws.protocol
    server_first = proto.close_sent is None or proto.close_rcvd_then_sent
    if proto.close_rcvd is not None and server_first and not call.stop_sent:
        result.close_code = proto.close_rcvd.code
        result.close_reason = proto.close_rcvd.reason
    return result

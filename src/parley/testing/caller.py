"""``SimulatedCaller``: a phone on the far end of a :class:`MemoryPeer`.

Like a real phone it sends a continuous stream of audio frames — silence, or
speech when told to say something — at real-time pace (or ``speed`` times
faster), and it plays what it receives at the same pace: audio is "heard" only as
its play clock advances, playback progress is reported back the way a transport
reports it (``PlaybackReport``), and a clear drops what was not yet played. So a
barge-in test sees exactly what a caller would have heard.

Speech comes from any :class:`~parley.providers.seams.TTS` (Piper for real
speech); the PCM is resampled to the line's format and encoded (µ-law, A-law) the
way the line carries it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np

from parley.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from parley.audio.pcm import mono_to_stereo, stereo_to_mono
from parley.audio.resample import StreamResampler
from parley.providers.seams import TTS
from parley.testing.transport import ClearAudio, MemoryPeer, ReplyAudio

__all__ = ["Reply", "SimulatedCaller", "Utterance"]


@dataclass(slots=True)
class Utterance:
    """One thing the caller said; times are ``time.monotonic()``."""

    text: str
    audio: bytes  # PCM16 mono at the line rate, as sent
    started_t: float = 0.0
    speech_end_t: float = 0.0  # when the last audible frame left
    sent_t: float = 0.0  # when the last frame (incl. trailing silence) left


@dataclass(slots=True)
class Reply:
    """One reply as the caller received and heard it (PCM16 mono at the line rate)."""

    response_id: str
    texts: list[str] = field(default_factory=list)
    received: bytearray = field(default_factory=bytearray)
    heard: bytearray = field(default_factory=bytearray)
    first_audio_t: float | None = None
    cleared: bool = False
    audio_after_clear: int = 0  # bytes that arrived after the clear (should be none)

    @property
    def text(self) -> str:
        return " ".join(t for t in self.texts if t)


class SimulatedCaller:
    """Use as ``async with SimulatedCaller(peer, tts) as caller: await caller.say(...)``."""

    def __init__(
        self,
        peer: MemoryPeer,
        tts: TTS,
        *,
        speed: float = 1.0,
        chunk_ms: int = 20,
        report_every_ms: float = 100.0,
        speech_level: int = 300,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.peer = peer
        self.tts = tts
        self.speed = speed
        self.chunk_ms = chunk_ms
        self.report_every_ms = report_every_ms
        self.speech_level = speech_level
        self.rate = peer.input_format.sample_rate
        self.out_rate = peer.output_format.sample_rate
        self._chunk_bytes = 2 * self.rate * chunk_ms // 1000
        self._cache: dict[str, bytes] = {}
        self._speech: deque[tuple[bytes, Utterance | None, bool]] = deque()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self.utterances: list[Utterance] = []
        self.replies: dict[str, Reply] = {}
        self._queue: deque[tuple[str, bytes]] = deque()  # received, not yet played
        self._played_ms: dict[str, float] = {}
        self._reported_ms: dict[str, float] = {}
        self._new_audio = asyncio.Event()
        self._changed = asyncio.Event()  # replaced on each change: a broadcast
        self.last_audio_t = 0.0

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> SimulatedCaller:
        self._tasks = [
            asyncio.create_task(self._microphone()),
            asyncio.create_task(self._listen()),
            asyncio.create_task(self._speaker()),
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.hangup()

    async def hangup(self) -> None:
        for task in self._tasks:
            task.cancel()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.peer.hangup()
        for r in results:
            if isinstance(r, Exception):
                raise r

    # -- speaking ----------------------------------------------------------------------

    async def prepare(self, *texts: str) -> None:
        """Synthesise ahead of time, so ``say`` starts speaking at once."""
        for text in texts:
            if text not in self._cache:
                self._cache[text] = await self._synthesize(text)

    async def _synthesize(self, text: str) -> bytes:
        chunks = [c async for c in self.tts.synthesize(text)]
        pcm = b"".join(chunks)
        rs = StreamResampler(self.tts.sample_rate, self.rate)
        return rs.process(pcm) + rs.flush()

    async def say(self, text: str, *, wait: bool = True) -> Utterance:
        """Speak ``text``; with ``wait`` return once the last frame has been sent."""
        await self.prepare(text)
        utt = Utterance(text, self._cache[text])
        self.utterances.append(utt)
        self._enqueue(utt.audio, utt)
        if wait:
            await self.wait_sent()
        return utt

    async def pause(self, ms: float) -> None:
        """Send ``ms`` of silence (in audio time) and wait until it has left."""
        self._enqueue(bytes(2 * round(ms * self.rate / 1000)), None)
        await self.wait_sent()

    async def play(self, pcm: bytes, *, wait: bool = True) -> None:
        """Send arbitrary PCM16 mono at the line rate (noise, a recorded utterance)."""
        self._enqueue(pcm, None)
        if wait:
            await self.wait_sent()

    async def wait_sent(self) -> None:
        await self._idle.wait()

    def _enqueue(self, pcm: bytes, utt: Utterance | None) -> None:
        step = self._chunk_bytes
        # Where the audible speech ends: the frame holding the last loud sample.
        x = np.abs(np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.int32))
        loud = np.flatnonzero(x >= self.speech_level)
        last_loud = int(loud[-1]) * 2 if loud.size else -1
        for i in range(0, len(pcm), step):
            frame = pcm[i : i + step]
            is_last_loud = i <= last_loud < i + step
            self._speech.append((frame, utt, is_last_loud))
        if self._speech:
            self._idle.clear()

    def _encode(self, pcm: bytes) -> bytes:
        fmt = self.peer.input_format
        if fmt.channels == 2:
            pcm = mono_to_stereo(pcm)
        if fmt.encoding == "ulaw":
            return ulaw_encode(pcm)
        if fmt.encoding == "alaw":
            return alaw_encode(pcm)
        return pcm

    async def _microphone(self) -> None:
        loop = asyncio.get_running_loop()
        silent = bytes(self._chunk_bytes)
        period = self.chunk_ms / 1000 / self.speed
        next_t = loop.time()
        while True:
            if self._speech:
                frame, utt, last_loud = self._speech.popleft()
                if len(frame) < self._chunk_bytes:
                    frame += bytes(self._chunk_bytes - len(frame))
            else:
                frame, utt, last_loud = silent, None, False
            now = time.monotonic()
            if utt is not None and not utt.started_t:
                utt.started_t = now
            await self.peer.send_audio(self._encode(frame))
            if utt is not None:
                utt.sent_t = now
                if last_loud:
                    utt.speech_end_t = now
            if not self._speech:
                self._idle.set()
            next_t += period
            await asyncio.sleep(max(0.0, next_t - loop.time()))

    # -- listening ---------------------------------------------------------------------

    def _decode(self, audio: bytes) -> bytes:
        fmt = self.peer.output_format
        if fmt.encoding == "ulaw":
            pcm = ulaw_decode(audio)
        elif fmt.encoding == "alaw":
            pcm = alaw_decode(audio)
        else:
            pcm = audio
        return stereo_to_mono(pcm) if fmt.channels == 2 else pcm

    async def _listen(self) -> None:
        while (item := await self.peer.receive()) is not None:
            if isinstance(item, ReplyAudio):
                reply = self.replies.setdefault(item.response_id, Reply(item.response_id))
                if reply.first_audio_t is None:
                    reply.first_audio_t = time.monotonic()
                pcm = self._decode(item.audio)
                if reply.cleared:
                    reply.audio_after_clear += len(pcm)
                    continue
                reply.received += pcm
                if item.text:
                    reply.texts.append(item.text)
                self._queue.append((item.response_id, pcm))
                self.last_audio_t = time.monotonic()
                self._new_audio.set()
                self._notify()
            elif isinstance(item, ClearAudio):
                reply = self.replies.setdefault(item.response_id, Reply(item.response_id))
                reply.cleared = True
                self._queue = deque(q for q in self._queue if q[0] != item.response_id)

    async def _speaker(self) -> None:
        # The play clock: ``chunk_ms`` of audio per tick, at ``speed``.
        loop = asyncio.get_running_loop()
        period = self.chunk_ms / 1000 / self.speed
        budget_bytes = 2 * self.out_rate * self.chunk_ms // 1000
        next_t = loop.time()
        while True:
            if not self._queue:
                self._new_audio.clear()
                await self._new_audio.wait()
                next_t = loop.time()
            budget = budget_bytes
            touched: set[str] = set()
            while budget and self._queue:
                rid, pcm = self._queue[0]
                take = pcm[:budget]
                if len(take) < len(pcm):
                    self._queue[0] = (rid, pcm[len(take) :])
                else:
                    self._queue.popleft()
                budget -= len(take)
                self.replies[rid].heard += take
                self._played_ms[rid] = (
                    self._played_ms.get(rid, 0.0) + len(take) / 2 / self.out_rate * 1000
                )
                touched.add(rid)
            for rid in touched:
                played = self._played_ms[rid]
                drained = not any(q[0] == rid for q in self._queue)
                if drained or played - self._reported_ms.get(rid, 0.0) >= self.report_every_ms:
                    self._reported_ms[rid] = played
                    await self.peer.report_playback(rid, played)
            if touched:
                self._notify()
            next_t += period
            await asyncio.sleep(max(0.0, next_t - loop.time()))

    # -- what was heard ----------------------------------------------------------------

    def played_ms(self, response_id: str) -> float:
        return self._played_ms.get(response_id, 0.0)

    @property
    def playing(self) -> bool:
        return bool(self._queue)

    async def wait_for_reply(self, *, after: float = 0.0) -> Reply:
        """The first reply whose audio arrived after ``after`` (a monotonic time).
        Wrap in ``asyncio.timeout`` to bound the wait."""
        while True:
            for reply in self.replies.values():
                if reply.first_audio_t is not None and reply.first_audio_t >= after:
                    return reply
            await self._changed.wait()

    async def wait_heard_ms(self, response_id: str, ms: float) -> None:
        """Until ``ms`` of reply ``response_id`` has been played."""
        while self.played_ms(response_id) < ms:
            await self._changed.wait()

    async def wait_quiet(self, quiet_ms: float = 1000.0) -> None:
        """Until nothing is left to play and no audio came for ``quiet_ms`` (audio time)."""
        while True:
            idle_s = time.monotonic() - self.last_audio_t
            if not self._queue and idle_s * self.speed * 1000 >= quiet_ms:
                return
            await asyncio.sleep(0.01)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

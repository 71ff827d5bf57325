"""Deterministic stand-ins for the four provider seams, for users' unit tests.

They satisfy :mod:`parley.providers.seams` exactly like the real models and do real
(cheap) work on real PCM: ``FakeVAD`` measures energy, ``FakeTTS`` makes a tone as
long as the text would take to say, so turn-taking, barge-in and playback maths
behave as with real models, in milliseconds and without model files.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np

from parley.errors import ParleyError
from parley.events import ToolCall
from parley.providers.seams import LLMChunk, Message, ToolSpec, Transcript

__all__ = [
    "FakeLLM",
    "FakeSTT",
    "FakeTTS",
    "FakeVAD",
    "FakeVADStream",
    "silence",
    "tone",
    "tool_call",
]


def tone(
    ms: float, sample_rate: int = 16000, *, freq: float = 440.0, amplitude: int = 8000
) -> bytes:
    """A sine tone as PCM16 mono: "speech" to an energy VAD."""
    n = round(ms * sample_rate / 1000)
    t = np.arange(n, dtype=np.float64) / sample_rate
    return (amplitude * np.sin(2 * math.pi * freq * t)).astype("<i2").tobytes()


def silence(ms: float, sample_rate: int = 16000) -> bytes:
    return bytes(2 * round(ms * sample_rate / 1000))


class FakeVADStream:
    """Probability 1.0 for a frame whose RMS reaches ``threshold``, else 0.0."""

    __slots__ = ("_frame_bytes", "_threshold", "frames")

    def __init__(self, frame_bytes: int, threshold: float) -> None:
        self._frame_bytes = frame_bytes
        self._threshold = threshold
        self.frames = 0

    @property
    def frame_bytes(self) -> int:
        return self._frame_bytes

    def probability(self, frame: bytes) -> float:
        self.frames += 1
        x = np.frombuffer(frame, dtype="<i2").astype(np.float64)
        rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
        return 1.0 if rms >= self._threshold else 0.0

    def reset(self) -> None:
        self.frames = 0


class FakeVAD:
    """Energy threshold VAD; ``streams`` lists every per-call stream it made."""

    def __init__(
        self,
        sample_rate: int = 16000,
        *,
        frame_ms: int = 32,
        threshold: float = 500.0,
        error: ParleyError | None = None,
    ) -> None:
        self._sample_rate = sample_rate
        self._frame_bytes = 2 * sample_rate * frame_ms // 1000
        self._threshold = threshold
        self._error = error
        self.streams: list[FakeVADStream] = []

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    def stream(self) -> FakeVADStream:
        if self._error is not None:
            raise self._error
        s = FakeVADStream(self._frame_bytes, self._threshold)
        self.streams.append(s)
        return s


class FakeSTT:
    """Returns scripted transcripts in order (the last one repeats); records the audio.

    ``error`` makes every call raise it; ``delay_s`` simulates model time.
    """

    def __init__(
        self,
        transcripts: Sequence[str] | str = ("hello",),
        *,
        sample_rate: int = 16000,
        delay_s: float = 0.0,
        error: ParleyError | None = None,
    ) -> None:
        self._script = [transcripts] if isinstance(transcripts, str) else list(transcripts)
        self._sample_rate = sample_rate
        self.delay_s = delay_s
        self.error = error
        self.calls: list[bytes] = []

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    async def transcribe(self, pcm: bytes) -> Transcript:
        self.calls.append(pcm)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        index = min(len(self.calls), len(self._script)) - 1
        text = self._script[index] if self._script else ""
        return Transcript(text=text, duration_s=len(pcm) / 2 / self._sample_rate)


Reply = str | Sequence[LLMChunk]


class FakeLLM:
    """Streams scripted replies word by word; a reply may be a list of chunks that
    includes :class:`~parley.events.ToolCall` objects. The last reply repeats.

    ``reply`` (a function of the messages) overrides the script. ``requests`` records
    what each call was given, so a test can check the history and the tools.
    """

    def __init__(
        self,
        replies: Sequence[Reply] = ("Okay.",),
        *,
        reply: Callable[[Sequence[Message]], Reply] | None = None,
        delay_s: float = 0.0,
        first_token_delay_s: float = 0.0,
        error: ParleyError | None = None,
    ) -> None:
        self._script = list(replies)
        self._reply = reply
        self.delay_s = delay_s
        self.first_token_delay_s = first_token_delay_s
        self.error = error
        self.requests: list[tuple[list[Message], list[ToolSpec]]] = []

    async def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LLMChunk]:
        self.requests.append((list(messages), list(tools)))
        if self.error is not None:
            raise self.error
        if self._reply is not None:
            reply = self._reply(messages)
        else:
            reply = self._script[min(len(self.requests), len(self._script)) - 1]
        chunks: Sequence[LLMChunk]
        if isinstance(reply, str):
            words = reply.split(" ")
            chunks = [w if i == 0 else f" {w}" for i, w in enumerate(words)]
        else:
            chunks = reply
        if self.first_token_delay_s:
            await asyncio.sleep(self.first_token_delay_s)
        for chunk in chunks:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            yield chunk


class FakeTTS:
    """A 440 Hz tone as long as ``ms_per_char`` × characters, in ``chunk_ms`` chunks."""

    def __init__(
        self,
        sample_rate: int = 16000,
        *,
        ms_per_char: float = 60.0,
        chunk_ms: float = 100.0,
        delay_s: float = 0.0,
        error: ParleyError | None = None,
    ) -> None:
        self._sample_rate = sample_rate
        self.ms_per_char = ms_per_char
        self.chunk_ms = chunk_ms
        self.delay_s = delay_s
        self.error = error
        self.texts: list[str] = []

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    def duration_ms(self, text: str) -> float:
        return len(text) * self.ms_per_char

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.texts.append(text)
        if self.error is not None:
            raise self.error
        audio = tone(self.duration_ms(text), self._sample_rate)
        step = 2 * round(self.chunk_ms * self._sample_rate / 1000)
        for i in range(0, len(audio), step):
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            yield audio[i : i + step]


def tool_call(name: str, arguments: str = "{}", call_id: str = "call_1") -> ToolCall:
    """Shorthand for a scripted :class:`~parley.events.ToolCall` in a ``FakeLLM`` reply."""
    return ToolCall(call_id, name, arguments)

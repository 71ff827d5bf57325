"""Audio devices for the voice client, behind two small Protocols.

:class:`AudioSource` (a microphone) yields PCM16 mono chunks; :class:`AudioSink` (a
speaker) takes them and says how much it has actually played, which is what a
barge-in truncation needs. Two families implement them:

- ``sounddevice`` (PortAudio): :class:`SoundDeviceMicrophone`,
  :class:`SoundDeviceSpeaker`. ``sounddevice`` is imported on first use, since
  PortAudio may be missing (servers, CI); that is a ``ConfigError`` saying so.
- files and memory, for tests and headless use: :class:`WavFileSource` streams a
  WAV (paced like a microphone, or faster), :class:`BufferSpeaker` keeps what is
  played (and writes a WAV on close). ``BufferSpeaker(realtime=True)`` plays on a
  virtual clock, so "how much was heard" behaves as on a real device.

Which devices a client uses when it is given none comes from the environment, so a
program written for a sound card runs headless unchanged (:func:`microphone_from_env`,
:func:`speaker_from_env`): ``PARLEY_MICROPHONE=said.wav`` speaks that file as the
microphone (paced at real time, then it ends); ``PARLEY_SPEAKER=reply.wav`` writes
every reply received to that WAV on close (as ``parley talk --out`` does),
``PARLEY_SPEAKER=null`` plays them on a virtual clock into nothing (so a barge-in
still truncates at what was "heard"). Unset (or ``default``): the sound card.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from parley.audio import StreamResampler, read_wav, stereo_to_mono, write_wav
from parley.errors import ConfigError

__all__ = [
    "MICROPHONE_ENV",
    "SPEAKER_ENV",
    "AudioSink",
    "AudioSource",
    "BufferSpeaker",
    "SoundDeviceMicrophone",
    "SoundDeviceSpeaker",
    "WavFileSource",
    "load_sounddevice",
    "microphone_from_env",
    "speaker_from_env",
]

MICROPHONE_ENV = "PARLEY_MICROPHONE"
SPEAKER_ENV = "PARLEY_SPEAKER"


@runtime_checkable
class AudioSource(Protocol):
    """A microphone: PCM16 mono chunks at ``sample_rate``; ``chunks()`` ends when the
    source is exhausted or closed."""

    @property
    def sample_rate(self) -> int: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...


@runtime_checkable
class AudioSink(Protocol):
    """A speaker: PCM16 mono at ``sample_rate``. ``write`` queues and returns at once;
    ``played_ms`` counts what has come out so far (all time), ``queued_ms`` what is
    waiting; ``clear`` drops the queue (barge-in)."""

    @property
    def sample_rate(self) -> int: ...

    @property
    def played_ms(self) -> float: ...

    @property
    def queued_ms(self) -> float: ...

    def write(self, pcm: bytes) -> None: ...

    def clear(self) -> None: ...

    async def close(self) -> None: ...


def _ms(nbytes: int, sample_rate: int) -> float:
    return nbytes / 2 / sample_rate * 1000


# -- files and memory ------------------------------------------------------------------


class WavFileSource:
    """A WAV file (or its bytes) as a microphone.

    The audio is converted to mono at ``sample_rate`` (default: the file's rate) and
    handed out in ``chunk_ms`` chunks, paced at ``speed`` × real time (``0`` = as fast
    as the consumer takes it). ``trailing_silence_ms`` of silence follows, as a
    microphone would keep sending after the sentence, so a VAD sees its end.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | bytes,
        *,
        sample_rate: int | None = None,
        chunk_ms: int = 20,
        speed: float = 1.0,
        trailing_silence_ms: float = 1000.0,
    ) -> None:
        pcm, rate, channels = read_wav(source)
        if channels == 2:
            pcm = stereo_to_mono(pcm)
        elif channels != 1:
            raise ConfigError(f"{channels}-channel WAV; use mono or stereo", field="source")
        target = sample_rate or rate
        if target != rate:
            rs = StreamResampler(rate, target)
            pcm = rs.process(pcm) + rs.flush()
        if chunk_ms <= 0 or speed < 0:
            raise ConfigError("chunk_ms must be > 0 and speed ≥ 0", field="chunk_ms")
        self._rate = target
        self._pcm = pcm + bytes(2 * int(target * trailing_silence_ms / 1000))
        self._chunk = target * chunk_ms // 1000 * 2
        self._speed = speed
        self._closed = False

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def duration_ms(self) -> float:
        return _ms(len(self._pcm), self._rate)

    async def chunks(self) -> AsyncIterator[bytes]:
        t0 = time.monotonic()
        sent = 0
        for i in range(0, len(self._pcm), self._chunk):
            if self._closed:
                return
            chunk = self._pcm[i : i + self._chunk]
            if self._speed > 0:
                # Pace by the total sent, not per chunk, so sleep jitter does not add up.
                due = t0 + _ms(sent, self._rate) / 1000 / self._speed
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            else:
                await asyncio.sleep(0)  # let the consumer's other tasks run
            sent += len(chunk)
            yield chunk

    async def close(self) -> None:
        self._closed = True


class BufferSpeaker:
    """A speaker that keeps what it plays (``audio``) and can save it as a WAV.

    ``realtime=False``: a write is played at once. ``realtime=True``: the queue is
    played at 1 × real time on a virtual clock (no thread, no task), so a reply of
    2 s takes 2 s to "hear" and ``clear()`` mid-reply drops the unplayed rest.
    ``path``: where ``close()`` writes the played audio as a WAV. ``keep=False``: a null
    sink — the audio is counted and dropped (``audio`` stays empty).
    """

    def __init__(
        self,
        sample_rate: int = 24000,
        *,
        realtime: bool = False,
        path: str | os.PathLike[str] | None = None,
        keep: bool = True,
    ) -> None:
        if path is not None and not keep:
            raise ConfigError("a speaker that writes a WAV must keep its audio", field="keep")
        self._rate = sample_rate
        self._realtime = realtime
        self._path = Path(path) if path is not None else None
        self._keep = keep
        self._played = bytearray()
        self._played_bytes = 0
        self._queue = bytearray()
        self._clock = time.monotonic()  # where the virtual playhead stands
        self.cleared_ms = 0.0  # dropped by clear(), all time

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def audio(self) -> bytes:
        """Everything played so far (PCM16 mono at ``sample_rate``)."""
        self._advance()
        return bytes(self._played)

    @property
    def played_ms(self) -> float:
        self._advance()
        return _ms(self._played_bytes, self._rate)

    @property
    def queued_ms(self) -> float:
        self._advance()
        return _ms(len(self._queue), self._rate)

    def write(self, pcm: bytes) -> None:
        self._advance()
        if not self._queue:
            self._clock = time.monotonic()  # an idle speaker starts playing now
        self._queue += pcm
        self._advance()

    def clear(self) -> None:
        self._advance()
        self.cleared_ms += _ms(len(self._queue), self._rate)
        self._queue.clear()

    async def close(self) -> None:
        self._advance()
        if self._path is not None:
            write_wav(self._path, bytes(self._played), self._rate)

    def _advance(self) -> None:
        if not self._queue:
            return
        if not self._realtime:
            self._play(len(self._queue))
            return
        now = time.monotonic()
        n = min(len(self._queue), int((now - self._clock) * self._rate) * 2)
        if n <= 0:
            return
        self._play(n)
        self._clock += n / 2 / self._rate

    def _play(self, n: int) -> None:
        if self._keep:
            self._played += self._queue[:n]
        self._played_bytes += n
        del self._queue[:n]


# -- sounddevice (PortAudio) -------------------------------------------------------------


def load_sounddevice() -> Any:
    """Import ``sounddevice`` now; ``ConfigError`` if it or PortAudio is missing.

    Typed ``Any``: sounddevice ships no type information.
    """
    try:
        return importlib.import_module("sounddevice")
    except ImportError:
        raise ConfigError(
            "the voice client's microphone and speaker need `sounddevice` "
            f"(pip install sounddevice), or set {MICROPHONE_ENV} / {SPEAKER_ENV}",
            field="devices",
        ) from None
    except OSError as exc:  # sounddevice raises OSError when libportaudio is absent
        raise ConfigError(
            f"sounddevice cannot load PortAudio ({exc}); install it "
            "(Debian/Ubuntu: apt-get install libportaudio2) or use file devices "
            f"({MICROPHONE_ENV}=said.wav, {SPEAKER_ENV}=reply.wav or null)",
            field="devices",
        ) from None


@contextlib.contextmanager
def _no_device(sd: Any, env: str) -> Iterator[None]:
    """PortAudio is there but the device is not (a server, a container)."""
    try:
        yield
    except sd.PortAudioError as exc:
        what = "a WAV file to write, or null" if env == SPEAKER_ENV else "a WAV file to speak"
        raise ConfigError(f"no sound device ({exc}); set it to {what}", field=env) from None


class SoundDeviceMicrophone:
    """The default (or a chosen) input device via PortAudio, ``block_ms`` per chunk."""

    def __init__(
        self,
        sample_rate: int = 24000,
        *,
        device: int | str | None = None,
        block_ms: int = 20,
        max_queued_blocks: int = 100,
    ) -> None:
        self._rate = sample_rate
        self._device = device
        self._block = sample_rate * block_ms // 1000
        self._max = max_queued_blocks
        self._stream: Any = None
        self._queue: asyncio.Queue[bytes | None] | None = None
        self.dropped_blocks = 0

    @property
    def sample_rate(self) -> int:
        return self._rate

    async def chunks(self) -> AsyncIterator[bytes]:
        sd = load_sounddevice()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(self._max)
        self._queue = queue

        def put(data: bytes) -> None:
            if queue.full():  # the loop lags: drop (and count) rather than grow
                self.dropped_blocks += 1
                return
            queue.put_nowait(data)

        def callback(indata: Any, frames: int, time_info: Any, status: Any) -> None:
            # PortAudio's thread: hand the block to the loop, nothing else.
            loop.call_soon_threadsafe(put, bytes(indata))

        with _no_device(sd, MICROPHONE_ENV):
            self._stream = sd.RawInputStream(
                samplerate=self._rate,
                blocksize=self._block,
                device=self._device,
                channels=1,
                dtype="int16",
                callback=callback,
            )
            self._stream.start()
        try:
            while (chunk := await queue.get()) is not None:
                yield chunk
        finally:
            await self.close()

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()
        if self._queue is not None and not self._queue.full():
            self._queue.put_nowait(None)


class SoundDeviceSpeaker:
    """The default (or a chosen) output device via PortAudio.

    PortAudio's callback pulls from a byte queue (silence when it is empty) and counts
    what it has handed to the device; ``played_ms`` is that count (the device's own
    output latency, a few ms to tens of ms, is not subtracted).
    """

    def __init__(
        self,
        sample_rate: int = 24000,
        *,
        device: int | str | None = None,
        block_ms: int = 20,
    ) -> None:
        self._rate = sample_rate
        self._device = device
        self._block = sample_rate * block_ms // 1000
        self._lock = threading.Lock()
        self._queue = bytearray()
        self._played_bytes = 0
        self._stream: Any = None

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def played_ms(self) -> float:
        with self._lock:
            return _ms(self._played_bytes, self._rate)

    @property
    def queued_ms(self) -> float:
        with self._lock:
            return _ms(len(self._queue), self._rate)

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        need = frames * 2
        with self._lock:
            n = min(need, len(self._queue))
            outdata[:n] = self._queue[:n]
            del self._queue[:n]
            self._played_bytes += n
        if n < need:
            outdata[n:need] = bytes(need - n)

    def write(self, pcm: bytes) -> None:
        if self._stream is None:
            sd = load_sounddevice()
            with _no_device(sd, SPEAKER_ENV):
                self._stream = sd.RawOutputStream(
                    samplerate=self._rate,
                    blocksize=self._block,
                    device=self._device,
                    channels=1,
                    dtype="int16",
                    callback=self._callback,
                )
                self._stream.start()
        with self._lock:
            self._queue += pcm

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()


# -- chosen by the environment ---------------------------------------------------------


def _env_device(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return None if value in ("", "default") else value


def microphone_from_env(sample_rate: int, *, block_ms: int = 20) -> AudioSource:
    """``$PARLEY_MICROPHONE``: a WAV file spoken at real time in ``block_ms`` chunks (then
    the source ends), or, unset or ``default``, the sound card."""
    value = _env_device(MICROPHONE_ENV)
    if value is None:
        return SoundDeviceMicrophone(sample_rate, block_ms=block_ms)
    if not Path(value).is_file():
        raise ConfigError(f"{MICROPHONE_ENV}={value!r}: no such WAV file", field=MICROPHONE_ENV)
    return WavFileSource(value, sample_rate=sample_rate, chunk_ms=block_ms)


def speaker_from_env(sample_rate: int, *, block_ms: int = 20) -> AudioSink:
    """``$PARLEY_SPEAKER``: ``null`` (played on a virtual clock and dropped), a WAV path
    (all audio written on close), or, unset or ``default``, the sound card."""
    value = _env_device(SPEAKER_ENV)
    if value is None:
        return SoundDeviceSpeaker(sample_rate, block_ms=block_ms)
    if value == "null":
        return BufferSpeaker(sample_rate, realtime=True, keep=False)
    return BufferSpeaker(sample_rate, path=value)

"""Stateful streaming resampling of PCM16 with libsoxr.

One :class:`StreamResampler` per stream and direction, created once per call: soxr keeps
filter history between chunks, so 20 ms frames join without clicks. Never share one
across calls; a rate change needs a new instance.

Added delay, measured by ``python bench/resampler_delay.py`` (steady-state output deficit
with 20 ms chunks, python-soxr 1.1.0 / libsoxr 0.1.3; the stream output is time-aligned,
so the deficit *is* the latency; ms, "a/b" = up/down where the directions differ)::

    quality  8k↔16k    8k↔24k    8k→48k  48k→8k  16k↔24k  16k↔48k  24k↔48k
    QQ       0.25/0.1  0.2/0.0   0.25    0.0     0.1      0.1      0.1
    LQ       33.0      22.0      32.0    21.8    11.1     11.1     10.3
    MQ       63.8      43.0      53.1    44.5    21.3     21.3     20.5
    HQ       63.7      43.2      96.3    85.7    20.6     20.6     21.5
    VHQ      64.1      85.5      97.6    86.6    42.9     42.9     21.2

The default is ``"LQ"``: 22 ms each way on the Twilio 8 kHz ↔ 24 kHz path instead of
VHQ's 85 ms (Pipecat's default), with alias rejection of about -82 dB like every quality
above QQ. Its price, measured by the same bench: on paths touching 8 kHz it is flat to
3 kHz (-0.3 dB) but -7.8 dB at 3.4 kHz, the top of the telephone band; choose ``"MQ"``
(flat to 3.4 kHz, 43 ms) where that edge matters more than 21 ms. ``"QQ"`` adds almost
no delay but has no anti-aliasing filter when downsampling (a 6.4 kHz tone comes out of a
24→8 kHz conversion at 0 dB, folded to 1.6 kHz) and is -3 dB at 3.4 kHz when
upsampling: not for speech. CPU cost is about the same for every quality (roughly
2.5–5 µs per 20 ms mono frame at telephone rates on this 2-core machine, load-sensitive);
per-call overhead dominates.

``flush()`` returns the tail held in the filter (the last ~delay of audio). Call it at
the end of every utterance; dropping it loses the last syllable (Pipecat issue #5769).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal, get_args

import numpy as np
import numpy.typing as npt
import soxr

from parley.audio.pcm import BytesLike, pcm16_array
from parley.errors import ConfigError

__all__ = ["DEFAULT_QUALITY", "Quality", "StreamResampler", "resample_once"]

Quality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]
DEFAULT_QUALITY: Final[Quality] = "LQ"

_QUALITIES: Final = frozenset(get_args(Quality))
_INT16: Final = np.dtype("<i2")
_ProcessFn = Callable[[npt.NDArray[np.int16], bool], npt.NDArray[np.int16]]


class StreamResampler:
    """Resample a continuous PCM16 stream chunk by chunk.

    ``process`` takes any whole number of samples and returns what soxr has ready (the
    amount varies by a sample or so per chunk); ``flush`` ends the utterance, returns the
    tail and makes the instance ready for the next one. Equal rates pass through.

    Odd-length input raises :class:`~parley.errors.LocalProtocolError`: the resampler is
    fed by Parley after a protocol module validated the peer's bytes, so a bad length
    here is our bug, not the peer's. Bad rates, channels or quality raise ``ConfigError``.
    """

    __slots__ = ("_channels", "_empty", "_in_rate", "_out_rate", "_process", "_quality", "_stream")

    def __init__(
        self,
        in_rate: int,
        out_rate: int,
        channels: int = 1,
        quality: Quality = DEFAULT_QUALITY,
    ) -> None:
        for name, rate in (("in_rate", in_rate), ("out_rate", out_rate)):
            if not isinstance(rate, int) or isinstance(rate, bool) or not 1000 <= rate <= 384_000:
                raise ConfigError(
                    f"must be an integer in [1000, 384000] Hz, got {rate!r}", field=name
                )
        if channels not in (1, 2) or isinstance(channels, bool):
            raise ConfigError(f"must be 1 or 2, got {channels!r}", field="channels")
        if quality not in _QUALITIES:
            raise ConfigError(
                f"unknown quality {quality!r}; expected one of {sorted(_QUALITIES)}",
                field="quality",
            )
        self._in_rate = in_rate
        self._out_rate = out_rate
        self._channels = channels
        self._quality: Quality = quality
        self._empty = np.zeros((0, channels), dtype=_INT16)
        self._process: _ProcessFn | None = None
        if in_rate != out_rate:
            stream = soxr.ResampleStream(
                in_rate, out_rate, channels, dtype="int16", quality=quality
            )
            # Hot path: ResampleStream.resample_chunk only type-checks, adds an axis and
            # squeezes it again around its bound C method ``_process`` (python-soxr 0.4–1.1);
            # calling that with our (frames, channels) view saves ~0.7 µs of the ~3.5 µs per
            # 20 ms frame. If a future soxr drops the attribute we use the public method.
            fast = getattr(stream, "_process", None)
            self._process = fast if callable(fast) else _public_process(stream)
            self._stream: soxr.ResampleStream | None = stream
        else:
            self._stream = None

    @property
    def in_rate(self) -> int:
        return self._in_rate

    @property
    def out_rate(self) -> int:
        return self._out_rate

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def quality(self) -> Quality:
        return self._quality

    def process(self, pcm: BytesLike) -> bytes:
        """Resample one chunk of PCM16 (interleaved if stereo); returns PCM16 at ``out_rate``."""
        samples = pcm16_array(pcm, self._channels)
        if self._process is None:
            return bytes(pcm)
        return self._process(samples, False).tobytes()

    def process_array(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        """Like ``process`` on an int16 array: 1-D (mono) or ``(frames, channels)``.

        Returns a ``(frames, channels)`` array. Lets a codec hand its decoded array over
        without a round trip through ``bytes``.
        """
        if samples.dtype != np.int16:
            raise TypeError(f"expected int16 samples, got {samples.dtype}")
        if samples.ndim == 1:
            samples = samples.reshape(-1, self._channels)  # a view, still C-contiguous
        elif not samples.flags.c_contiguous:
            samples = np.ascontiguousarray(samples)
        if self._process is None:
            return samples
        return self._process(samples, False)

    def flush(self) -> bytes:
        """End the utterance: return the audio still inside the filter, then reset."""
        if self._process is None or self._stream is None:
            return b""
        tail = self._process(self._empty, True).tobytes()
        # After ``last=True`` soxr accepts no more input until cleared.
        self._stream.clear()
        return tail

    def reset(self) -> None:
        """Drop the buffered audio without returning it (barge-in: the tail is unwanted)."""
        if self._stream is not None:
            self._stream.clear()

    def delay_ms(self) -> float:
        """Audio currently held inside the filter, in milliseconds of output."""
        if self._stream is None:
            return 0.0
        return float(self._stream.delay()) * 1000.0 / self._out_rate

    def __repr__(self) -> str:
        return (
            f"StreamResampler({self._in_rate}, {self._out_rate}, "
            f"channels={self._channels}, quality={self._quality!r})"
        )


def resample_once(pcm: BytesLike, in_rate: int, out_rate: int, quality: Quality = "HQ") -> bytes:
    """A whole mono PCM16 buffer at ``in_rate`` → ``out_rate`` in one call (no stream
    state, no delay: soxr sees the whole signal). For an utterance that one consumer
    needs at another rate — a phone call's speech, scored by the VAD at 8 kHz, going
    to a 16 kHz STT — once per utterance instead of a stream resample per frame.
    HQ: flat across the telephone band, ~0.2 ms per 3 s of 8 kHz speech."""
    samples = pcm16_array(pcm, 1)
    if in_rate == out_rate or not len(samples):
        return bytes(pcm)
    out: npt.NDArray[np.int16] = soxr.resample(samples, in_rate, out_rate, quality=quality)
    return out.tobytes()


def _public_process(stream: soxr.ResampleStream) -> _ProcessFn:
    def process(samples: npt.NDArray[np.int16], last: bool) -> npt.NDArray[np.int16]:
        out: npt.NDArray[np.int16] = stream.resample_chunk(samples, last=last)
        return out

    return process

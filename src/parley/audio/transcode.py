"""One transcoder per call and direction: a stream in one :class:`AudioFormat` → another.

A :class:`Transcoder` is built once from its two formats (the caller's line and the
engine's input, the engine's voice and the line). The steps are chosen then — a
G.711 decode table or a PCM16 view, a downmix, one soxr stream, an upmix, a G.711
encode table — so :meth:`Transcoder.process` runs a fixed chain: per 20 ms frame at
most one table lookup each way and one stateful resample (DESIGN.md §4), and no
dispatch on encoding names. Equal formats pass straight through: G.711 to a phone
line is never decoded.

Stereo to mono is the floor of the two channels' mean and mono to stereo repeats the
sample, as ``audioop.tomono(…, 0.5, 0.5)`` and ``audioop.tostereo(…, 1, 1)`` do; the
downmix comes before the resampler and the upmix after it, so soxr filters one channel
where one suffices. Opus is not a sample format: decode it in the transport
(:mod:`parley.audio.opus`) and hand PCM16 over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
import numpy.typing as npt

from parley.audio.format import AudioFormat
from parley.audio.g711 import (
    alaw_decode_array,
    alaw_encode_array,
    ulaw_decode_array,
    ulaw_encode_array,
)
from parley.audio.pcm import BytesLike
from parley.audio.resample import DEFAULT_QUALITY, Quality, StreamResampler
from parley.errors import ConfigError, LocalProtocolError, RemoteProtocolError

__all__ = ["ReplyTranscoder", "Transcoder"]

_INT16: Final = np.dtype("<i2")
_Samples = npt.NDArray[np.int16]
_Decode = Callable[[BytesLike], _Samples]
_Encode = Callable[[_Samples], bytes]


def _pcm16_view(data: BytesLike) -> _Samples:
    return np.frombuffer(data, dtype=_INT16)


def _pcm16_bytes(samples: _Samples) -> bytes:
    return samples.tobytes()


_DECODERS: Final[dict[str, _Decode]] = {
    "pcm16": _pcm16_view,
    "ulaw": ulaw_decode_array,
    "alaw": alaw_decode_array,
}
_ENCODERS: Final[dict[str, _Encode]] = {
    "pcm16": _pcm16_bytes,
    "ulaw": ulaw_encode_array,
    "alaw": alaw_encode_array,
}


def _downmix(frames: _Samples) -> _Samples:
    # The mean of the two channels, rounded toward minus infinity: cannot overflow.
    wide = frames.astype(np.int32)
    mixed: _Samples = ((wide[:, 0] + wide[:, 1]) >> 1).astype(_INT16)
    return mixed.reshape(-1, 1)


def _upmix(frames: _Samples) -> _Samples:
    stereo: _Samples = np.repeat(frames.reshape(-1, 1), 2, axis=1)
    return stereo


class Transcoder:
    """Audio in ``src`` → audio in ``dst``, chunk by chunk, for one stream.

    ``process`` takes any whole number of samples (frames, for stereo) and returns
    what is ready; a resampling transcoder keeps soxr's filter history between
    chunks, so ``flush`` returns the tail at the end of an utterance or reply and
    ``reset`` drops it (barge-in: the rest of a cut reply must not leak into the
    next). Never share one across calls or directions.

    A chunk that is not whole samples raises ``RemoteProtocolError(code=
    "bad_audio_length")`` when ``from_peer`` (the bytes came off a socket), else
    ``LocalProtocolError(code="bad_pcm_length")`` (Parley made them: our bug).
    Opus on either side raises ``ConfigError``.
    """

    __slots__ = (
        "_decode",
        "_downmix",
        "_dst",
        "_encode",
        "_from_peer",
        "_passthrough",
        "_resampler",
        "_src",
        "_step",
        "_upmix",
    )

    def __init__(
        self,
        src: AudioFormat,
        dst: AudioFormat,
        *,
        quality: Quality = DEFAULT_QUALITY,
        from_peer: bool = False,
    ) -> None:
        for side, fmt in (("src", src), ("dst", dst)):
            if fmt.encoding == "opus":
                raise ConfigError(
                    "Opus is decoded and encoded in the transport; transcode PCM16 or G.711",
                    field=side,
                )
        self._src, self._dst = src, dst
        self._from_peer = from_peer
        self._step = src.channels * src.sample_width  # bytes per frame of input
        self._passthrough = src == dst
        self._decode = _DECODERS[src.encoding]
        self._encode = _ENCODERS[dst.encoding]
        self._downmix = src.channels == 2 and dst.channels == 1
        self._upmix = src.channels == 1 and dst.channels == 2
        channels = 2 if src.channels == dst.channels == 2 else 1
        self._resampler: StreamResampler | None = (
            StreamResampler(src.sample_rate, dst.sample_rate, channels, quality)
            if src.sample_rate != dst.sample_rate
            else None
        )

    @property
    def src(self) -> AudioFormat:
        return self._src

    @property
    def dst(self) -> AudioFormat:
        return self._dst

    @property
    def passthrough(self) -> bool:
        """True when the formats are equal and ``process`` returns its input as is."""
        return self._passthrough

    def takes(self, encoding: str, sample_rate: int, channels: int = 1) -> bool:
        """Whether this transcoder reads that format (a stream whose source format can
        change, such as an engine switching voices, checks this per chunk and builds
        a new transcoder when it says no)."""
        src = self._src
        return (
            src.encoding == encoding and src.sample_rate == sample_rate and src.channels == channels
        )

    def process(self, data: BytesLike) -> bytes:
        """One chunk in ``src`` → the converted audio in ``dst`` (possibly empty)."""
        if len(data) % self._step:
            self._bad_length(len(data))
        if self._passthrough:
            return data if isinstance(data, bytes) else bytes(data)
        frames = self._decode(data).reshape(-1, self._src.channels)
        if self._downmix:
            frames = _downmix(frames)
        if self._resampler is not None:
            frames = self._resampler.process_array(frames)
        if self._upmix:
            frames = _upmix(frames)
        return self._encode(frames)

    def flush(self) -> bytes:
        """End of the utterance or reply: the audio still inside the resampler, in ``dst``."""
        if self._resampler is None:
            return b""
        tail = self._resampler.flush()
        if not tail:
            return b""
        frames = np.frombuffer(tail, dtype=_INT16).reshape(-1, self._resampler.channels)
        if self._upmix:
            frames = _upmix(frames)
        return self._encode(frames)

    def reset(self) -> None:
        """Drop what the resampler holds without returning it."""
        if self._resampler is not None:
            self._resampler.reset()

    def _bad_length(self, n: int) -> None:
        src = self._src
        message = (
            f"{n} bytes is not whole {src.encoding} frames of {src.channels} channel(s) "
            f"({self._step} bytes each)"
        )
        if self._from_peer:
            raise RemoteProtocolError(message, code="bad_audio_length")
        raise LocalProtocolError(message, code="bad_pcm_length")

    def __repr__(self) -> str:
        return f"Transcoder({self._src!r} → {self._dst!r})"


class ReplyTranscoder:
    """An engine's reply audio → one fixed ``dst``, whatever format the engine speaks.

    Holds one :class:`Transcoder` and replaces it only when a chunk arrives in another
    format (a voice at another rate, a realtime engine's G.711): the check is three
    comparisons per chunk, the rebuild happens once per change.
    """

    __slots__ = ("_dst", "_quality", "_transcoder")

    def __init__(self, dst: AudioFormat, *, quality: Quality = DEFAULT_QUALITY) -> None:
        if dst.encoding == "opus":
            raise ConfigError("encode Opus in the transport, take PCM16", field="dst")
        self._dst = dst
        self._quality: Quality = quality
        self._transcoder: Transcoder | None = None

    @property
    def dst(self) -> AudioFormat:
        return self._dst

    def process(self, data: BytesLike, encoding: str, sample_rate: int) -> bytes:
        """One mono chunk in ``encoding`` at ``sample_rate`` → ``dst``."""
        tc = self._transcoder
        if tc is None or not tc.takes(encoding, sample_rate):
            src = AudioFormat(encoding, sample_rate)  # type: ignore[arg-type]
            tc = self._transcoder = Transcoder(src, self._dst, quality=self._quality)
        return tc.process(data)

    def flush(self) -> bytes:
        """End of a reply: the resampler's tail."""
        return b"" if self._transcoder is None else self._transcoder.flush()

    def reset(self) -> None:
        """A cut reply: its tail must not leak into the next one."""
        if self._transcoder is not None:
            self._transcoder.reset()

"""Opus encode/decode of 20 ms PCM16 frames (Discord, WebRTC) through PyAV.

Why PyAV and not opuslib: PyAV's wheels ship FFmpeg built with libopus, so
``pip install av`` is the whole install on Linux, macOS and Windows; opuslib is a ctypes
binding that needs a system ``libopus`` (an apt package) and has been unmaintained since
2018. PyAV is imported lazily so ``parley.audio`` works without the ``opus`` extra.

Both classes keep codec state for one stream (one per call and direction, like the
resampler). The encoder frames arbitrary PCM into exact 20 ms frames itself, so a TTS
chunk of any length can be pushed; each 20 ms frame becomes one Opus packet. The libopus
encoder has a look-ahead of 312 samples at 48 kHz (6.5 ms): decoded audio lags the
input by that much.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

import numpy as np

from parley.audio.format import AudioFormat
from parley.audio.framing import FrameChunker
from parley.audio.pcm import BytesLike, check_pcm16
from parley.errors import ConfigError, RemoteProtocolError

if TYPE_CHECKING:
    from av.audio.codeccontext import AudioCodecContext

__all__ = ["OPUS_FRAME_MS", "OPUS_SILENCE", "OpusDecoder", "OpusEncoder"]

OPUS_FRAME_MS: Final = 20
OPUS_SILENCE: Final = b"\xf8\xff\xfe"
"""The 3-byte Opus silence frame Discord clients send (discord.py ``OPUS_SILENCE``)."""

_LAYOUTS: Final = {1: "mono", 2: "stereo"}


def _codec(mode: Literal["r", "w"]) -> AudioCodecContext:
    try:
        import av
    except ImportError as exc:  # only the optional ``opus`` extra brings PyAV
        raise ConfigError(
            "Opus needs PyAV: pip install 'parley-voice[opus]'", field="opus"
        ) from exc
    return av.CodecContext.create("libopus", mode)


class OpusEncoder:
    """PCM16 (interleaved) → Opus packets, one per 20 ms frame."""

    def __init__(
        self,
        sample_rate: int = 48000,
        channels: int = 2,
        *,
        bitrate: int = 64000,
        application: str = "voip",
    ) -> None:
        self._format = AudioFormat("opus", sample_rate, channels)  # validates rate/channels
        if not 6000 <= bitrate <= 510_000:
            raise ConfigError(f"must be in [6000, 510000] bit/s, got {bitrate}", field="bitrate")
        if application not in ("voip", "audio", "lowdelay"):
            raise ConfigError(f"unknown Opus application {application!r}", field="application")
        self._samples = self._format.samples_per_frame(OPUS_FRAME_MS)
        self._chunker = FrameChunker(self._samples * channels * 2)
        self._layout = _LAYOUTS[channels]
        self._pts = 0
        ctx = _codec("w")
        ctx.sample_rate = sample_rate
        ctx.layout = self._layout
        ctx.format = "s16"
        ctx.bit_rate = bitrate
        ctx.options = {"application": application, "frame_duration": str(OPUS_FRAME_MS)}
        ctx.open()
        self._ctx = ctx

    @property
    def format(self) -> AudioFormat:
        return self._format

    @property
    def frame_bytes(self) -> int:
        """PCM16 bytes in one 20 ms frame (3,840 for 48 kHz stereo)."""
        return self._chunker.frame_bytes

    def encode(self, pcm: BytesLike) -> list[bytes]:
        """Encode PCM16 of any whole-sample length; returns packets for complete frames.

        A partial frame is kept until the next call (or ``flush``).
        """
        check_pcm16(pcm, self._format.channels)
        packets: list[bytes] = []
        for frame in self._chunker.push(pcm):
            packets.extend(self._encode_frame(frame))
        return packets

    def flush(self) -> list[bytes]:
        """Pad the last partial frame with silence, encode it and drain the encoder."""
        packets: list[bytes] = []
        rest = self._chunker.flush(pad=b"\x00")
        if rest:
            packets.extend(self._encode_frame(rest))
        packets.extend(bytes(p) for p in self._ctx.encode(None))
        return packets

    def _encode_frame(self, frame: bytes) -> list[bytes]:
        import av

        samples = np.frombuffer(frame, dtype=np.int16).reshape(1, -1)
        audio = av.AudioFrame.from_ndarray(samples, format="s16", layout=self._layout)
        audio.sample_rate = self._format.sample_rate
        audio.pts = self._pts
        self._pts += self._samples
        return [bytes(p) for p in self._ctx.encode(audio)]


class OpusDecoder:
    """Opus packets → PCM16 (interleaved) at the chosen rate and channel count.

    Opus decodes any packet to any of its rates and to mono or stereo, so a Discord
    stereo stream can be decoded straight to mono. A corrupt packet comes from the peer:
    ``RemoteProtocolError(code="bad_opus")``.
    """

    def __init__(self, sample_rate: int = 48000, channels: int = 2) -> None:
        self._format = AudioFormat("opus", sample_rate, channels)
        ctx = _codec("r")
        ctx.sample_rate = sample_rate
        ctx.layout = _LAYOUTS[channels]
        ctx.format = "s16"
        ctx.open()
        self._ctx = ctx

    @property
    def format(self) -> AudioFormat:
        return self._format

    def decode(self, packet: BytesLike) -> bytes:
        """Decode one Opus packet to PCM16 (20 ms → 1,920 samples at 48 kHz stereo)."""
        import av

        if not packet:
            raise RemoteProtocolError("empty Opus packet", code="bad_opus")
        try:
            frames = self._ctx.decode(av.Packet(bytes(packet)))
        except av.error.FFmpegError as exc:
            raise RemoteProtocolError(f"corrupt Opus packet: {exc}", code="bad_opus") from exc
        return b"".join(_s16_interleaved(f, self._format.channels) for f in frames)


def _s16_interleaved(frame: object, channels: int) -> bytes:
    import av

    assert isinstance(frame, av.AudioFrame)
    array = frame.to_ndarray()
    if frame.format.name == "s16":  # packed: shape (1, samples * channels)
        return array.astype("<i2", copy=False).tobytes()
    # Planar or float output (another FFmpeg build's decoder): interleave and convert.
    if array.dtype.kind == "f":
        array = np.clip(array * 32768.0, -32768, 32767).astype("<i2")
    if frame.format.is_planar:
        array = array.T
    return np.ascontiguousarray(array.reshape(-1, channels)).astype("<i2").tobytes()

"""Audio conversion between the Realtime wire formats and the engine's PCM16.

Sans-I/O: bytes in, bytes out. The wire formats are the three GA ones
(``audio/pcm`` PCM16 24 kHz, ``audio/pcmu`` and ``audio/pcma`` G.711 8 kHz); the
inside is PCM16 mono at the input pipeline's rate (16 kHz for Silero and Whisper)
and whatever rate the engine's TTS speaks. One soxr stream per direction, made
once per format (DESIGN.md §4).
"""

from __future__ import annotations

from parley.audio import StreamResampler, alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from parley.errors import RemoteProtocolError
from parley.protocols.openai_realtime import RealtimeAudioFormat

__all__ = ["InboundAudio", "OutboundAudio", "wire_ms"]


def wire_ms(fmt: RealtimeAudioFormat, nbytes: int) -> float:
    """Duration of ``nbytes`` of audio in ``fmt`` (G.711: 1 byte a sample)."""
    width = 2 if fmt.encoding == "pcm16" else 1
    return nbytes / width / fmt.sample_rate * 1000


class InboundAudio:
    """Client audio in the session's input format → PCM16 mono at ``rate``."""

    __slots__ = ("_encoding", "_resampler", "format", "rate")

    def __init__(self, fmt: RealtimeAudioFormat, rate: int) -> None:
        self.format = fmt
        self.rate = rate
        self._encoding = fmt.encoding
        self._resampler = StreamResampler(fmt.sample_rate, rate)

    def convert(self, data: bytes) -> bytes:
        if self._encoding == "ulaw":
            pcm = ulaw_decode(data)
        elif self._encoding == "alaw":
            pcm = alaw_decode(data)
        else:
            if len(data) % 2:
                raise RemoteProtocolError(
                    f"input_audio_buffer.append: {len(data)} bytes is not whole PCM16 samples",
                    code="invalid_audio",
                )
            pcm = data
        return self._resampler.process(pcm)

    def flush(self) -> bytes:
        """The audio still inside the resampler (a commit ends the utterance)."""
        return self._resampler.flush()


class OutboundAudio:
    """Engine PCM16 (any rate) → the session's output format.

    The resampler is made for the first rate seen and remade if the engine changes
    rate (a different voice); ``flush`` ends a response, ``reset`` drops the tail
    of a cancelled one.
    """

    __slots__ = ("_encoding", "_resampler", "format")

    def __init__(self, fmt: RealtimeAudioFormat) -> None:
        self.format = fmt
        self._encoding = fmt.encoding
        self._resampler: StreamResampler | None = None

    def convert(self, pcm: bytes, rate: int) -> bytes:
        rs = self._resampler
        if rs is None or rs.in_rate != rate:
            rs = self._resampler = StreamResampler(rate, self.format.sample_rate)
        return self._encode(rs.process(pcm))

    def flush(self) -> bytes:
        if self._resampler is None:
            return b""
        return self._encode(self._resampler.flush())

    def reset(self) -> None:
        if self._resampler is not None:
            self._resampler.reset()

    def _encode(self, pcm: bytes) -> bytes:
        if self._encoding == "ulaw":
            return ulaw_encode(pcm)
        if self._encoding == "alaw":
            return alaw_encode(pcm)
        return pcm

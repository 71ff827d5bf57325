"""Cut arbitrary byte runs into exact fixed-size frames (20 ms for VAD, Opus, Twilio).

Peers and models deliver audio in whatever sizes they like (a TTS chunk of 4,410 bytes,
a browser worklet batch of 8,192); VADs, Opus and paced senders need exact frames.
"""

from __future__ import annotations

from parley.audio.format import AudioFormat
from parley.audio.pcm import BytesLike
from parley.errors import ConfigError

__all__ = ["FrameChunker"]


class FrameChunker:
    """Accumulate bytes and hand out whole frames of ``frame_bytes``; keep the rest.

    ``b"".join(all frames) + chunker.remainder`` always equals everything pushed.
    """

    __slots__ = ("_buffer", "_frame_bytes")

    def __init__(self, frame_bytes: int) -> None:
        if not isinstance(frame_bytes, int) or isinstance(frame_bytes, bool) or frame_bytes <= 0:
            raise ConfigError(
                f"must be a positive integer, got {frame_bytes!r}", field="frame_bytes"
            )
        self._frame_bytes = frame_bytes
        self._buffer = bytearray()

    @classmethod
    def for_format(cls, fmt: AudioFormat, ms: int = 20) -> FrameChunker:
        """A chunker for ``ms``-millisecond frames of ``fmt`` (e.g. 160 bytes for Twilio)."""
        return cls(fmt.frame_bytes(ms))

    @property
    def frame_bytes(self) -> int:
        return self._frame_bytes

    @property
    def remainder(self) -> bytes:
        """Bytes pushed but not yet returned in a frame (always shorter than a frame)."""
        return bytes(self._buffer)

    def __len__(self) -> int:
        return len(self._buffer)

    def push(self, data: BytesLike) -> list[bytes]:
        """Add ``data``; return every complete frame now available, oldest first."""
        size = self._frame_bytes
        if not self._buffer and len(data) == size:  # the common case: already framed
            return [bytes(data)]
        self._buffer += data
        count = len(self._buffer) // size
        if not count:
            return []
        view = memoryview(self._buffer)
        frames = [bytes(view[i * size : (i + 1) * size]) for i in range(count)]
        view.release()  # a bytearray with an exported view cannot be resized
        del self._buffer[: count * size]
        return frames

    def flush(self, pad: bytes | None = None) -> bytes:
        """Return the remainder and empty the buffer.

        With ``pad`` (one byte, e.g. ``b"\\x00"`` for PCM16, ``b"\\xff"`` for µ-law
        silence) a non-empty remainder is padded to a full frame.
        """
        rest = bytes(self._buffer)
        self._buffer.clear()
        if pad is not None and rest:
            if len(pad) != 1:
                raise ConfigError("pad must be a single byte", field="pad")
            rest += pad * (self._frame_bytes - len(rest))
        return rest

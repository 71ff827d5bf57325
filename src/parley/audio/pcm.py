"""PCM16 helpers: length checks, channel conversion.

PCM16 here is always signed 16-bit little-endian, channels interleaved. Everything in
``parley.audio`` is fed by Parley itself (a protocol module has already validated what a
peer sent), so malformed PCM is *our* mistake: :class:`~parley.errors.LocalProtocolError`.
"""

from __future__ import annotations

from typing import Final, TypeAlias

import numpy as np
import numpy.typing as npt

from parley.errors import LocalProtocolError

__all__ = [
    "BytesLike",
    "check_pcm16",
    "mono_to_stereo",
    "pcm16_array",
    "stereo_to_mono",
]

BytesLike: TypeAlias = bytes | bytearray | memoryview
"""What the codecs accept (anything exposing a contiguous byte buffer)."""

_INT16: Final = np.dtype("<i2")


def check_pcm16(pcm: BytesLike, channels: int = 1) -> None:
    """Raise ``LocalProtocolError`` unless ``pcm`` holds whole PCM16 samples for ``channels``."""
    step = 2 * channels
    if len(pcm) % step:
        raise LocalProtocolError(
            f"PCM16 with {channels} channel(s) must be a multiple of {step} bytes, got {len(pcm)}",
            code="bad_pcm_length",
        )


def pcm16_array(pcm: BytesLike, channels: int = 1) -> npt.NDArray[np.int16]:
    """View ``pcm`` as an int16 array of shape ``(frames, channels)`` without copying."""
    check_pcm16(pcm, channels)
    return np.frombuffer(pcm, dtype=_INT16).reshape(-1, channels)


def stereo_to_mono(pcm: BytesLike) -> bytes:
    """Average the two channels of interleaved stereo PCM16 into mono PCM16.

    The mean (rounded toward minus infinity) cannot overflow, unlike a sum.
    """
    frames = pcm16_array(pcm, 2).astype(np.int32)
    return ((frames[:, 0] + frames[:, 1]) >> 1).astype(_INT16).tobytes()


def mono_to_stereo(pcm: BytesLike) -> bytes:
    """Duplicate mono PCM16 into both channels of interleaved stereo PCM16."""
    return np.repeat(pcm16_array(pcm, 1)[:, 0], 2).tobytes()

"""Audio helpers the phone protocols share: L16 byte order, silence, outbound chunking.

Parley's line formats are :class:`~parley.audio.format.AudioFormat` values
(``ulaw``/``alaw`` at 8 kHz, ``pcm16`` little-endian at the line's rate), so the
conversation's codecs (the µ-law/A-law tables, the soxr resampler) handle every
phone platform without knowing it. What differs per platform is only on the wire:

* **L16 on RTP is big-endian** (network byte order, RFC 3551 §4.5.11): Telnyx's
  ``media_format.encoding == "L16"`` carries RTP payloads, so its samples are
  swapped to and from PCM16 little-endian here (Pipecat's Telnyx serializer does
  the same). Vonage's WebSocket audio is little-endian already (its AsyncAPI:
  "16-bit signed little-endian linear PCM").
* **Silence** differs per codec (µ-law ``0xFF``, A-law ``0xD5``, PCM ``0x00``); a
  platform with a minimum message length (Telnyx: 20 ms) gets its last chunk padded.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from parley.audio.format import AudioFormat
from parley.audio.g711 import ALAW_SILENCE, ULAW_SILENCE
from parley.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "l16_be_from_pcm16",
    "pcm16_from_l16_be",
    "silence_byte",
    "split_padded",
]

_BIG: Final = np.dtype(">i2")
_LITTLE: Final = np.dtype("<i2")


def pcm16_from_l16_be(payload: bytes) -> bytes:
    """Big-endian L16 from a peer → PCM16 little-endian; odd lengths are the peer's fault."""
    if len(payload) % 2:
        raise RemoteProtocolError(
            f"L16 audio of {len(payload)} bytes is not a whole number of samples",
            code="odd_audio_length",
        )
    return np.frombuffer(payload, dtype=_BIG).astype(_LITTLE).tobytes()


def l16_be_from_pcm16(pcm: bytes) -> bytes:
    """PCM16 little-endian (ours) → big-endian L16 for the wire."""
    if len(pcm) % 2:
        raise LocalProtocolError(
            f"PCM16 of {len(pcm)} bytes is not a whole number of samples",
            code="bad_pcm_length",
        )
    return np.frombuffer(pcm, dtype=_LITTLE).astype(_BIG).tobytes()


def silence_byte(fmt: AudioFormat) -> bytes:
    """The byte that repeated makes silence in ``fmt`` (PCM16's zero is two of them)."""
    if fmt.encoding == "ulaw":
        return bytes([ULAW_SILENCE])
    if fmt.encoding == "alaw":
        return bytes([ALAW_SILENCE])
    if fmt.encoding == "pcm16":
        return b"\x00"
    raise LocalProtocolError(f"no silence byte for {fmt.encoding}", code="unsupported_format")


def split_padded(audio: bytes, chunk_bytes: int, *, min_bytes: int = 0, pad: bytes) -> list[bytes]:
    """Cut ``audio`` into pieces of at most ``chunk_bytes``; pad a short last piece.

    The last piece is padded with ``pad`` (one byte of silence) up to ``min_bytes``
    so that a platform with a minimum message length accepts it; the padding is
    silence the caller hears, so playback accounting counts it.
    """
    if chunk_bytes <= 0 or min_bytes > chunk_bytes:
        raise ValueError("need 0 < chunk_bytes and min_bytes <= chunk_bytes")
    if len(pad) != 1:
        raise ValueError("pad must be a single byte")
    pieces = [audio[i : i + chunk_bytes] for i in range(0, len(audio), chunk_bytes)]
    if pieces and len(pieces[-1]) < min_bytes:
        pieces[-1] += pad * (min_bytes - len(pieces[-1]))
    return pieces

"""G.711 µ-law and A-law as numpy table lookups.

The tables are computed once at import from the ITU/Sun reference algorithm in the
exact variant CPython's ``audioop`` uses (protocols.md §5.2–5.3), so every decode equals
``audioop.ulaw2lin``/``alaw2lin`` for all 256 codes and every encode equals
``audioop.lin2ulaw``/``lin2alaw`` for all 65,536 inputs (tests/test_audio_g711.py checks
both against ``audioop``; it is only a test reference here, since it leaves the stdlib
in 3.13). Note the µ-law encoder: audioop first drops to 14 bits (``s >> 2``) and clips
at 8159, which differs from the textbook BIAS/CLIP-32635 encoder on 381 negative inputs;
we match audioop so recordings compare byte for byte with other Python stacks.

The per-frame conversions run in C through ``audioop`` where it exists (the stdlib up
to 3.12, its maintained fork ``audioop-lts`` from 3.13, a dependency there): on a
160-byte frame a numpy gather costs ~1 µs, mostly numpy's per-call overhead, and
``audioop`` ~0.1 µs (``python bench/audio_codecs.py``, ``stages_us``). The results are the
same bytes: the tables below are built to equal ``audioop`` for every input, and
they stay the implementation where ``audioop`` is missing (or on a big-endian host,
where its native byte order is not PCM16 little-endian).
"""

from __future__ import annotations

import sys
import warnings
from types import ModuleType
from typing import Final

import numpy as np
import numpy.typing as npt

from parley.audio.pcm import BytesLike, check_pcm16

__all__ = [
    "ALAW_DECODE_TABLE",
    "ALAW_ENCODE_TABLE",
    "ALAW_SILENCE",
    "ULAW_DECODE_TABLE",
    "ULAW_ENCODE_TABLE",
    "ULAW_SILENCE",
    "alaw_decode",
    "alaw_decode_array",
    "alaw_encode",
    "alaw_encode_array",
    "ulaw_decode",
    "ulaw_decode_array",
    "ulaw_encode",
    "ulaw_encode_array",
]

ULAW_SILENCE: Final = 0xFF
"""µ-law code for silence (Twilio and the OpenAI agents pad with it)."""
ALAW_SILENCE: Final = 0xD5
"""A-law code that ``alaw_encode`` gives for 0."""

_INT16: Final = np.dtype("<i2")
_UINT16: Final = np.dtype("<u2")


def _load_audioop() -> ModuleType | None:
    if sys.byteorder != "little":
        return None
    with warnings.catch_warnings():  # the stdlib module is deprecated in 3.11-3.12
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:
            return None
    return audioop


_C: Final = _load_audioop()


def _ulaw_decode_table() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(_INT16)


def _alaw_decode_table() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    segment = (a & 0x70) >> 4
    t = np.where(
        segment == 0,
        t + 8,
        np.where(segment == 1, t + 0x108, (t + 0x108) << np.maximum(segment - 1, 0)),
    )
    return np.where(a & 0x80, t, -t).astype(_INT16)


def _all_int16() -> npt.NDArray[np.int32]:
    # Index i of an encode table is the sample whose little-endian uint16 view is i.
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    # audioop's st_14linear2ulaw(sample >> 2): 14-bit magnitude, CLIP 8159, BIAS 0x84 >> 2.
    s = _all_int16() >> 2
    negative = s < 0
    mask = np.where(negative, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(s), 8159) + (0x84 >> 2)
    seg_uend = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    segment = np.searchsorted(seg_uend, magnitude, side="left")  # first seg with mag <= end
    quant = (magnitude >> (np.minimum(segment, 7) + 1)) & 0x0F
    code = np.where(segment >= 8, 0x7F, (segment << 4) | quant)
    return (code ^ mask).astype(np.uint8)


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    # audioop's st_linear2alaw(sample >> 3): 13-bit, even-bit inversion.
    s = _all_int16() >> 3
    negative = s < 0
    mask = np.where(negative, 0x55, 0xD5)
    magnitude = np.where(negative, -s - 1, s)
    seg_aend = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
    segment = np.searchsorted(seg_aend, magnitude, side="left")
    quant = np.where(segment < 2, magnitude >> 1, magnitude >> np.minimum(segment, 7)) & 0x0F
    code = np.where(segment >= 8, 0x7F, (segment << 4) | quant)
    return (code ^ mask).astype(np.uint8)


ULAW_DECODE_TABLE: Final = _ulaw_decode_table()
ALAW_DECODE_TABLE: Final = _alaw_decode_table()
ULAW_ENCODE_TABLE: Final = _ulaw_encode_table()
ALAW_ENCODE_TABLE: Final = _alaw_encode_table()
for _table in (ULAW_DECODE_TABLE, ALAW_DECODE_TABLE, ULAW_ENCODE_TABLE, ALAW_ENCODE_TABLE):
    _table.flags.writeable = False


def ulaw_decode_array(data: BytesLike) -> npt.NDArray[np.int16]:
    """µ-law bytes → int16 samples (1-D array)."""
    if _C is not None:
        return np.frombuffer(_C.ulaw2lin(data, 2), dtype=_INT16)
    return ULAW_DECODE_TABLE.take(np.frombuffer(data, dtype=np.uint8))


def alaw_decode_array(data: BytesLike) -> npt.NDArray[np.int16]:
    """A-law bytes → int16 samples (1-D array)."""
    if _C is not None:
        return np.frombuffer(_C.alaw2lin(data, 2), dtype=_INT16)
    return ALAW_DECODE_TABLE.take(np.frombuffer(data, dtype=np.uint8))


def ulaw_decode(data: BytesLike) -> bytes:
    """µ-law bytes → PCM16 little-endian (twice as long)."""
    if _C is not None:
        return _C.ulaw2lin(data, 2)  # type: ignore[no-any-return]
    return ULAW_DECODE_TABLE.take(np.frombuffer(data, dtype=np.uint8)).tobytes()


def alaw_decode(data: BytesLike) -> bytes:
    """A-law bytes → PCM16 little-endian (twice as long)."""
    if _C is not None:
        return _C.alaw2lin(data, 2)  # type: ignore[no-any-return]
    return ALAW_DECODE_TABLE.take(np.frombuffer(data, dtype=np.uint8)).tobytes()


def ulaw_encode_array(samples: npt.NDArray[np.int16]) -> bytes:
    """int16 samples (any shape, C order) → µ-law bytes."""
    if _C is not None and samples.flags.c_contiguous:
        return _C.lin2ulaw(samples, 2)  # type: ignore[no-any-return]
    return ULAW_ENCODE_TABLE.take(samples.view(np.uint16)).tobytes()


def alaw_encode_array(samples: npt.NDArray[np.int16]) -> bytes:
    """int16 samples (any shape, C order) → A-law bytes."""
    if _C is not None and samples.flags.c_contiguous:
        return _C.lin2alaw(samples, 2)  # type: ignore[no-any-return]
    return ALAW_ENCODE_TABLE.take(samples.view(np.uint16)).tobytes()


def ulaw_encode(pcm: BytesLike) -> bytes:
    """PCM16 little-endian → µ-law bytes (half as long).

    Raises ``LocalProtocolError`` for an odd number of bytes.
    """
    check_pcm16(pcm)
    if _C is not None:
        return _C.lin2ulaw(pcm, 2)  # type: ignore[no-any-return]
    return ULAW_ENCODE_TABLE.take(np.frombuffer(pcm, dtype=_UINT16)).tobytes()


def alaw_encode(pcm: BytesLike) -> bytes:
    """PCM16 little-endian → A-law bytes (half as long).

    Raises ``LocalProtocolError`` for an odd number of bytes.
    """
    check_pcm16(pcm)
    if _C is not None:
        return _C.lin2alaw(pcm, 2)  # type: ignore[no-any-return]
    return ALAW_ENCODE_TABLE.take(np.frombuffer(pcm, dtype=_UINT16)).tobytes()

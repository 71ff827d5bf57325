"""G.711 tables against CPython's audioop (the reference), exhaustively and by property."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.audio import (
    ALAW_SILENCE,
    ULAW_SILENCE,
    alaw_decode,
    alaw_decode_array,
    alaw_encode,
    alaw_encode_array,
    ulaw_decode,
    ulaw_decode_array,
    ulaw_encode,
    ulaw_encode_array,
)
from parley.errors import LocalProtocolError

try:  # stdlib up to 3.12 (deprecated, warning filtered in pyproject); audioop-lts from 3.13
    import audioop
except ImportError:  # pragma: no cover - Python >= 3.13
    import audioop_lts as audioop  # type: ignore[import-not-found, no-redef]

ALL_CODES = bytes(range(256))
ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
ALL_PCM = ALL_SAMPLES.tobytes()
pcm16 = st.binary(max_size=2000).map(lambda b: b[: len(b) // 2 * 2])


def test_ulaw_decode_equals_audioop_for_all_256_codes() -> None:
    assert ulaw_decode(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)


def test_alaw_decode_equals_audioop_for_all_256_codes() -> None:
    assert alaw_decode(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)


def test_ulaw_encode_is_byte_exact_with_audioop_for_all_65536_inputs() -> None:
    assert ulaw_encode(ALL_PCM) == audioop.lin2ulaw(ALL_PCM, 2)


def test_alaw_encode_is_byte_exact_with_audioop_for_all_65536_inputs() -> None:
    assert alaw_encode(ALL_PCM) == audioop.lin2alaw(ALL_PCM, 2)


def _classic_ulaw_encode(samples: np.ndarray) -> np.ndarray:
    """The textbook BIAS 0x84 / CLIP 32635 encoder of protocols.md §5.2."""
    s = samples.astype(np.int32)
    sign = np.where(s < 0, 0x80, 0)
    s = np.minimum(np.abs(s), 32635) + 0x84
    exponent = np.floor(np.log2(np.maximum((s >> 7) & 0xFF, 1))).astype(np.int32)
    mantissa = (s >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa)) & 0xFF


def test_ulaw_encode_matches_audioop_not_the_classic_encoder() -> None:
    ours = np.frombuffer(ulaw_encode(ALL_PCM), dtype=np.uint8)
    differ = ALL_SAMPLES[ours != _classic_ulaw_encode(ALL_SAMPLES)]
    assert len(differ) == 381  # protocols.md §5.2: all negative, one step apart
    assert (differ < 0).all()
    assert ulaw_encode(np.array([-1], dtype=np.int16).tobytes()) == b"\x7e"


def test_silence_codes() -> None:
    zeros = bytes(320)
    assert ulaw_encode(zeros) == bytes([ULAW_SILENCE]) * 160
    assert alaw_encode(zeros) == bytes([ALAW_SILENCE]) * 160
    assert ulaw_decode(bytes([ULAW_SILENCE])) == b"\x00\x00"


def test_array_variants_agree_with_bytes_variants() -> None:
    assert ulaw_decode_array(ALL_CODES).tobytes() == ulaw_decode(ALL_CODES)
    assert alaw_decode_array(ALL_CODES).tobytes() == alaw_decode(ALL_CODES)
    assert ulaw_encode_array(ALL_SAMPLES) == ulaw_encode(ALL_PCM)
    assert alaw_encode_array(ALL_SAMPLES.reshape(-1, 2)) == alaw_encode(ALL_PCM)


def test_accepts_bytearray_and_memoryview_and_empty() -> None:
    frame = ALL_PCM[:320]
    assert ulaw_encode(bytearray(frame)) == ulaw_encode(memoryview(frame)) == ulaw_encode(frame)
    assert ulaw_decode(memoryview(ALL_CODES)) == ulaw_decode(ALL_CODES)
    assert ulaw_encode(b"") == b"" == ulaw_decode(b"")


@pytest.mark.parametrize("encode", [ulaw_encode, alaw_encode])
def test_odd_length_pcm_is_a_local_protocol_error(encode: object) -> None:
    assert callable(encode)
    with pytest.raises(LocalProtocolError) as info:
        encode(b"\x00\x01\x02")
    assert info.value.code == "bad_pcm_length"


@given(st.binary(max_size=1000))
def test_ulaw_code_round_trip(codes: bytes) -> None:
    # Every code survives decode → encode, except 0x7F ("-0") which becomes 0xFF ("+0").
    assert ulaw_encode(ulaw_decode(codes)) == codes.replace(b"\x7f", b"\xff")
    assert ulaw_encode(ulaw_decode(codes)) == audioop.lin2ulaw(audioop.ulaw2lin(codes, 2), 2)


@given(st.binary(max_size=1000))
def test_alaw_code_round_trip(codes: bytes) -> None:
    assert alaw_encode(alaw_decode(codes)) == codes


@given(pcm16)
def test_pcm_round_trip_error_is_within_one_quantisation_step(pcm: bytes) -> None:
    x = np.frombuffer(pcm, dtype=np.int16).astype(np.int64)
    for encode, decode in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        y = np.frombuffer(decode(encode(pcm)), dtype=np.int16).astype(np.int64)
        assert len(y) == len(x)
        # Logarithmic quantiser: the error grows with the magnitude (≤ |x|/16 + 8).
        assert (np.abs(y - x) <= np.abs(x) / 16 + 8).all()
        assert decode(encode(pcm)) == decode(encode(decode(encode(pcm))))  # idempotent

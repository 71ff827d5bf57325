"""StreamResampler: real soxr streams, chunked input, the flushed tail, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.audio import DEFAULT_QUALITY, StreamResampler
from parley.errors import ConfigError, LocalProtocolError

RATES = [8000, 16000, 24000, 48000]
QUALITIES = ["QQ", "LQ", "MQ", "HQ", "VHQ"]


def sine(rate: int, seconds: float, freq: float = 440.0, amp: float = 10000.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * amp).astype(np.int16).tobytes()


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype=np.int16).astype(np.float64)


def feed_in_frames(r: StreamResampler, pcm: bytes, frame_bytes: int) -> bytes:
    return b"".join(r.process(pcm[i : i + frame_bytes]) for i in range(0, len(pcm), frame_bytes))


@pytest.mark.parametrize("quality", QUALITIES)
@pytest.mark.parametrize(
    ("in_rate", "out_rate"),
    [(8000, 24000), (24000, 8000), (8000, 16000), (48000, 24000), (16000, 48000)],
)
def test_flush_returns_the_tail(in_rate: int, out_rate: int, quality: str) -> None:
    pcm = sine(in_rate, 0.5)
    r = StreamResampler(in_rate, out_rate, quality=quality)  # type: ignore[arg-type]
    body = feed_in_frames(r, pcm, in_rate // 50 * 2)
    tail = r.flush()
    expected = len(pcm) // 2 * out_rate / in_rate
    assert abs((len(body) + len(tail)) // 2 - expected) <= 1
    if quality != "QQ":  # QQ holds almost nothing back
        assert len(tail) > 0
        assert abs(len(body) // 2 - expected) > 1  # without the flush, audio is missing


def test_output_is_the_input_sine_time_aligned() -> None:
    r = StreamResampler(8000, 24000)
    out = samples(feed_in_frames(r, sine(8000, 1.0, 1000.0), 320) + r.flush())
    ideal = samples(sine(24000, 1.0, 1000.0))
    assert len(out) == len(ideal)
    middle = slice(2400, -2400)  # away from the start-up and end transients
    assert np.max(np.abs(out[middle] - ideal[middle])) < 200  # of 10000 amplitude
    assert np.corrcoef(out, ideal)[0, 1] > 0.99


def test_chunking_does_not_change_the_output() -> None:
    pcm = sine(8000, 0.5, 700.0)
    a = StreamResampler(8000, 24000)
    whole = samples(a.process(pcm) + a.flush())
    b = StreamResampler(8000, 24000)
    parts = samples(feed_in_frames(b, pcm, 322) + b.flush())
    assert len(whole) == len(parts)
    assert np.max(np.abs(whole - parts)) <= 2  # soxr's int16 rounding, a couple of LSB


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=700), min_size=1, max_size=20))
def test_any_chunk_sizes_give_the_same_length(sizes: list[int]) -> None:
    pcm = sine(8000, 0.6)
    r = StreamResampler(8000, 24000)
    out, pos = [], 0
    for size in sizes:
        out.append(r.process(pcm[pos : pos + size * 2]))
        pos += size * 2
    out.append(r.process(pcm[pos:]))
    out.append(r.flush())
    assert abs(len(b"".join(out)) // 2 - 3 * len(pcm) // 2) <= 1


def test_same_output_as_soxr_public_api() -> None:
    # The fast path (soxr's bound C method) must equal ResampleStream.resample_chunk.
    pcm = sine(24000, 0.3, 1234.0)
    r = StreamResampler(24000, 8000, quality="MQ")
    ref = soxr.ResampleStream(24000, 8000, 1, dtype="int16", quality="MQ")
    x = np.frombuffer(pcm, dtype=np.int16)
    for i in range(0, len(x), 480):
        ours = samples(r.process(x[i : i + 480].tobytes()))
        theirs = ref.resample_chunk(x[i : i + 480]).astype(np.float64)
        assert len(ours) == len(theirs)
        assert np.max(np.abs(ours - theirs), initial=0) <= 2


def test_reusable_after_flush_and_reset() -> None:
    pcm = sine(8000, 0.3)
    fresh = StreamResampler(8000, 24000)
    first = samples(fresh.process(pcm) + fresh.flush())
    second = samples(fresh.process(pcm) + fresh.flush())  # next utterance, same instance
    assert len(first) == len(second)
    assert np.max(np.abs(first - second)) <= 2
    fresh.process(pcm)
    assert fresh.delay_ms() > 0
    fresh.reset()  # barge-in: drop what is buffered
    assert fresh.flush() == b""


def test_default_quality_and_delay() -> None:
    r = StreamResampler(8000, 24000)
    assert r.quality == DEFAULT_QUALITY == "LQ"
    produced = len(feed_in_frames(r, sine(8000, 1.0), 320)) // 2
    deficit_ms = (24000 - produced) / 24
    assert 15 < deficit_ms < 30  # measured 22 ms (bench/resampler_delay.py)
    assert "LQ" in repr(r)


def test_stereo_keeps_channels_apart() -> None:
    left = np.frombuffer(sine(48000, 0.2), dtype=np.int16)
    stereo = np.stack([left, np.zeros_like(left)], axis=1).tobytes()
    r = StreamResampler(48000, 24000, channels=2)
    out = np.frombuffer(feed_in_frames(r, stereo, 3840) + r.flush(), dtype=np.int16)
    frames = out.reshape(-1, 2)
    assert abs(len(frames) - len(left) // 2) <= 1
    assert np.abs(frames[:, 1]).max() <= 2
    assert np.abs(frames[:, 0]).max() > 9000


def test_equal_rates_pass_through() -> None:
    r = StreamResampler(16000, 16000)
    pcm = sine(16000, 0.02)
    assert r.process(pcm) == pcm
    assert r.flush() == b""
    assert r.delay_ms() == 0.0


def test_process_array() -> None:
    r = StreamResampler(8000, 24000)
    x = np.frombuffer(sine(8000, 0.1), dtype=np.int16)
    out = r.process_array(x)
    assert out.dtype == np.int16 and out.ndim == 2 and out.shape[1] == 1
    with pytest.raises(TypeError):
        r.process_array(x.astype(np.float32))  # type: ignore[arg-type]


@pytest.mark.parametrize(("channels", "length"), [(1, 3), (1, 321), (2, 2), (2, 6)])
def test_partial_sample_is_a_local_protocol_error(channels: int, length: int) -> None:
    r = StreamResampler(8000, 24000, channels=channels)
    with pytest.raises(LocalProtocolError) as info:
        r.process(bytes(length))
    assert info.value.code == "bad_pcm_length"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"in_rate": 0, "out_rate": 8000},
        {"in_rate": 8000, "out_rate": -1},
        {"in_rate": 8000.5, "out_rate": 8000},
        {"in_rate": True, "out_rate": 8000},
        {"in_rate": 8000, "out_rate": 24000, "channels": 3},
        {"in_rate": 8000, "out_rate": 24000, "channels": 0},
        {"in_rate": 8000, "out_rate": 24000, "quality": "XQ"},
    ],
)
def test_bad_configuration_is_a_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        StreamResampler(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", RATES)
def test_every_telephony_rate_is_accepted(rate: int) -> None:
    for other in RATES:
        assert StreamResampler(rate, other).out_rate == other

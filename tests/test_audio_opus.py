"""Opus through PyAV's bundled libopus: real encode/decode round trips, framing, bad packets."""

from __future__ import annotations

import numpy as np
import pytest

from parley.audio import (
    DISCORD_FORMAT,
    OPUS_SILENCE,
    OpusDecoder,
    OpusEncoder,
    mono_to_stereo,
    stereo_to_mono,
)
from parley.errors import ConfigError, LocalProtocolError, RemoteProtocolError

RATE = 48000


def sine(seconds: float, freq: float = 440.0, amp: float = 8000.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (np.sin(2 * np.pi * freq * t) * amp).astype(np.int16)


def chirp(seconds: float, f0: float = 200.0, f1: float = 3000.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds))
    return (np.sin(phase) * 8000).astype(np.int16)


def best_lag_correlation(x: np.ndarray, y: np.ndarray, max_lag: int = 1000) -> tuple[int, float]:
    """Lag of y behind x (the codec delay) and the normalised correlation there."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    n = min(len(x) - max_lag, RATE // 2)
    scores = []
    for lag in range(max_lag):
        a, b = x[:n], y[lag : lag + n]
        scores.append(float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9)))
    lag = int(np.argmax(scores))
    return lag, scores[lag]


def round_trip(mono: np.ndarray, channels: int) -> tuple[np.ndarray, list[bytes]]:
    pcm = mono.tobytes() if channels == 1 else mono_to_stereo(mono.tobytes())
    encoder = OpusEncoder(RATE, channels)
    decoder = OpusDecoder(RATE, channels)
    packets: list[bytes] = []
    # Push in sizes that are not 20 ms multiples: the encoder frames them itself.
    step = 1234 * 2 * channels
    for i in range(0, len(pcm), step):
        packets += encoder.encode(pcm[i : i + step])
    packets += encoder.flush()
    decoded = b"".join(decoder.decode(p) for p in packets)
    if channels == 2:
        decoded = stereo_to_mono(decoded)
    return np.frombuffer(decoded, dtype=np.int16), packets


@pytest.mark.parametrize("channels", [1, 2])
def test_sine_round_trip_correlates_after_codec_delay(channels: int) -> None:
    mono = sine(1.0)
    out, packets = round_trip(mono, channels)
    assert 50 <= len(packets) <= 52  # one packet per 20 ms frame (+ padding/drain)
    assert all(0 < len(p) < 1275 for p in packets)
    assert len(out) >= len(mono)
    _, corr = best_lag_correlation(mono, out)
    assert corr > 0.95
    assert np.abs(out[RATE // 10 :]).max() > 6000  # the level survived, not just the shape


@pytest.mark.parametrize("channels", [1, 2])
def test_codec_delay_is_the_libopus_lookahead(channels: int) -> None:
    # A chirp has one correlation peak (a sine has one per period).
    mono = chirp(1.0)
    out, _ = round_trip(mono, channels)
    lag, corr = best_lag_correlation(mono, out)
    assert corr > 0.9
    assert 280 <= lag <= 340  # libopus look-ahead: 312 samples (6.5 ms) at 48 kHz


def test_exact_frames_give_one_packet_each() -> None:
    encoder = OpusEncoder()  # Discord: 48 kHz stereo
    assert encoder.format == DISCORD_FORMAT
    assert encoder.frame_bytes == 3840
    frame = mono_to_stereo(sine(0.02).tobytes())
    assert len(frame) == 3840
    assert [len(encoder.encode(frame)) for _ in range(5)] == [1] * 5
    assert encoder.encode(frame[:1000]) == []  # partial frame kept for the next call


def test_stereo_packets_decode_to_mono() -> None:
    encoder = OpusEncoder(RATE, 2)
    packet = encoder.encode(mono_to_stereo(sine(0.02).tobytes()))[0]
    decoded = OpusDecoder(RATE, 1).decode(packet)
    assert len(decoded) == 960 * 2


def test_discord_silence_frame_decodes_to_silence() -> None:
    out = OpusDecoder().decode(OPUS_SILENCE)
    assert len(out) == 960 * 2 * 2
    assert not any(out)


@pytest.mark.parametrize("packet", [b"", b"\xff\xfe\x00garbage"])
def test_corrupt_packets_are_remote_protocol_errors(packet: bytes) -> None:
    decoder = OpusDecoder()
    with pytest.raises(RemoteProtocolError) as info:
        decoder.decode(packet)
    assert info.value.code == "bad_opus"
    # The decoder is still usable afterwards.
    good = OpusEncoder().encode(bytes(3840))[0]
    assert len(decoder.decode(good)) == 3840


def test_odd_pcm_to_encoder_is_a_local_protocol_error() -> None:
    with pytest.raises(LocalProtocolError):
        OpusEncoder(RATE, 2).encode(bytes(6))  # 1.5 stereo samples
    with pytest.raises(LocalProtocolError):
        OpusEncoder(RATE, 1).encode(bytes(3))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sample_rate": 44100},
        {"sample_rate": 48000, "channels": 3},
        {"bitrate": 100},
        {"application": "music"},
    ],
)
def test_bad_encoder_config(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        OpusEncoder(**kwargs)  # type: ignore[arg-type]


def test_bad_decoder_config() -> None:
    with pytest.raises(ConfigError):
        OpusDecoder(22050, 1)

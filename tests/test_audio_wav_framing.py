"""WAV read/write, FrameChunker, AudioFormat, PCM channel helpers and the package surface."""

from __future__ import annotations

import dataclasses
import io
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import parley.audio
from parley.audio import (
    BROWSER_FORMAT,
    DISCORD_FORMAT,
    OPENAI_PCM_FORMAT,
    TWILIO_FORMAT,
    AudioFormat,
    FrameChunker,
    mono_to_stereo,
    read_wav,
    stereo_to_mono,
    wav_bytes,
    write_wav,
)
from parley.errors import ConfigError, LocalProtocolError, RemoteProtocolError

# -- WAV ------------------------------------------------------------------------------------


@given(
    st.binary(max_size=4000),
    st.sampled_from([8000, 16000, 22050, 24000, 44100, 48000]),
    st.sampled_from([1, 2]),
)
def test_wav_bytes_round_trip(raw: bytes, rate: int, channels: int) -> None:
    pcm = raw[: len(raw) - len(raw) % (2 * channels)]
    assert read_wav(wav_bytes(pcm, rate, channels)) == (pcm, rate, channels)


def test_write_wav_to_path_is_a_standard_wav(tmp_path: Path) -> None:
    pcm = np.arange(-500, 500, dtype=np.int16).tobytes()
    path = tmp_path / "a.wav"
    write_wav(path, pcm, 22050)
    with wave.open(str(path), "rb") as reader:  # independent reader: the stdlib itself
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (
            1,
            2,
            22050,
        )
        assert reader.readframes(10_000) == pcm
    assert read_wav(path) == (pcm, 22050, 1)
    assert read_wav(str(path)) == (pcm, 22050, 1)
    assert read_wav(path.read_bytes()) == (pcm, 22050, 1)


def _wav_with_width(samples16: np.ndarray, width: int) -> bytes:
    if width == 1:
        raw = ((samples16.astype(np.int32) >> 8) + 128).astype(np.uint8).tobytes()
    elif width == 3:
        wide = samples16.astype("<i4") << 8
        raw = wide.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        raw = (samples16.astype("<i4") << 16).tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(width)
        writer.setframerate(16000)
        writer.writeframes(raw)
    return buffer.getvalue()


@pytest.mark.parametrize("width", [1, 3, 4])
def test_other_sample_widths_become_pcm16(width: int) -> None:
    x = np.array([-32768, -256, 0, 256, 12800, 32512], dtype=np.int16)
    pcm, rate, channels = read_wav(_wav_with_width(x, width))
    assert (rate, channels) == (16000, 1)
    assert np.frombuffer(pcm, dtype=np.int16).tolist() == x.tolist()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a wav file at all",
        b"RIFF\x24\x00\x00\x00WAVEfmt ",  # truncated header
        b"RIFF\x00\x00\x00\x00AVI LIST",
        b"ID3\x03\x00\x00\x00" + bytes(100),  # an MP3
    ],
)
def test_non_wav_is_a_remote_protocol_error(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        read_wav(data)
    assert info.value.code == "bad_wav"


@given(st.binary(max_size=200))
def test_fuzzed_riff_headers_never_crash(tail: bytes) -> None:
    data = b"RIFF" + len(tail).to_bytes(4, "little") + b"WAVEfmt " + tail
    try:
        pcm, rate, channels = read_wav(data)
    except RemoteProtocolError as exc:
        assert exc.code == "bad_wav"
    else:
        assert len(pcm) % (2 * channels) == 0 and rate > 0


def test_truncated_data_chunk_keeps_whole_samples() -> None:
    full = wav_bytes(bytes(range(200)), 8000, 2)
    pcm, _, channels = read_wav(full[:-3])
    assert channels == 2 and len(pcm) % 4 == 0 and pcm == bytes(range(200))[: len(pcm)]


def test_bad_wav_arguments(tmp_path: Path) -> None:
    with pytest.raises(LocalProtocolError):
        wav_bytes(b"\x00\x01\x02", 8000)
    with pytest.raises(LocalProtocolError):
        wav_bytes(bytes(6), 8000, channels=2)
    with pytest.raises(ConfigError):
        wav_bytes(bytes(4), 0)
    with pytest.raises(ConfigError):
        wav_bytes(bytes(4), 8000, channels=0)
    path = tmp_path / "never.wav"
    with pytest.raises(LocalProtocolError):
        write_wav(path, b"\x00", 8000)
    assert not path.exists()


# -- FrameChunker ---------------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=400), st.lists(st.binary(max_size=700), max_size=30))
def test_chunker_loses_and_invents_nothing(frame_bytes: int, pushes: list[bytes]) -> None:
    chunker = FrameChunker(frame_bytes)
    frames: list[bytes] = []
    for data in pushes:
        frames += chunker.push(data)
    assert all(len(f) == frame_bytes for f in frames)
    assert len(chunker.remainder) < frame_bytes
    assert len(chunker) == len(chunker.remainder)
    assert b"".join(frames) + chunker.remainder == b"".join(pushes)


def test_chunker_twilio_frames_and_flush() -> None:
    chunker = FrameChunker.for_format(TWILIO_FORMAT)
    assert chunker.frame_bytes == 160
    assert chunker.push(b"\x01" * 100) == []
    assert chunker.push(bytearray(b"\x02" * 300)) == [b"\x01" * 100 + b"\x02" * 60, b"\x02" * 160]
    assert chunker.remainder == b"\x02" * 80
    assert chunker.flush(pad=b"\xff") == b"\x02" * 80 + b"\xff" * 80
    assert chunker.flush() == b""
    frame = bytes(160)
    assert chunker.push(frame) == [frame]  # aligned fast path
    assert chunker.flush(pad=b"\xff") == b""


def test_chunker_bad_arguments() -> None:
    for bad in (0, -160, 1.5, True):
        with pytest.raises(ConfigError):
            FrameChunker(bad)  # type: ignore[arg-type]
    chunker = FrameChunker(4)
    chunker.push(b"ab")
    with pytest.raises(ConfigError):
        chunker.flush(pad=b"\x00\x00")


# -- AudioFormat ----------------------------------------------------------------------------


def test_platform_formats() -> None:
    assert AudioFormat("ulaw", 8000, 1) == TWILIO_FORMAT
    assert BROWSER_FORMAT == OPENAI_PCM_FORMAT == AudioFormat("pcm16", 24000, 1)
    assert AudioFormat("opus", 48000, 2) == DISCORD_FORMAT
    assert TWILIO_FORMAT.frame_bytes() == 160
    assert BROWSER_FORMAT.frame_bytes() == 960
    assert AudioFormat("pcm16", 48000, 2).frame_bytes() == 3840
    assert AudioFormat("alaw", 8000).frame_bytes(30) == 240
    assert TWILIO_FORMAT.samples_per_frame() == 160
    assert BROWSER_FORMAT.duration_ms(960) == 20.0
    assert (TWILIO_FORMAT.sample_width, BROWSER_FORMAT.sample_width) == (1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        TWILIO_FORMAT.sample_rate = 16000  # type: ignore[misc]


@pytest.mark.parametrize(
    "args",
    [
        ("mp3", 8000, 1),
        ("pcm16", 0, 1),
        ("pcm16", 8000.0, 1),
        ("pcm16", 8000, 3),
        ("opus", 44100, 2),
    ],
)
def test_bad_formats_are_config_errors(args: tuple[object, ...]) -> None:
    with pytest.raises(ConfigError):
        AudioFormat(*args)  # type: ignore[arg-type]


def test_format_frame_size_errors() -> None:
    with pytest.raises(ConfigError):
        DISCORD_FORMAT.frame_bytes()  # Opus packets vary
    with pytest.raises(ConfigError):
        AudioFormat("pcm16", 22050).frame_bytes(1)  # 22.05 samples


# -- stereo ↔ mono ---------------------------------------------------------------------------


@given(st.binary(max_size=2000))
def test_mono_stereo_round_trip(raw: bytes) -> None:
    mono = raw[: len(raw) // 2 * 2]
    stereo = mono_to_stereo(mono)
    assert len(stereo) == 2 * len(mono)
    assert stereo_to_mono(stereo) == mono


def test_stereo_to_mono_averages_without_overflow() -> None:
    stereo = np.array([[32767, 32767], [-32768, -32768], [1000, -1000], [3, 4]], dtype=np.int16)
    mono = np.frombuffer(stereo_to_mono(stereo.tobytes()), dtype=np.int16)
    assert mono.tolist() == [32767, -32768, 0, 3]


def test_channel_helpers_reject_partial_samples() -> None:
    with pytest.raises(LocalProtocolError):
        stereo_to_mono(bytes(6))
    with pytest.raises(LocalProtocolError):
        mono_to_stereo(bytes(3))


# -- package surface -------------------------------------------------------------------------


def test_contract_names_are_exported() -> None:
    contract = {
        "AudioFormat",
        "TWILIO_FORMAT",
        "BROWSER_FORMAT",
        "OPENAI_PCM_FORMAT",
        "DISCORD_FORMAT",
        "ulaw_decode",
        "ulaw_encode",
        "alaw_decode",
        "alaw_encode",
        "StreamResampler",
        "FrameChunker",
        "read_wav",
        "write_wav",
        "wav_bytes",
        "OpusEncoder",
        "OpusDecoder",
        "stereo_to_mono",
        "mono_to_stereo",
    }
    assert contract <= set(parley.audio.__all__)
    assert all(hasattr(parley.audio, name) for name in parley.audio.__all__)


def test_audio_package_is_sans_io() -> None:
    import ast
    import subprocess
    import sys

    forbidden = {"asyncio", "socket", "selectors", "threading"}
    for source in Path(parley.audio.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not names & forbidden, f"{source.name} imports {names & forbidden}"
    # PyAV (the optional ``opus`` extra) is imported only when Opus is used.
    code = "import sys, parley.audio; print('av' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

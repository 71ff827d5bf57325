"""WAV files to and from PCM16 with the stdlib ``wave`` module.

This is the one place in ``parley.audio`` that may touch a file (when given a path):
fixtures, the offline demo and recordings. Given bytes, it does no I/O.

A file that is not a PCM WAV raises ``RemoteProtocolError(code="bad_wav")``: its bytes
came from outside Parley (an upload, a recording, a file on disk), so the fault is the
input's, not our code's. 8-, 24- and 32-bit integer PCM are converted to 16-bit.
"""

from __future__ import annotations

import io
import os
import wave
from typing import Final

import numpy as np

from parley.audio.pcm import BytesLike, check_pcm16
from parley.errors import ConfigError, RemoteProtocolError

__all__ = ["read_wav", "wav_bytes", "write_wav"]

_MAX_CHANNELS: Final = 8


def read_wav(source: str | os.PathLike[str] | BytesLike) -> tuple[bytes, int, int]:
    """Read a PCM WAV from a path or from its bytes.

    Returns ``(pcm16_little_endian, sample_rate, channels)``; channels stay interleaved.
    """
    stream: io.BytesIO | str
    if isinstance(source, bytes | bytearray | memoryview):
        stream = io.BytesIO(source)
    else:
        stream = os.fspath(source)
    try:
        with wave.open(stream, "rb") as reader:
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            rate = reader.getframerate()
            raw = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError) as exc:  # wave's errors for "not a RIFF/WAVE PCM file"
        raise RemoteProtocolError(f"not a PCM WAV file: {exc}", code="bad_wav") from exc
    if not 1 <= channels <= _MAX_CHANNELS or rate <= 0:
        raise RemoteProtocolError(
            f"WAV header has {channels} channels at {rate} Hz", code="bad_wav"
        )
    if width not in (1, 2, 3, 4):
        raise RemoteProtocolError(f"unsupported WAV sample width {width}", code="bad_wav")
    # A truncated data chunk yields a partial last frame; keep whole frames only.
    raw = raw[: len(raw) - len(raw) % (width * channels)]
    return _to_pcm16(raw, width), rate, channels


def _to_pcm16(raw: bytes, width: int) -> bytes:
    if width == 2:
        return raw
    data = np.frombuffer(raw, dtype=np.uint8)
    if width == 1:  # WAV 8-bit is unsigned, centred on 128
        samples = (data.astype(np.int16) - 128) << 8
    elif width == 3:  # keep the top two bytes of each little-endian 24-bit sample
        samples = np.ascontiguousarray(data.reshape(-1, 3)[:, 1:]).view("<i2").ravel()
    else:
        samples = (np.frombuffer(raw, dtype="<i4") >> 16).astype("<i2")
    return samples.astype("<i2").tobytes()


def wav_bytes(pcm: BytesLike, sample_rate: int, channels: int = 1) -> bytes:
    """A complete 16-bit PCM WAV file holding ``pcm``."""
    buffer = io.BytesIO()
    _write(buffer, pcm, sample_rate, channels)
    return buffer.getvalue()


def write_wav(
    path: str | os.PathLike[str], pcm: BytesLike, sample_rate: int, channels: int = 1
) -> None:
    """Write ``pcm`` (PCM16 little-endian, interleaved) to a 16-bit WAV file at ``path``."""
    _check_args(pcm, sample_rate, channels)  # before creating the file
    with open(path, "wb") as file:
        _write(file, pcm, sample_rate, channels)


def _check_args(pcm: BytesLike, sample_rate: int, channels: int) -> None:
    if not isinstance(sample_rate, int) or isinstance(sample_rate, bool) or sample_rate <= 0:
        raise ConfigError(f"must be a positive integer, got {sample_rate!r}", field="sample_rate")
    if not isinstance(channels, int) or not 1 <= channels <= _MAX_CHANNELS:
        raise ConfigError(f"must be 1..{_MAX_CHANNELS}, got {channels!r}", field="channels")
    check_pcm16(pcm, channels)


def _write(file: io.BytesIO | io.BufferedWriter, pcm: BytesLike, rate: int, channels: int) -> None:
    _check_args(pcm, rate, channels)
    with wave.open(file, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm)

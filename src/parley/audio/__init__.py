"""Audio core: formats, G.711, resampling, transcoding, Opus, WAV and framing.

Sans-I/O (no asyncio, no sockets): bytes in, bytes out. Everything here is fed by Parley
itself, so a malformed argument raises ``LocalProtocolError`` (our bug) and a bad
configuration ``ConfigError``; only data that originates outside (an Opus packet, a WAV
file) raises ``RemoteProtocolError``.
"""

from __future__ import annotations

from parley.audio.format import (
    BROWSER_FORMAT,
    DISCORD_FORMAT,
    OPENAI_PCM_FORMAT,
    TWILIO_FORMAT,
    AudioFormat,
    Encoding,
)
from parley.audio.framing import FrameChunker
from parley.audio.g711 import (
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
from parley.audio.opus import OPUS_FRAME_MS, OPUS_SILENCE, OpusDecoder, OpusEncoder
from parley.audio.pcm import BytesLike, check_pcm16, mono_to_stereo, stereo_to_mono
from parley.audio.resample import DEFAULT_QUALITY, Quality, StreamResampler, resample_once
from parley.audio.transcode import Transcoder
from parley.audio.wav import read_wav, wav_bytes, write_wav

__all__ = [
    "ALAW_SILENCE",
    "BROWSER_FORMAT",
    "DEFAULT_QUALITY",
    "DISCORD_FORMAT",
    "OPENAI_PCM_FORMAT",
    "OPUS_FRAME_MS",
    "OPUS_SILENCE",
    "TWILIO_FORMAT",
    "ULAW_SILENCE",
    "AudioFormat",
    "BytesLike",
    "Encoding",
    "FrameChunker",
    "OpusDecoder",
    "OpusEncoder",
    "Quality",
    "StreamResampler",
    "Transcoder",
    "alaw_decode",
    "alaw_decode_array",
    "alaw_encode",
    "alaw_encode_array",
    "check_pcm16",
    "mono_to_stereo",
    "read_wav",
    "resample_once",
    "stereo_to_mono",
    "ulaw_decode",
    "ulaw_decode_array",
    "ulaw_encode",
    "ulaw_encode_array",
    "wav_bytes",
    "write_wav",
]

"""Audio conversion between the Realtime wire formats and the engine's PCM16.

The wire formats are the three GA ones (``audio/pcm`` PCM16 24 kHz, ``audio/pcmu``
and ``audio/pcma`` G.711 8 kHz); the inside is PCM16 mono at the input pipeline's
rate (16 kHz for Silero and Whisper) and whatever rate the engine's TTS speaks. Both
directions are :mod:`parley.audio.transcode` transcoders, made once per format.
"""

from __future__ import annotations

from parley.audio.format import AudioFormat
from parley.audio.transcode import ReplyTranscoder, Transcoder
from parley.protocols.openai_realtime import RealtimeAudioFormat

__all__ = ["inbound", "outbound"]


def inbound(fmt: RealtimeAudioFormat, rate: int) -> Transcoder:
    """Client audio in ``fmt`` → PCM16 mono at ``rate`` (a bad length is the client's)."""
    return Transcoder(fmt.audio_format, AudioFormat("pcm16", rate), from_peer=True)


def outbound(fmt: RealtimeAudioFormat) -> ReplyTranscoder:
    """Engine reply audio (any rate) → ``fmt``."""
    return ReplyTranscoder(fmt.audio_format)

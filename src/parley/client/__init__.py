"""Client-side tools: talk to a voice agent (``VoiceClient``, the seeds'
VoiceChatEngine over it) or call a ``/twilio/stream`` endpoint as a phone would."""

from __future__ import annotations

from parley.client.devices import (
    AudioSink,
    AudioSource,
    BufferSpeaker,
    SoundDeviceMicrophone,
    SoundDeviceSpeaker,
    WavFileSource,
)
from parley.client.talk import talk
from parley.client.twilio_call import (
    CallFailed,
    CallResult,
    TurnResult,
    place_call,
    trim_trailing_silence,
)
from parley.client.vad import ClientVAD, VADSettings
from parley.client.voice import (
    ResponseInfo,
    TurnLatency,
    VoiceClient,
    VoiceEngineConfig,
    VoiceMetrics,
)
from parley.client.voicechat import VoiceChatEngine, VoiceEngine

__all__ = [
    "AudioSink",
    "AudioSource",
    "BufferSpeaker",
    "CallFailed",
    "CallResult",
    "ClientVAD",
    "ResponseInfo",
    "SoundDeviceMicrophone",
    "SoundDeviceSpeaker",
    "TurnLatency",
    "TurnResult",
    "VADSettings",
    "VoiceChatEngine",
    "VoiceClient",
    "VoiceEngine",
    "VoiceEngineConfig",
    "VoiceMetrics",
    "WavFileSource",
    "place_call",
    "talk",
    "trim_trailing_silence",
]

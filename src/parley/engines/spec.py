"""What to build for a call, as typed values: the engine kind and its parts.

Settings (``parley.config``) are parsed into an :class:`EngineSpec` once, by the
layer that reads them; the engines and the factory below never see a settings
object, so they can be built and tested on their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from parley.engines.seams import ToolRunner

__all__ = ["EngineKind", "EngineRequest", "EngineSpec", "RealtimeSpec"]


class EngineKind(StrEnum):
    LOCAL = "local"  # the cascade: VAD → STT → brain → TTS (offline by default)
    LOOPBACK = "loopback"  # caller audio straight back: transport and load testing
    REALTIME = "realtime"  # OpenAI Realtime API (or a compatible server)


@dataclass(frozen=True, slots=True)
class RealtimeSpec:
    """The realtime engine's upstream."""

    url: str = "wss://api.openai.com/v1/realtime"
    model: str = "gpt-realtime"
    api_key: str | None = None
    voice: str = "marin"
    failover: bool = True  # carry the call on with the cascade when the upstream fails


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """Which engine answers calls and what it is made of (provider specs are
    ``name`` or ``name:model`` strings of :mod:`parley.providers.registry`)."""

    engine: EngineKind = EngineKind.LOCAL
    brain: str = "echo"
    stt: str = "whisper:tiny.en"
    tts: str = "piper:joe"
    vad: str = "silero"
    realtime: RealtimeSpec = RealtimeSpec()
    # What the caller hears when a provider fails during a turn (never silence).
    apology: str = "Sorry, something went wrong on my side. Could you say that again?"


@dataclass(frozen=True, slots=True)
class EngineRequest:
    """What an engine is built for: one call (and what a custom ``engine_factory``
    of the app facade receives)."""

    conversation_id: str
    engine: EngineKind
    brain: str
    voice: str
    instructions: str
    tools: ToolRunner | None
    sample_rate: int  # the transport's input rate (8000 for Twilio)
    line_encoding: str = "pcm16"  # the transport's input encoding ("ulaw" for Twilio)
    #: Caller audio chunks the engine may hold before it drops them (None: its own
    #: default; seed 001's ``*_AUDIO_QUEUE_SIZE``).
    audio_queue: int | None = None

"""Settings of a :class:`~parley.client.voice.VoiceClient`: modes, turn detection, latency.

Modes (both speak the same GA protocol; the mode only picks defaults):

- ``"fast"``: OpenAI's Realtime API directly (``wss://api.openai.com/v1/realtime``,
  ``gpt-realtime``, voice ``marin``, key from ``$OPENAI_API_KEY``), with
  ``semantic_vad`` turn detection (the model judges when the user has finished) and
  ``gpt-4o-mini-transcribe`` for the user's words.
- ``"big"``: a Parley server's ``/v1/realtime`` (``ws://127.0.0.1:8000/v1/realtime``,
  model ``parley-realtime``, the server's default voice, key from
  ``$PARLEY_REALTIME_SERVER_API_KEY`` if set — never the OpenAI key), backed by the
  cascade; ``server_vad`` with no parameters, so the server keeps Parley's tuned
  turn-taking (Silero VAD, ``parley.turns``).

Turn detection (``turn_detection``): ``"server_vad"`` / ``"semantic_vad"`` stream all
microphone audio and let the server decide (it also cancels its reply on barge-in;
the client then stops playback and truncates what was not heard). ``"client"``
switches server VAD off: the client VAD decides, only speech (with its prefix) is
sent, the end of speech commits the turn and asks for a reply, and speech during a
reply interrupts it locally.

``latency_mode`` (see :data:`LATENCY_PROFILES`) trades delay for robustness:

=========  ========  ==============  =========  =====================================
mode       chunk     jitter buffer   resampler  what it costs
=========  ========  ==============  =========  =====================================
low        20 ms     none            LQ         more frames, audible gaps if the net
                                                stutters
balanced   40 ms     80 ms           MQ         ~100 ms more to the first sound
quality    100 ms    200 ms          HQ         ~300 ms more; smoothest playback
=========  ========  ==============  =========  =====================================

*chunk* is the microphone block and the size of each ``input_audio_buffer.append``;
the *jitter buffer* holds the start of each reply until that much audio is queued
(or the reply ends) before the speaker starts; the *resampler* quality applies
between the device rate and 24 kHz (soxr; 24↔48 kHz adds 10 / 21 / 22 ms, from
``parley.audio.resample``'s table; none at all when the device runs at 24 kHz).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from parley.audio import Quality
from parley.engines.realtime import RealtimeConfig
from parley.errors import ConfigError
from parley.protocols.openai_realtime import InputTranscription, TurnDetection
from parley.providers.seams import ToolSpec

from .vad import VADSettings

__all__ = [
    "BIG_URL",
    "FAST_URL",
    "LATENCY_PROFILES",
    "WIRE_SAMPLE_RATE",
    "LatencyMode",
    "LatencyProfile",
    "Mode",
    "TurnMode",
    "VoiceEngineConfig",
]

WIRE_SAMPLE_RATE = 24000  # audio/pcm on the Realtime wire is 24 kHz only
FAST_URL = "wss://api.openai.com/v1/realtime"
BIG_URL = "ws://127.0.0.1:8000/v1/realtime"

Mode = Literal["fast", "big"]
LatencyMode = Literal["low", "balanced", "quality"]
TurnMode = Literal["server_vad", "semantic_vad", "client"]


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    chunk_ms: int  # microphone block and append size
    jitter_ms: float  # reply audio held before playback starts
    resampler: Quality


LATENCY_PROFILES: dict[str, LatencyProfile] = {
    "low": LatencyProfile(20, 0.0, "LQ"),
    "balanced": LatencyProfile(40, 80.0, "MQ"),
    "quality": LatencyProfile(100, 200.0, "HQ"),
}

_MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "fast": {
        "url": FAST_URL,
        "model": "gpt-realtime",
        "voice": "marin",
        "turn_detection": "semantic_vad",
        "transcription_model": "gpt-4o-mini-transcribe",
        "key_env": "OPENAI_API_KEY",
    },
    "big": {
        "url": BIG_URL,
        "model": "parley-realtime",
        "voice": None,
        "turn_detection": "server_vad",
        "transcription_model": None,  # the server transcribes with its own STT
        "key_env": "PARLEY_REALTIME_SERVER_API_KEY",
    },
}


@dataclass(frozen=True, slots=True)
class VoiceEngineConfig:
    """Settings of a :class:`VoiceClient`; ``None`` fields take the mode's default
    (see the module docstring)."""

    mode: Mode = "fast"
    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    model: str | None = None
    voice: str | None = None
    instructions: str = ""
    sample_rate: int = WIRE_SAMPLE_RATE  # the devices' rate; the wire is always 24 kHz
    turn_detection: TurnMode | None = None
    vad_threshold: float = 0.02  # client VAD: RMS as a fraction of full scale
    vad_start_ms: float = 100.0  # loud this long → speech started
    vad_end_ms: float = 700.0  # quiet this long → speech ended
    vad_prefix_ms: float = 300.0  # audio kept from before the onset
    latency_mode: LatencyMode = "balanced"
    tools: Sequence[ToolSpec] = ()  # offered to the model; ``on_function_call`` runs them
    transcription_model: str | None = None
    price_model: str | None = None  # price-table row for estimate_cost(); default: model
    connect_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.mode not in _MODE_DEFAULTS:
            raise ConfigError(f"unknown mode {self.mode!r}; use 'fast' or 'big'", field="mode")
        if self.latency_mode not in LATENCY_PROFILES:
            raise ConfigError(f"unknown latency mode {self.latency_mode!r}", field="latency_mode")
        if self.turn_detection not in (None, "server_vad", "semantic_vad", "client"):
            raise ConfigError(
                f"unknown turn detection {self.turn_detection!r}", field="turn_detection"
            )
        if self.sample_rate <= 0 or self.sample_rate % 100:
            raise ConfigError("must be a positive multiple of 100 Hz", field="sample_rate")
        self.vad_settings  # noqa: B018 - validates the VAD fields now, not at connect

    def _default(self, name: str) -> Any:
        return _MODE_DEFAULTS[self.mode][name]

    @property
    def resolved_url(self) -> str:
        return self.url or str(self._default("url"))

    @property
    def resolved_model(self) -> str:
        return self.model or str(self._default("model"))

    @property
    def resolved_voice(self) -> str | None:
        return self.voice if self.voice is not None else self._default("voice")

    @property
    def resolved_turn_detection(self) -> TurnMode:
        td: TurnMode = self.turn_detection or self._default("turn_detection")
        return td

    @property
    def resolved_api_key(self) -> str:
        """The key (``""`` = none). ``big`` mode never falls back to the OpenAI key."""
        if self.api_key is not None:
            return self.api_key
        return os.environ.get(str(self._default("key_env")), "")

    @property
    def latency(self) -> LatencyProfile:
        return LATENCY_PROFILES[self.latency_mode]

    @property
    def vad_settings(self) -> VADSettings:
        return VADSettings(
            threshold=self.vad_threshold,
            start_ms=self.vad_start_ms,
            end_ms=self.vad_end_ms,
            prefix_ms=self.vad_prefix_ms,
        )

    def realtime_config(self, connect_attempts: int) -> RealtimeConfig:
        """The engine settings this client config stands for."""
        td_mode = self.resolved_turn_detection
        td: TurnDetection | None
        if td_mode == "client":
            td = None
        elif td_mode == "semantic_vad":
            td = TurnDetection(
                type="semantic_vad", eagerness="auto", create_response=True, interrupt_response=True
            )
        elif self.mode == "fast":
            # OpenAI's documented server_vad defaults.
            td = TurnDetection(
                type="server_vad",
                threshold=0.5,
                prefix_padding_ms=300,
                silence_duration_ms=500,
                create_response=True,
                interrupt_response=True,
            )
        else:
            td = TurnDetection(type="server_vad", create_response=True, interrupt_response=True)
        model = self.transcription_model or self._default("transcription_model")
        transcription = InputTranscription(model=model) if model else InputTranscription()
        return RealtimeConfig(
            url=self.resolved_url,
            model=self.resolved_model,
            api_key=self.resolved_api_key,
            instructions=self.instructions,
            voice=self.resolved_voice,
            audio="pcm16",
            turn_detection=td,
            transcription=transcription,
            connect_attempts=connect_attempts,
            connect_timeout_s=self.connect_timeout_s,
            price_model=self.price_model,
        )

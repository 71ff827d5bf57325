"""Settings of a :class:`~parley.client.voice.VoiceClient`: modes, turn detection, latency.

Modes (both speak the same GA protocol):

- ``"fast"``: a Realtime API directly — OpenAI's (``wss://api.openai.com/v1/realtime``,
  ``gpt-realtime``, voice ``marin``, key from ``$OPENAI_API_KEY``) unless the
  environment names another one (see :attr:`VoiceEngineConfig.resolved_url`), with
  ``semantic_vad`` turn detection (the model judges when the user has finished) and
  ``gpt-4o-mini-transcribe`` for the user's words.
- ``"big"``: Parley's cascade lane. With a ``url``, that Parley server's
  ``/v1/realtime`` (a hosted cascade; key from ``$PARLEY_REALTIME_SERVER_API_KEY`` if
  set — never the OpenAI key). Without one, the local lane
  (:class:`~parley.client.lane.LocalLane`): Parley's Realtime server in this process
  on 127.0.0.1, its sessions on the engine Parley's settings configure — the offline
  cascade by default, or a Realtime upstream with failover to the cascade. Model
  ``parley-realtime``, the server's default voice, ``server_vad`` with no parameters,
  so the server keeps Parley's tuned turn-taking (Silero VAD, ``parley.turns``).

Turn detection (``turn_detection``): ``"server_vad"`` / ``"semantic_vad"`` stream all
microphone audio and let the server decide (it also cancels its reply on barge-in;
the client then stops playback and truncates what was not heard). ``"client"``
switches server VAD off: the client VAD decides, only speech (with its prefix) is
sent, the end of speech commits the turn and asks for a reply, and speech during a
reply interrupts it locally. ``vad_enabled=True`` (the VoiceChatEngine document's
switch) is ``"client"``; ``False`` leaves turns to the server.

``latency_mode`` (see :data:`LATENCY_PROFILES`) trades delay for robustness
(``"ultra_low"`` is the document's name for ``"low"``):

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
from urllib.parse import urlsplit, urlunsplit

import msgspec

from parley.audio import Quality
from parley.engines.realtime import RealtimeConfig
from parley.errors import ConfigError
from parley.protocols.openai_realtime import InputTranscription, TurnDetection
from parley.providers.seams import ToolSpec

from .vad import VADSettings

__all__ = [
    "BIG_URL",
    "FAST_URL",
    "LATENCY_ALIASES",
    "LATENCY_PROFILES",
    "URL_ENV",
    "WIRE_SAMPLE_RATE",
    "LatencyMode",
    "LatencyProfile",
    "Mode",
    "TurnMode",
    "VoiceEngineConfig",
    "websocket_url",
]

WIRE_SAMPLE_RATE = 24000  # audio/pcm on the Realtime wire is 24 kHz only
FAST_URL = "wss://api.openai.com/v1/realtime"
BIG_URL = "ws://127.0.0.1:8000/v1/realtime"  # where `parley serve` listens by default
# Where fast mode connects when no url is given, in this order: a full Realtime URL,
# then the official SDK's base URL (``http://host:port/v1`` → ``ws://host:port/v1/realtime``).
URL_ENV = ("PARLEY_REALTIME_URL", "OPENAI_BASE_URL")

Mode = Literal["fast", "big"]
LatencyMode = Literal["ultra_low", "low", "balanced", "quality"]
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
#: The VoiceChatEngine document's spellings of Parley's latency modes.
LATENCY_ALIASES: dict[str, str] = {"ultra_low": "low"}

_MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "fast": {
        "model": "gpt-realtime",
        "voice": "marin",
        "turn_detection": "semantic_vad",
        "transcription_model": "gpt-4o-mini-transcribe",
        "key_env": "OPENAI_API_KEY",
    },
    "big": {
        "model": "parley-realtime",
        "voice": None,
        "turn_detection": "server_vad",
        "transcription_model": None,  # the server transcribes with its own STT
        "key_env": "PARLEY_REALTIME_SERVER_API_KEY",
    },
}
_VAD_START_MS = 100.0
_VAD_END_MS = 700.0


def websocket_url(base_url: str) -> str:
    """The Realtime URL of an API base URL, as OpenAI's SDK derives it:
    ``https://host/v1`` → ``wss://host/v1/realtime``."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/") + "/realtime"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def _one_of(name: str, value: object, valid: Sequence[str]) -> ConfigError:
    return ConfigError(f"unknown {name} {value!r}; use one of: {', '.join(valid)}", field=name)


@dataclass(frozen=True, slots=True)
class VoiceEngineConfig:
    """Settings of a :class:`VoiceClient`; ``None`` fields take the mode's default
    (see the module docstring).

    The VoiceChatEngine document's names are accepted too: ``vad_speech_start_ms`` /
    ``vad_speech_end_ms`` are ``vad_start_ms`` / ``vad_end_ms`` (give either),
    ``latency_mode="ultra_low"`` is ``"low"``, ``vad_enabled`` picks the turn
    detection. ``language`` is the input language (ISO-639-1, e.g. ``"es"``) given to
    the server's transcription; the reply's language follows ``instructions``.
    """

    mode: Mode = "fast"
    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    model: str | None = None
    voice: str | None = None
    instructions: str = ""
    sample_rate: int = WIRE_SAMPLE_RATE  # the devices' rate; the wire is always 24 kHz
    turn_detection: TurnMode | None = None
    vad_threshold: float = 0.02  # client VAD: RMS as a fraction of full scale
    vad_start_ms: float = _VAD_START_MS  # loud this long → speech started
    vad_end_ms: float = _VAD_END_MS  # quiet this long → speech ended
    vad_prefix_ms: float = 300.0  # audio kept from before the onset
    latency_mode: LatencyMode = "balanced"
    tools: Sequence[ToolSpec] = ()  # offered to the model; ``on_function_call`` runs them
    transcription_model: str | None = None
    price_model: str | None = None  # price-table row for estimate_cost(); default: model
    connect_timeout_s: float = 10.0
    # The VoiceChatEngine document's fields.
    vad_enabled: bool | None = None  # True: the client VAD decides turns ("client")
    vad_speech_start_ms: float | None = None  # = vad_start_ms
    vad_speech_end_ms: float | None = None  # = vad_end_ms
    language: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in _MODE_DEFAULTS:
            raise _one_of("mode", self.mode, ("fast", "big"))
        latency = (*LATENCY_ALIASES, *LATENCY_PROFILES)
        if self.latency_mode not in latency:
            raise _one_of("latency_mode", self.latency_mode, latency)
        turn_modes = ("server_vad", "semantic_vad", "client")
        if self.turn_detection is not None and self.turn_detection not in turn_modes:
            raise _one_of("turn_detection", self.turn_detection, turn_modes)
        chosen = self.vad_enabled is not None and self.turn_detection is not None
        if chosen and self.vad_enabled != (self.turn_detection == "client"):
            raise ConfigError(
                f"vad_enabled={self.vad_enabled} contradicts turn_detection="
                f"{self.turn_detection!r} (vad_enabled=True is turn_detection='client'); "
                "give one of them",
                field="vad_enabled",
            )
        if self.sample_rate <= 0 or self.sample_rate % 100:
            raise ConfigError("must be a positive multiple of 100 Hz", field="sample_rate")
        self._alias("vad_speech_start_ms", self.vad_speech_start_ms, "vad_start_ms")
        self._alias("vad_speech_end_ms", self.vad_speech_end_ms, "vad_end_ms")
        self.vad_settings  # noqa: B018 - validates the VAD fields now, not at connect

    def _alias(self, alias: str, value: float | None, name: str) -> None:
        if value is None:
            return
        current, default = (
            (self.vad_start_ms, _VAD_START_MS)
            if name == "vad_start_ms"
            else (self.vad_end_ms, _VAD_END_MS)
        )
        if current not in (default, value):
            raise ConfigError(f"{alias} is {name}: give one of them", field=alias)
        object.__setattr__(self, name, float(value))

    def _default(self, name: str) -> Any:
        return _MODE_DEFAULTS[self.mode][name]

    @property
    def resolved_url(self) -> str | None:
        """Where to connect: ``url``; in fast mode else ``$PARLEY_REALTIME_URL``, else
        ``$OPENAI_BASE_URL`` + ``/realtime`` (as OpenAI's SDK reads it), else OpenAI.
        ``None`` in big mode without a ``url``: the local lane, started at connect."""
        if self.url:
            return self.url
        if self.mode == "big":
            return None
        full, base = (os.environ.get(name, "").strip() for name in URL_ENV)
        if full:
            return full
        return websocket_url(base) if base else FAST_URL

    @property
    def resolved_model(self) -> str:
        return self.model or str(self._default("model"))

    @property
    def resolved_voice(self) -> str | None:
        return self.voice if self.voice is not None else self._default("voice")

    @property
    def resolved_turn_detection(self) -> TurnMode:
        if self.turn_detection is None and self.vad_enabled:
            return "client"
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
        return LATENCY_PROFILES[LATENCY_ALIASES.get(self.latency_mode, self.latency_mode)]

    @property
    def vad_settings(self) -> VADSettings:
        return VADSettings(
            threshold=self.vad_threshold,
            start_ms=self.vad_start_ms,
            end_ms=self.vad_end_ms,
            prefix_ms=self.vad_prefix_ms,
        )

    def realtime_config(self, connect_attempts: int, url: str | None = None) -> RealtimeConfig:
        """The engine settings this client config stands for; ``url`` overrides
        :attr:`resolved_url` (the local lane's address)."""
        target = url or self.resolved_url
        if target is None:
            raise ConfigError("big mode without a url needs the local lane's", field="url")
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
        words = InputTranscription(
            model=model or msgspec.UNSET, language=self.language or msgspec.UNSET
        )
        return RealtimeConfig(
            url=target,
            model=self.resolved_model,
            api_key=self.resolved_api_key,
            instructions=self.instructions,
            voice=self.resolved_voice,
            audio="pcm16",
            turn_detection=td,
            transcription=words,
            connect_attempts=connect_attempts,
            connect_timeout_s=self.connect_timeout_s,
            price_model=self.price_model,
        )

"""The document's configuration keys, typed, and what every provider shares.

The keys are exactly the document's YAML (``stt_engine``, ``tts_engine``,
``conversation``, ``pause_detection``, ``audio``); an unknown key is refused with
the known ones named, a value of the wrong type or range with what is allowed.
The engine sections hold only what was given (``get_stt_config()`` is the keyword
arguments for ``WhisperSTTEngine(**…)``: the defaults live in the engines); the
``conversation`` and ``audio`` sections are the engine's own settings:

- ``conversation.response_mode``: ``echo`` | ``template`` (the offline generators;
  an LLM is an ``LLMResponseGenerator`` configured in code);
  ``max_history_length``: messages kept for the generator (user and assistant each);
- ``audio.sample_rate`` and ``channels``: the adapters' default wire format (PCM16);
  ``buffer_duration``: the longest utterance kept, in seconds.

Values the document uses that Parley runs differently (``model_size: base``,
``device: cuda``) are accepted here; the engines say what they run instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from parley.errors import ConfigError

__all__ = [
    "SECTIONS",
    "AudioSettings",
    "ConfigurationProvider",
    "ConversationSettings",
    "EngineSettings",
    "PauseDetectionSettings",
    "STTSettings",
    "SectionedConfiguration",
    "TTSSettings",
    "validate_settings",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class STTSettings(_Section):
    """``WhisperSTTEngine`` keyword arguments."""

    model_size: str | None = None
    device: str | None = None
    language: str | None = None


class TTSSettings(_Section):
    """``ChatterboxTTSEngine`` keyword arguments."""

    device: str | None = None
    temperature: float | None = Field(default=None, ge=0)
    speed_factor: float | None = Field(default=None, gt=0)


class ConversationSettings(_Section):
    response_mode: Literal["echo", "template"] = "echo"
    max_history_length: int = Field(default=200, ge=2)


class PauseDetectionSettings(_Section):
    """``WebRTCPauseDetector`` keyword arguments."""

    aggressiveness: int | None = Field(default=None, ge=0, le=3)
    min_speech_frames: int | None = Field(default=None, ge=1)
    min_pause_frames: int | None = Field(default=None, ge=1)


class AudioSettings(_Section):
    sample_rate: int = Field(default=16000, ge=8000, le=48000)
    channels: int = Field(default=1, ge=1, le=2)
    buffer_duration: float = Field(default=30.0, gt=0.5, le=600)


class EngineSettings(_Section):
    """The whole document configuration."""

    stt_engine: STTSettings = STTSettings()
    tts_engine: TTSSettings = TTSSettings()
    conversation: ConversationSettings = ConversationSettings()
    pause_detection: PauseDetectionSettings = PauseDetectionSettings()
    audio: AudioSettings = AudioSettings()


#: Section name → its model, in the document's order.
SECTIONS: Final[Mapping[str, type[_Section]]] = {
    "stt_engine": STTSettings,
    "tts_engine": TTSSettings,
    "conversation": ConversationSettings,
    "pause_detection": PauseDetectionSettings,
    "audio": AudioSettings,
}


def _known(loc: tuple[int | str, ...]) -> list[str]:
    model: type[BaseModel] = EngineSettings
    for part in loc[:-1]:
        annotation = model.model_fields[str(part)].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def validate_settings(data: object, source: str) -> EngineSettings:
    """``data`` (the parsed YAML, a dict, the environment's values) → settings;
    ``ConfigError`` with the dotted key, saying what is allowed."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    try:
        return EngineSettings.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        path = ".".join(str(p) for p in loc)
        if first["type"] == "extra_forbidden":
            message = f"unknown setting in {source} (known: {', '.join(_known(loc))})"
        else:
            message = f"{first['msg']} (in {source})"
        raise ConfigError(message, field=path) from None


@runtime_checkable
class ConfigurationProvider(Protocol):
    """What ``ConversationEngine(config_provider)`` reads: one dict per section."""

    def get_stt_config(self) -> dict[str, Any]: ...

    def get_tts_config(self) -> dict[str, Any]: ...

    def get_conversation_config(self) -> dict[str, Any]: ...

    def get_pause_detection_config(self) -> dict[str, Any]: ...

    def get_audio_config(self) -> dict[str, Any]: ...


class SectionedConfiguration:
    """The getters of every built-in provider, over validated :class:`EngineSettings`."""

    def __init__(self, data: object, source: str) -> None:
        self.source = source
        self.settings = validate_settings(data, source)

    def get(self, section: str) -> dict[str, Any]:
        """One section as a dict: what was given for an engine section, everything
        (with defaults) for ``conversation`` and ``audio``."""
        if section not in SECTIONS:
            raise ConfigError(f"unknown section {section!r} (known: {', '.join(SECTIONS)})")
        model: BaseModel = getattr(self.settings, section)
        engine_section = section in ("stt_engine", "tts_engine", "pause_detection")
        return model.model_dump(exclude_unset=engine_section)

    def get_stt_config(self) -> dict[str, Any]:
        return self.get("stt_engine")

    def get_tts_config(self) -> dict[str, Any]:
        return self.get("tts_engine")

    def get_conversation_config(self) -> dict[str, Any]:
        return self.get("conversation")

    def get_pause_detection_config(self) -> dict[str, Any]:
        return self.get("pause_detection")

    def get_audio_config(self) -> dict[str, Any]:
        return self.get("audio")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source})"

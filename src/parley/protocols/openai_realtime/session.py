"""The GA Realtime session configuration (``session.update`` / ``session.created``).

The shape is the nested GA one (``type: "realtime"``, ``audio.input.*``,
``audio.output.*``). A field left at ``UNSET`` is absent on the wire, which is
not the same as ``None`` (JSON ``null``): in ``session.update`` only present
fields change, and ``turn_detection: null`` switches server VAD off. The same
distinction lets the local server merge an update into its current session
(:func:`merge_session`).

The beta flat shape is accepted on input and mapped here
(:func:`session_dict_from_beta`, protocols.md §1.5).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from parley.audio.format import AudioFormat
from parley.errors import RemoteProtocolError

__all__ = [
    "PCM16_24K",
    "PCMA",
    "PCMU",
    "AudioConfig",
    "AudioInput",
    "AudioOutput",
    "InputTranscription",
    "NoiseReduction",
    "RealtimeAudioFormat",
    "Session",
    "Tool",
    "TurnDetection",
    "format_from_name",
    "merge_session",
    "session_dict_from_beta",
]


class _Config(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every configuration struct: immutable, keyword-only."""


class RealtimeAudioFormat(_Config, frozen=True, kw_only=True):
    """``{"type": "audio/pcm", "rate": 24000}`` | ``{"type": "audio/pcmu"}`` | ``audio/pcma``.

    ``audio/pcm`` is PCM16 little-endian mono at 24 kHz (the only rate the API
    accepts); ``audio/pcmu`` and ``audio/pcma`` are G.711 at 8 kHz.
    """

    type: Literal["audio/pcm", "audio/pcmu", "audio/pcma"]
    rate: int | UnsetType = UNSET

    @property
    def encoding(self) -> Literal["pcm16", "ulaw", "alaw"]:
        """The matching ``parley.audio.AudioFormat.encoding``."""
        if self.type == "audio/pcmu":
            return "ulaw"
        if self.type == "audio/pcma":
            return "alaw"
        return "pcm16"

    @property
    def sample_rate(self) -> int:
        if self.type == "audio/pcm":
            return self.rate if isinstance(self.rate, int) else 24000
        return 8000

    @property
    def audio_format(self) -> AudioFormat:
        """The matching :class:`parley.audio.AudioFormat` (mono)."""
        return AudioFormat(self.encoding, self.sample_rate)


PCM16_24K = RealtimeAudioFormat(type="audio/pcm", rate=24000)
PCMU = RealtimeAudioFormat(type="audio/pcmu")
PCMA = RealtimeAudioFormat(type="audio/pcma")

# Every spelling the official Agents SDK accepts (audio_formats.py), beta names included.
_FORMAT_NAMES: dict[str, RealtimeAudioFormat] = {
    "pcm16": PCM16_24K,
    "pcm": PCM16_24K,
    "audio/pcm": PCM16_24K,
    "g711_ulaw": PCMU,
    "pcmu": PCMU,
    "audio/pcmu": PCMU,
    "g711_alaw": PCMA,
    "pcma": PCMA,
    "audio/pcma": PCMA,
}


def format_from_name(name: str) -> RealtimeAudioFormat:
    """Map a beta (``g711_ulaw``) or short (``pcmu``) format name onto the GA object.

    Raises ``RemoteProtocolError(code="invalid_event")`` for an unknown name.
    """
    try:
        return _FORMAT_NAMES[name]
    except KeyError:
        raise RemoteProtocolError(f"unknown audio format {name!r}", code="invalid_event") from None


class TurnDetection(_Config, frozen=True, kw_only=True):
    """``server_vad`` or ``semantic_vad``; one struct for both (like the beta SDK type) so a
    field the other kind lacks is simply ``UNSET``."""

    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float | UnsetType = UNSET
    prefix_padding_ms: int | UnsetType = UNSET
    silence_duration_ms: int | UnsetType = UNSET
    idle_timeout_ms: int | UnsetType | None = UNSET
    create_response: bool | UnsetType = UNSET
    interrupt_response: bool | UnsetType = UNSET
    eagerness: Literal["low", "medium", "high", "auto"] | UnsetType = UNSET


class InputTranscription(_Config, frozen=True, kw_only=True):
    model: str | UnsetType = UNSET
    language: str | UnsetType = UNSET
    prompt: str | UnsetType = UNSET
    delay: str | UnsetType = UNSET
    keywords: list[str] | UnsetType = UNSET
    languages: list[str] | UnsetType = UNSET


class NoiseReduction(_Config, frozen=True, kw_only=True):
    type: Literal["near_field", "far_field"] | UnsetType = UNSET


class AudioInput(_Config, frozen=True, kw_only=True):
    format: RealtimeAudioFormat | UnsetType = UNSET
    noise_reduction: NoiseReduction | UnsetType | None = UNSET
    transcription: InputTranscription | UnsetType | None = UNSET
    turn_detection: TurnDetection | UnsetType | None = UNSET


class AudioOutput(_Config, frozen=True, kw_only=True):
    format: RealtimeAudioFormat | UnsetType = UNSET
    # A built-in voice name, or ``{"id": "voice_…"}`` for a custom voice.
    voice: str | dict[str, str] | UnsetType = UNSET
    speed: float | UnsetType = UNSET


class AudioConfig(_Config, frozen=True, kw_only=True):
    input: AudioInput | UnsetType = UNSET
    output: AudioOutput | UnsetType = UNSET


class Tool(_Config, frozen=True, kw_only=True):
    """A function tool ``{type:"function", name, description, parameters}``; the MCP tool
    fields are carried untyped (Parley does not run MCP servers itself)."""

    type: str = "function"
    name: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    parameters: dict[str, Any] | UnsetType = UNSET
    server_label: str | UnsetType = UNSET
    server_url: str | UnsetType = UNSET
    server_description: str | UnsetType = UNSET
    connector_id: str | UnsetType = UNSET
    authorization: str | UnsetType = UNSET
    headers: dict[str, str] | UnsetType | None = UNSET
    allowed_tools: Any = UNSET
    require_approval: Any = UNSET


class Session(_Config, frozen=True, kw_only=True):
    """A GA session (``type: "realtime"``, or ``"transcription"`` for a transcription-only
    session). Servers add ``id``, ``object`` and ``expires_at``."""

    type: Literal["realtime", "transcription"] = "realtime"
    id: str | UnsetType = UNSET
    object: str | UnsetType = UNSET
    model: str | UnsetType = UNSET
    output_modalities: list[Literal["text", "audio"]] | UnsetType = UNSET
    instructions: str | UnsetType = UNSET
    audio: AudioConfig | UnsetType = UNSET
    tools: list[Tool] | UnsetType = UNSET
    # "none" | "auto" | "required" | {type:"function", name} | {type:"mcp", server_label, name?}
    tool_choice: str | dict[str, Any] | UnsetType = UNSET
    max_output_tokens: int | Literal["inf"] | UnsetType = UNSET
    truncation: str | dict[str, Any] | UnsetType = UNSET
    tracing: str | dict[str, Any] | UnsetType | None = UNSET
    include: list[str] | UnsetType | None = UNSET
    prompt: dict[str, Any] | UnsetType | None = UNSET
    parallel_tool_calls: bool | UnsetType = UNSET
    reasoning: dict[str, Any] | UnsetType = UNSET
    expires_at: int | UnsetType = UNSET


_S = Session | AudioConfig | AudioInput | AudioOutput


def _merge(base: Any, update: Any) -> Any:
    # Nested config objects merge field by field; anything else (a list, a format, a
    # turn_detection object, None) replaces the old value, as the API documents.
    if not isinstance(base, _S) or type(base) is not type(update):
        return update
    changes = {}
    for name in update.__struct_fields__:
        new = getattr(update, name)
        if new is not UNSET:
            changes[name] = _merge(getattr(base, name), new)
    return msgspec.structs.replace(base, **changes)


def merge_session(base: Session, update: Session) -> Session:
    """Apply a ``session.update`` to the current session: only the fields present in
    ``update`` change (``audio.input``/``audio.output`` are merged field by field)."""
    merged: Session = _merge(base, update)
    return merged


# beta flat key -> path in the GA nested session (protocols.md §1.5)
_BETA_AUDIO_KEYS: dict[str, tuple[str, str]] = {
    "input_audio_format": ("input", "format"),
    "output_audio_format": ("output", "format"),
    "voice": ("output", "voice"),
    "speed": ("output", "speed"),
    "turn_detection": ("input", "turn_detection"),
    "input_audio_transcription": ("input", "transcription"),
    "input_audio_noise_reduction": ("input", "noise_reduction"),
}
# Beta-only keys with no GA counterpart; dropped (GA has no temperature anywhere).
_BETA_DROPPED = ("temperature", "client_secret")


def _modalities_to_ga(value: Any) -> Any:
    # GA cannot ask for text and audio together: "audio" already includes the transcript.
    if isinstance(value, list):
        return ["audio"] if "audio" in value else ["text"] if "text" in value else value
    return value


def session_dict_from_beta(session: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a beta flat session (``modalities``, ``voice``, ``input_audio_format`` …)
    into the GA nested shape; a GA session passes through unchanged (``type`` defaults to
    ``"realtime"``). When both spellings are present the GA one wins."""
    out = dict(session)
    audio_raw = out.get("audio")
    audio: dict[str, Any] = dict(audio_raw) if isinstance(audio_raw, dict) else {}
    moved = False
    for key, (direction, field) in _BETA_AUDIO_KEYS.items():
        if key not in out:
            continue
        value = out.pop(key)
        if key.endswith("_format"):
            if value is None:  # "no format" is not a GA value; leave the default
                continue
            if isinstance(value, str):
                value = msgspec.to_builtins(format_from_name(value))
        side_raw = audio.get(direction)
        side: dict[str, Any] = dict(side_raw) if isinstance(side_raw, dict) else {}
        side.setdefault(field, value)
        audio[direction] = side
        moved = True
    if moved:
        out["audio"] = audio
    if "modalities" in out:
        out.setdefault("output_modalities", _modalities_to_ga(out.pop("modalities")))
    if "max_response_output_tokens" in out:
        out.setdefault("max_output_tokens", out.pop("max_response_output_tokens"))
    for key in _BETA_DROPPED:
        out.pop(key, None)
    out.setdefault("type", "realtime")
    return out

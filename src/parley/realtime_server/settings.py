"""Session settings: defaults, the turn-detection mapping and format checks.

``turn_config`` is where the client's ``server_vad``/``semantic_vad`` parameters
become Parley's :class:`~parley.turns.TurnConfig`, and ``endpoint_config`` the
end-of-turn model both modes run (the cascade engine's, :mod:`parley.endpointing`):
the speculative transcript at the first short pause sets how much silence ends
*this* turn.

- ``semantic_vad``: ``eagerness`` picks the model's wait curve
  (:data:`~parley.endpointing.EAGERNESS`: after a finished sentence low / medium /
  high wait 320 / 160 / 96 ms, after unfinished words 2,016 / 1,504 / 992 ms, and
  that long until the transcript is in); ``auto`` is ``medium``.
- ``server_vad``: the model with ``silence_duration_ms`` as the wait while the
  model is unsure and until the transcript is in, so a slow STT never waits longer
  than the client asked; a finished sentence ends after 160 ms (or the silence, if
  shorter), unfinished words ("my number is …") wait up to 1,504 ms.
"""

from __future__ import annotations

import secrets
import time
from typing import Literal

import msgspec

from parley.endpointing import EAGERNESS, EndOfTurnConfig, EndpointConfig, eagerness_config
from parley.errors import ConfigError, RemoteProtocolError
from parley.protocols.openai_realtime import (
    PCM16_24K,
    AudioConfig,
    AudioInput,
    AudioOutput,
    InputTranscription,
    RealtimeAudioFormat,
    Session,
    TurnDetection,
    merge_session,
)
from parley.protocols.openai_realtime.server_conversation import check_format
from parley.turns import TurnConfig

from .backend import RealtimeBackend

__all__ = [
    "audio_in",
    "audio_out",
    "check_format",
    "default_session",
    "endpoint_config",
    "format_or_default",
    "modalities",
    "turn_config",
    "turn_detection",
    "updated_session",
    "voice",
]


def turn_config(td: TurnDetection) -> TurnConfig:
    """``server_vad``/``semantic_vad`` parameters → a :class:`TurnConfig`.

    ``threshold`` → ``threshold`` (the hysteresis' lower threshold stays at most it),
    ``silence_duration_ms`` (``semantic_vad``: the eagerness' wait until the transcript
    is in) → ``end_of_turn_silence_ms``, ``prefix_padding_ms`` → ``prefix_padding_ms``;
    unset fields keep Parley's tuned defaults. Bad values raise
    ``RemoteProtocolError(invalid_value)``.
    """
    base = TurnConfig()
    threshold = td.threshold if isinstance(td.threshold, float | int) else base.threshold
    prefix = td.prefix_padding_ms if isinstance(td.prefix_padding_ms, int) else None
    try:
        if td.type == "semantic_vad":
            eagerness = td.eagerness if isinstance(td.eagerness, str) else "auto"
            silence = EAGERNESS[eagerness].pending_ms
        elif isinstance(td.silence_duration_ms, int):
            silence = float(td.silence_duration_ms)
        else:
            silence = base.end_of_turn_silence_ms
        return TurnConfig(
            threshold=float(threshold),
            stop_threshold=min(base.stop_threshold, float(threshold)),
            end_of_turn_silence_ms=silence,
            speculative_silence_ms=min(base.speculative_silence_ms, silence / 2),
            prefix_padding_ms=float(prefix) if prefix is not None else base.prefix_padding_ms,
        )
    except ConfigError as exc:
        raise RemoteProtocolError(
            f"session.audio.input.turn_detection: {exc.field or 'value'} {exc}",
            code="invalid_value",
        ) from None
    except (OverflowError, KeyError):  # a huge integer, an unknown eagerness (socket fuzz)
        raise RemoteProtocolError(
            "session.audio.input.turn_detection: a number out of range", code="invalid_value"
        ) from None


def endpoint_config(td: TurnDetection) -> EndpointConfig:
    """The end-of-turn model for ``td`` (see the module docstring); ``td`` is valid
    (``turn_config`` accepted it)."""
    if td.type == "semantic_vad":
        eagerness = td.eagerness if isinstance(td.eagerness, str) else None
        return EndpointConfig(mode="model", model=eagerness_config(eagerness))
    silence = turn_config(td).end_of_turn_silence_ms
    base = EndOfTurnConfig()
    curve = EndOfTurnConfig(
        short_ms=min(base.short_ms, silence),
        unsure_ms=silence,
        long_ms=max(base.long_ms, silence),
        pending_ms=silence,
    )
    return EndpointConfig(mode="model", model=curve)


def default_session(backend: RealtimeBackend, model: str) -> Session:
    base = TurnConfig()
    turn = TurnDetection(
        type="server_vad",
        threshold=base.threshold,
        prefix_padding_ms=int(base.prefix_padding_ms),
        silence_duration_ms=int(base.end_of_turn_silence_ms),
        idle_timeout_ms=None,
        create_response=True,
        interrupt_response=True,
    )
    return Session(
        type="realtime",
        id=f"sess_{secrets.token_hex(10)}",
        object="realtime.session",
        model=model,
        output_modalities=["audio"],
        instructions="",
        audio=AudioConfig(
            input=AudioInput(
                format=PCM16_24K,
                noise_reduction=None,
                transcription=InputTranscription(model=backend.transcription_model),
                turn_detection=turn,
            ),
            output=AudioOutput(format=PCM16_24K, voice=backend.voices[0], speed=1.0),
        ),
        tools=[],
        tool_choice="auto",
        max_output_tokens="inf",
        tracing=None,
        expires_at=int(time.time()) + 3600,
    )


def audio_in(session: Session) -> AudioInput:
    audio = session.audio if isinstance(session.audio, AudioConfig) else AudioConfig()
    return audio.input if isinstance(audio.input, AudioInput) else AudioInput()


def audio_out(session: Session) -> AudioOutput:
    audio = session.audio if isinstance(session.audio, AudioConfig) else AudioConfig()
    return audio.output if isinstance(audio.output, AudioOutput) else AudioOutput()


def format_or_default(fmt: RealtimeAudioFormat | object) -> RealtimeAudioFormat:
    return fmt if isinstance(fmt, RealtimeAudioFormat) else PCM16_24K


def updated_session(old: Session, update: Session, voices: tuple[str, ...]) -> Session:
    """``session.update`` merged into ``old`` and checked; ``old`` stays valid when this
    raises (``RemoteProtocolError``, invalid_value)."""
    if update.type != "realtime":
        raise RemoteProtocolError(
            "session.type: only 'realtime' sessions are served here", code="invalid_value"
        )
    new = merge_session(old, update)
    # The server owns these; a client echoing a whole session must not change them.
    new = msgspec.structs.replace(new, id=old.id, object=old.object, expires_at=old.expires_at)
    ain, aout = audio_in(new), audio_out(new)
    check_format(format_or_default(ain.format), "session.audio.input.format")
    check_format(format_or_default(aout.format), "session.audio.output.format")
    mods = new.output_modalities
    if isinstance(mods, list) and sorted(set(mods)) not in (["audio"], ["text"]):
        raise RemoteProtocolError(
            "session.output_modalities: one of ['audio'] or ['text']", code="invalid_value"
        )
    td = ain.turn_detection
    if isinstance(td, TurnDetection):
        turn_config(td)  # raises for bad values
    voice = aout.voice
    if not isinstance(voice, str) or voice not in voices:
        voice = audio_out(old).voice  # this TTS has no such voice: keep the current one
    return msgspec.structs.replace(
        new, audio=AudioConfig(input=ain, output=msgspec.structs.replace(aout, voice=voice))
    )


def turn_detection(session: Session) -> TurnDetection | None:
    td = audio_in(session).turn_detection
    return td if isinstance(td, TurnDetection) else None


def modalities(session: Session) -> list[Literal["text", "audio"]]:
    mods = session.output_modalities
    return list(mods) if isinstance(mods, list) else ["audio"]


def voice(session: Session) -> str | None:
    name = audio_out(session).voice
    return name if isinstance(name, str) else None

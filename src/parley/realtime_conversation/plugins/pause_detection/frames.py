"""The document's frame counts (``min_speech_frames``, ``min_pause_frames``) as
Parley's turn-taking settings (:class:`parley.turns.TurnConfig`, in milliseconds)."""

from __future__ import annotations

from parley.errors import ConfigError
from parley.turns import TurnConfig

__all__ = ["turn_config_from_frames"]

_DEFAULT = TurnConfig()


def turn_config_from_frames(
    frame_ms: int, min_speech_frames: int | None, min_pause_frames: int | None
) -> TurnConfig:
    """``None`` keeps Parley's tuned default (160 ms of speech starts a turn, 640 ms of
    silence ends it; see :mod:`parley.turns`)."""
    for name, value in (
        ("min_speech_frames", min_speech_frames),
        ("min_pause_frames", min_pause_frames),
    ):
        if value is not None and value < 1:
            raise ConfigError(f"must be at least 1, not {value}", field=name)
    speech_ms = (
        _DEFAULT.min_speech_ms if min_speech_frames is None else min_speech_frames * frame_ms
    )
    end_ms = (
        _DEFAULT.end_of_turn_silence_ms if min_pause_frames is None else min_pause_frames * frame_ms
    )
    # Speculative STT starts at the first short silence, which must come before the end.
    speculative = min(_DEFAULT.speculative_silence_ms, end_ms / 2)
    return TurnConfig(
        min_speech_ms=float(speech_ms),
        end_of_turn_silence_ms=float(end_ms),
        speculative_silence_ms=float(speculative),
    )

"""How much of a reply the caller has heard: shared by the engines' reply records.

The transport reports playback (Twilio marks, the page's audio clock); until it
does, the reply is assumed to play in real time from its first chunk.
"""

from __future__ import annotations

__all__ = ["estimated_played_ms", "still_playing"]


def estimated_played_ms(
    audio_ms: float, played_ms: float | None, first_audio_t: float | None, now: float
) -> float:
    """Milliseconds of the ``audio_ms`` sent that the caller has heard by ``now``."""
    if played_ms is not None:
        return min(played_ms, audio_ms)
    if first_audio_t is None:
        return 0.0
    return min(audio_ms, (now - first_audio_t) * 1000)


def still_playing(
    generating: bool,
    audio_ms: float,
    played_ms: float | None,
    first_audio_t: float | None,
    now: float,
) -> bool:
    """True while the reply is being made or its audio has not all been heard."""
    heard = estimated_played_ms(audio_ms, played_ms, first_audio_t, now)
    return generating or heard < audio_ms - 1.0

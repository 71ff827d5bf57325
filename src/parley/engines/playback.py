"""How much of a reply the caller has heard: shared by the engines' reply records.

The transport reports playback (Twilio marks, the page's audio clock); until it
does, the reply is assumed to play in real time from its first chunk.
:func:`heard_text` turns the milliseconds heard into the words heard, for the
history and the transcript after a barge-in or a truncation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

__all__ = ["SpokenSegment", "estimated_played_ms", "heard_text", "still_playing"]


class SpokenSegment(NamedTuple):
    """A piece of a reply's text and where its audio sits in the reply (ms from the
    reply's first sample). A plain ``(text, start_ms, end_ms)`` tuple does as well."""

    text: str
    start_ms: float
    end_ms: float


def heard_text(segments: Iterable[tuple[str, float, float]], played_ms: float) -> str:
    """What the caller heard of a reply after ``played_ms`` of its audio.

    Every segment whose audio has played in full counts whole; inside the segment
    being played, the heard time is mapped proportionally onto its text, and a word
    cut in the middle is not counted (whole words only). Whitespace is normalised.
    A whole reply whose text and audio arrive as one is one segment
    ``(text, 0, audio_ms)``.

    A segment with no audio (yet) — the clause TTS is still making while the caller
    has heard everything sent so far, or one TTS made no sound for — counts only once
    playback is past it: at the end of the audio sent, its words have not been heard.
    """
    heard: list[str] = []
    for text, start_ms, end_ms in segments:
        if played_ms >= end_ms and (end_ms > start_ms or played_ms > end_ms):
            heard.append(text)
            continue
        if start_ms < played_ms < end_ms:
            cut = int(len(text) * (played_ms - start_ms) / (end_ms - start_ms))
            part = text[:cut]
            # A word cut in the middle was not heard: keep whole words only.
            rest = text[cut : cut + 1]
            if rest and not rest.isspace() and not part[-1:].isspace():
                part = part.rsplit(None, 1)[0] if " " in part.strip() else ""
            heard.append(part)
        break
    return " ".join(" ".join(heard).split())


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

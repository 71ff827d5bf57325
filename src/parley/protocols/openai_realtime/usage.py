"""Token usage blocks: ``response.done.response.usage`` and input-transcription usage.

:meth:`ResponseUsage.to_usage` turns the wire block into ``parley.events.Usage``.
Cached tokens are a subset of input tokens. When ``cached_tokens_details`` is
absent (beta-SDK-shaped blocks), the split is unknown and **all of
``cached_tokens`` is counted as cached text**; for every current model the text-
and audio-cached prices are equal, so the cost is still exact (protocols.md
§1.8; not for the 2024-10-01 snapshot).
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

from parley.events import Usage

__all__ = [
    "CachedTokensDetails",
    "InputTokenDetails",
    "OutputTokenDetails",
    "ResponseUsage",
    "TranscriptionTokenDetails",
    "TranscriptionUsage",
]


class _Block(msgspec.Struct, frozen=True, kw_only=True):
    pass


class CachedTokensDetails(_Block, frozen=True, kw_only=True):
    text_tokens: int = 0
    audio_tokens: int = 0
    image_tokens: int = 0


class InputTokenDetails(_Block, frozen=True, kw_only=True):
    text_tokens: int = 0
    audio_tokens: int = 0
    image_tokens: int = 0
    cached_tokens: int = 0
    cached_tokens_details: CachedTokensDetails | UnsetType | None = UNSET


class OutputTokenDetails(_Block, frozen=True, kw_only=True):
    text_tokens: int = 0
    audio_tokens: int = 0


class ResponseUsage(_Block, frozen=True, kw_only=True):
    """``usage`` of a ``response.done`` (GA ``RealtimeResponseUsage``)."""

    total_tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    input_token_details: InputTokenDetails | None = None
    output_token_details: OutputTokenDetails | None = None

    @classmethod
    def from_usage(cls, usage: Usage) -> ResponseUsage:
        """The wire block for a ``parley.events.Usage`` (what the local server reports)."""
        return cls(
            total_tokens=usage.total_tokens,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            input_token_details=InputTokenDetails(
                text_tokens=usage.input_text_tokens,
                audio_tokens=usage.input_audio_tokens,
                image_tokens=usage.input_image_tokens,
                cached_tokens=usage.cached_text_tokens
                + usage.cached_audio_tokens
                + usage.cached_image_tokens,
                cached_tokens_details=CachedTokensDetails(
                    text_tokens=usage.cached_text_tokens,
                    audio_tokens=usage.cached_audio_tokens,
                    image_tokens=usage.cached_image_tokens,
                ),
            ),
            output_token_details=OutputTokenDetails(
                text_tokens=usage.output_text_tokens,
                audio_tokens=usage.output_audio_tokens,
            ),
        )

    def to_usage(self) -> Usage:
        """Split the way the API bills it (see the module docstring for a missing split)."""
        inp = self.input_token_details or InputTokenDetails()
        out = self.output_token_details or OutputTokenDetails()
        cached = inp.cached_tokens_details
        if isinstance(cached, CachedTokensDetails):
            c_text, c_audio, c_image = cached.text_tokens, cached.audio_tokens, cached.image_tokens
        else:
            c_text, c_audio, c_image = inp.cached_tokens, 0, 0
        return Usage(
            input_text_tokens=inp.text_tokens,
            input_audio_tokens=inp.audio_tokens,
            input_image_tokens=inp.image_tokens,
            cached_text_tokens=c_text,
            cached_audio_tokens=c_audio,
            cached_image_tokens=c_image,
            output_text_tokens=out.text_tokens,
            output_audio_tokens=out.audio_tokens,
        )


class TranscriptionTokenDetails(_Block, frozen=True, kw_only=True):
    text_tokens: int | UnsetType = UNSET
    audio_tokens: int | UnsetType = UNSET


class TranscriptionUsage(_Block, frozen=True, kw_only=True):
    """Usage of input transcription, billed apart from the response:
    ``{type:"tokens", input_tokens, output_tokens, total_tokens, input_token_details}``
    or ``{type:"duration", seconds}``."""

    type: str
    input_tokens: int | UnsetType = UNSET
    output_tokens: int | UnsetType = UNSET
    total_tokens: int | UnsetType = UNSET
    input_token_details: TranscriptionTokenDetails | UnsetType | None = UNSET
    seconds: float | UnsetType = UNSET

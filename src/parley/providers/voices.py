"""The names of hosted voices, importable without their SDKs."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["OPENAI_VOICES", "OpenAIVoice"]

#: OpenAI's speech voices (``tts openai:MODEL``); the seed documents ask for them by name.
OpenAIVoice = Literal[
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"
]
OPENAI_VOICES: frozenset[str] = frozenset(get_args(OpenAIVoice))

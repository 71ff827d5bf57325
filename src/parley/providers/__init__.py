"""Model adapters behind small Protocols: VAD, STT, LLM, TTS."""

from __future__ import annotations

from parley.providers.seams import (
    LLM,
    STT,
    TTS,
    VAD,
    LLMChunk,
    Message,
    ToolSpec,
    Transcript,
    VADStream,
)

__all__ = [
    "LLM",
    "STT",
    "TTS",
    "VAD",
    "LLMChunk",
    "Message",
    "ToolSpec",
    "Transcript",
    "VADStream",
]

"""Parley's public test kit: loopback servers that speak real wire formats, fakes, and
a simulated caller. Like ``trio.testing``, these are supported API for users' own tests."""

from __future__ import annotations

from parley.testing.wire_servers import (
    AnthropicWireServer,
    OpenAIWireServer,
    RecordedRequest,
    ScriptedError,
    ScriptedReply,
    ScriptedToolCall,
    UploadedFile,
    split_words,
    tone_pcm16,
)

__all__ = [
    "AnthropicWireServer",
    "OpenAIWireServer",
    "RecordedRequest",
    "ScriptedError",
    "ScriptedReply",
    "ScriptedToolCall",
    "UploadedFile",
    "split_words",
    "tone_pcm16",
]

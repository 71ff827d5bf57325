"""Parley's public test kit: fakes, an in-memory transport pair, a simulated caller,
and loopback servers that speak real wire formats. Like ``trio.testing``, these are
supported API for users' own tests."""

from __future__ import annotations

from parley.testing.caller import Reply, SimulatedCaller, Utterance
from parley.testing.events import EventLog
from parley.testing.fakes import (
    FakeLLM,
    FakeSTT,
    FakeTTS,
    FakeVAD,
    FakeVADStream,
    silence,
    tone,
    tool_call,
)
from parley.testing.realtime_upstream import (
    RealtimeUpstream,
    ScriptedFunctionCall,
    ScriptedResponse,
    UpstreamConnection,
)
from parley.testing.transport import (
    ClearAudio,
    MemoryCallStream,
    MemoryPeer,
    Outbound,
    ReplyAudio,
    memory_transport_pair,
)
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
    "ClearAudio",
    "EventLog",
    "FakeLLM",
    "FakeSTT",
    "FakeTTS",
    "FakeVAD",
    "FakeVADStream",
    "MemoryCallStream",
    "MemoryPeer",
    "OpenAIWireServer",
    "Outbound",
    "RealtimeUpstream",
    "RecordedRequest",
    "Reply",
    "ReplyAudio",
    "ScriptedError",
    "ScriptedFunctionCall",
    "ScriptedReply",
    "ScriptedResponse",
    "ScriptedToolCall",
    "SimulatedCaller",
    "UploadedFile",
    "UpstreamConnection",
    "Utterance",
    "memory_transport_pair",
    "silence",
    "split_words",
    "tone",
    "tone_pcm16",
    "tool_call",
]

"""Parley's public test kit: fakes, an in-memory transport pair, a simulated caller,
and loopback servers that speak real wire formats. Like ``trio.testing``, these are
supported API for users' own tests."""

from __future__ import annotations

from parley.testing.caller import Reply, SimulatedCaller, Utterance
from parley.testing.conformance import (
    ConformanceFailure,
    ConformanceReport,
    conformance_app,
    conformance_engine,
    run_conformance,
)
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
from parley.testing.phones import (
    BrowserTestPhone,
    ConformancePhone,
    PlivoTestPhone,
    TelnyxTestPhone,
    TwilioTestPhone,
    VonageTestPhone,
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
    "BrowserTestPhone",
    "ClearAudio",
    "ConformanceFailure",
    "ConformancePhone",
    "ConformanceReport",
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
    "PlivoTestPhone",
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
    "TelnyxTestPhone",
    "TwilioTestPhone",
    "UploadedFile",
    "UpstreamConnection",
    "Utterance",
    "VonageTestPhone",
    "conformance_app",
    "conformance_engine",
    "memory_transport_pair",
    "run_conformance",
    "silence",
    "split_words",
    "tone",
    "tone_pcm16",
    "tool_call",
]

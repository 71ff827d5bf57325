"""Hosted providers (OpenAI-compatible, Anthropic, OpenAI audio) through their official
SDKs against loopback servers that speak the real wire formats (parley.testing.wire_servers).
"""

from __future__ import annotations

import asyncio
import io
import json
import wave
from collections.abc import AsyncIterator
from contextlib import aclosing

import openai
import pytest

from parley.errors import LocalProtocolError, ProviderError
from parley.events import Role, ToolCall
from parley.providers import LLM, STT, TTS, LLMChunk, Message, ToolSpec
from parley.providers.anthropic_llm import AnthropicLLM, anthropic_messages
from parley.providers.openai_audio import OpenAISTT, OpenAITTS
from parley.providers.openai_llm import OpenAILLM, _CallAssembler
from parley.testing.wire_servers import (
    AnthropicWireServer,
    OpenAIWireServer,
    ScriptedError,
    ScriptedReply,
    ScriptedToolCall,
    split_words,
    tone_pcm16,
)

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather in a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)
# The JSON arguments split mid-key and mid-value, as models stream them.
FRAGMENTS = ('{"ci', 'ty": "Pa', "ris", '"}')


@pytest.fixture
async def oai() -> AsyncIterator[OpenAIWireServer]:
    async with OpenAIWireServer() as server:
        yield server


@pytest.fixture
async def ant() -> AsyncIterator[AnthropicWireServer]:
    async with AnthropicWireServer() as server:
        yield server


@pytest.fixture
async def openai_llm(oai: OpenAIWireServer) -> AsyncIterator[OpenAILLM]:
    async with OpenAILLM("gpt-4o-mini", base_url=oai.openai_base_url, max_retries=0) as llm:
        yield llm


@pytest.fixture
async def anthropic_llm(ant: AnthropicWireServer) -> AsyncIterator[AnthropicLLM]:
    llm = AnthropicLLM("claude-haiku-4-5", api_key="k", base_url=ant.url, max_retries=0)
    async with llm:
        yield llm


async def collect(
    llm: LLM, messages: list[Message], tools: tuple[ToolSpec, ...] = ()
) -> list[LLMChunk]:
    return [chunk async for chunk in llm.stream(messages, tools)]


HELLO = [Message(Role.SYSTEM, "Be brief."), Message(Role.USER, "Hi")]


def test_implementations_satisfy_the_seams() -> None:
    llm = OpenAILLM("m", base_url="http://127.0.0.1:9/v1")
    assert isinstance(llm, LLM)
    assert isinstance(AnthropicLLM("m", api_key="k"), LLM)
    stt = OpenAISTT(base_url="http://127.0.0.1:9/v1")
    tts = OpenAITTS(base_url="http://127.0.0.1:9/v1")
    assert isinstance(stt, STT) and isinstance(tts, TTS)
    assert tts.sample_rate == 24_000


# --------------------------------------------------------------------------- OpenAI LLM


async def test_openai_streams_text_deltas(oai: OpenAIWireServer, openai_llm: OpenAILLM) -> None:
    oai.script(ScriptedReply(text=split_words("Hello there, how can I help?")))
    chunks = await collect(openai_llm, HELLO)
    assert chunks == ["Hello", " there,", " how", " can", " I", " help?"]
    (body,) = oai.chat_requests
    assert body["model"] == "gpt-4o-mini" and body["stream"] is True
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert "tools" not in body


async def test_openai_assembles_fragmented_tool_calls(
    oai: OpenAIWireServer, openai_llm: OpenAILLM
) -> None:
    oai.script(
        ScriptedReply(
            text=("Let me check.",),
            tool_calls=(
                ScriptedToolCall("get_weather", FRAGMENTS, call_id="call_1"),
                ScriptedToolCall("get_weather", ('{"city":', ' "Oslo"}'), call_id="call_2"),
            ),
        )
    )
    chunks = await collect(openai_llm, HELLO, (WEATHER,))
    assert chunks == [
        "Let me check.",
        ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_2", "get_weather", '{"city": "Oslo"}'),
    ]
    (body,) = oai.chat_requests
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather in a city",
                "parameters": WEATHER.parameters,
            },
        }
    ]


async def test_openai_tool_round_trip(oai: OpenAIWireServer, openai_llm: OpenAILLM) -> None:
    oai.script(
        ScriptedReply(tool_calls=(ScriptedToolCall("get_weather", FRAGMENTS, "call_9"),)),
        ScriptedReply(text=split_words("It is sunny in Paris.")),
    )
    history = [*HELLO]
    first = await collect(openai_llm, history, (WEATHER,))
    assert first == [ToolCall("call_9", "get_weather", '{"city": "Paris"}')]
    call = first[0]
    assert isinstance(call, ToolCall)
    history += [
        Message(Role.ASSISTANT, tool_calls=(call,)),
        Message(Role.TOOL, '{"sky": "sunny"}', tool_call_id=call.call_id, name=call.name),
    ]
    answer = await collect(openai_llm, history, (WEATHER,))
    assert "".join(str(c) for c in answer) == "It is sunny in Paris."
    sent = oai.chat_requests[1]["messages"]
    assert sent[2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": '{"sky": "sunny"}'},
    ]


@pytest.mark.parametrize(
    ("status", "retryable"), [(429, True), (500, True), (503, True), (400, False), (401, False)]
)
async def test_openai_http_errors_map_to_provider_error(
    oai: OpenAIWireServer, openai_llm: OpenAILLM, status: int, retryable: bool
) -> None:
    oai.script(ScriptedError(status, "nope"))
    with pytest.raises(ProviderError) as info:
        await collect(openai_llm, HELLO)
    assert info.value.retryable is retryable
    assert info.value.provider == "openai"
    assert str(status) in str(info.value) and "nope" in str(info.value)


async def test_openai_error_inside_stream(oai: OpenAIWireServer, openai_llm: OpenAILLM) -> None:
    oai.script(ScriptedReply(text=("Hel",), error_after=ScriptedError(500, "boom")))
    got: list[LLMChunk] = []
    with pytest.raises(ProviderError) as info:
        async for chunk in openai_llm.stream(HELLO):
            got.append(chunk)  # noqa: PERF401 - keep what came before the error
    assert got == ["Hel"]
    assert info.value.retryable and "boom" in str(info.value)


async def test_openai_sdk_retry_then_success(oai: OpenAIWireServer) -> None:
    oai.script(ScriptedError(503), ScriptedReply(text=("ok",)))
    async with OpenAILLM("m", base_url=oai.openai_base_url, max_retries=1) as llm:
        assert await collect(llm, HELLO) == ["ok"]
    assert len(oai.chat_requests) == 2


async def test_openai_unreachable_is_retryable() -> None:
    async with OpenAIWireServer() as server:
        url = server.openai_base_url
    async with OpenAILLM("m", base_url=url, max_retries=0) as llm:
        with pytest.raises(ProviderError) as info:
            await collect(llm, HELLO)
    assert info.value.retryable


async def test_openai_cancellation_closes_the_stream(
    oai: OpenAIWireServer, openai_llm: OpenAILLM
) -> None:
    oai.script(ScriptedReply(text=("tick ",) * 200, chunk_delay_s=0.01))
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in openai_llm.stream(HELLO):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (rec,) = oai.requests
    assert await rec.wait_finished() == "disconnected"
    assert rec.chunks_sent < 100


async def test_openai_closing_the_iterator_closes_the_stream(
    oai: OpenAIWireServer, openai_llm: OpenAILLM
) -> None:
    oai.script(ScriptedReply(text=("tick ",) * 200, chunk_delay_s=0.01))
    async with aclosing(openai_llm.stream(HELLO)) as it:
        assert await anext(it) == "tick "
    (rec,) = oai.requests
    assert await rec.wait_finished() == "disconnected"
    assert rec.chunks_sent < 100


async def test_openai_garbage_chunk_is_a_provider_error(
    oai: OpenAIWireServer, openai_llm: OpenAILLM
) -> None:
    oai.script(ScriptedReply(text=("Hel",), raw_after=b"data: {not json\n\n"))
    with pytest.raises(ProviderError, match="malformed") as info:
        await collect(openai_llm, HELLO)
    assert not info.value.retryable


def test_openai_assembler_splits_calls_that_reuse_an_index() -> None:
    # Ollama streams a parallel batch all at index 0, told apart only by id.
    asm = _CallAssembler()
    assert asm.feed(0, "a", "f", '{"x": 1}') == []
    assert asm.feed(0, "b", "g", "{") == [ToolCall("a", "f", '{"x": 1}')]
    assert asm.feed(0, None, None, "}") == []
    assert asm.flush() == [ToolCall("b", "g", "{}")]


# --------------------------------------------------------------------------- wire server itself


async def test_wire_server_usage_chunk_and_plain_json(oai: OpenAIWireServer) -> None:
    oai.script(ScriptedReply(text=("a", "b")), ScriptedReply(text=("whole",)))
    async with openai.AsyncOpenAI(base_url=oai.openai_base_url, api_key="k") as client:
        stream = await client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
        plain = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
    assert [c.object for c in chunks] == ["chat.completion.chunk"] * len(chunks)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 2
    assert plain.choices[0].message.content == "whole"


async def test_wire_server_reports_unscripted_requests(
    oai: OpenAIWireServer, openai_llm: OpenAILLM
) -> None:
    with pytest.raises(ProviderError, match="no scripted chat reply"):
        await collect(openai_llm, HELLO)


# --------------------------------------------------------------------------- Anthropic LLM


async def test_anthropic_streams_text_with_system_apart(
    ant: AnthropicWireServer, anthropic_llm: AnthropicLLM
) -> None:
    ant.script(ScriptedReply(text=split_words("Hello from Claude.")))
    assert await collect(anthropic_llm, HELLO) == ["Hello", " from", " Claude."]
    (body,) = ant.message_requests
    assert body["system"] == "Be brief."
    assert body["max_tokens"] == 1024 and body["stream"] is True
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    headers = ant.requests[0].headers
    assert "k" in (
        headers.get("x-api-key"),
        headers.get("authorization", "").removeprefix("Bearer "),
    )


async def test_anthropic_tool_round_trip(
    ant: AnthropicWireServer, anthropic_llm: AnthropicLLM
) -> None:
    ant.script(
        ScriptedReply(
            text=("Checking.",),
            tool_calls=(
                ScriptedToolCall("get_weather", FRAGMENTS, call_id="toolu_1"),
                ScriptedToolCall("get_weather", ('{"city": "Oslo"}',), call_id="toolu_2"),
            ),
        ),
        ScriptedReply(text=("Sunny in Paris, rain in Oslo.",)),
    )
    history = [*HELLO]
    first = await collect(anthropic_llm, history, (WEATHER,))
    calls = [c for c in first if isinstance(c, ToolCall)]
    assert first[0] == "Checking."
    assert calls == [
        ToolCall("toolu_1", "get_weather", '{"city": "Paris"}'),
        ToolCall("toolu_2", "get_weather", '{"city": "Oslo"}'),
    ]
    history += [
        Message(Role.ASSISTANT, "Checking.", tool_calls=tuple(calls)),
        Message(Role.TOOL, "sunny", tool_call_id="toolu_1"),
        Message(Role.TOOL, "rain", tool_call_id="toolu_2"),
    ]
    assert await collect(anthropic_llm, history, (WEATHER,)) == ["Sunny in Paris, rain in Oslo."]
    first_body, second_body = ant.message_requests
    assert first_body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather in a city",
            "input_schema": WEATHER.parameters,
        }
    ]
    assert second_body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "rain"},
            ],
        },
    ]


@pytest.mark.parametrize(
    ("status", "retryable"), [(429, True), (500, True), (529, True), (400, False), (401, False)]
)
async def test_anthropic_http_errors_map_to_provider_error(
    ant: AnthropicWireServer, anthropic_llm: AnthropicLLM, status: int, retryable: bool
) -> None:
    ant.script(ScriptedError(status, "nope"))
    with pytest.raises(ProviderError) as info:
        await collect(anthropic_llm, HELLO)
    assert info.value.retryable is retryable
    assert info.value.provider == "anthropic"
    assert str(status) in str(info.value) and "nope" in str(info.value)


async def test_anthropic_overloaded_inside_stream_is_retryable(
    ant: AnthropicWireServer, anthropic_llm: AnthropicLLM
) -> None:
    ant.script(ScriptedReply(text=("Hel",), error_after=ScriptedError(529, "Overloaded")))
    got: list[LLMChunk] = []
    with pytest.raises(ProviderError) as info:
        async for chunk in anthropic_llm.stream(HELLO):
            got.append(chunk)  # noqa: PERF401 - keep what came before the error
    assert got == ["Hel"]
    assert info.value.retryable
    assert "overloaded_error" in str(info.value)


async def test_anthropic_cancellation_closes_the_stream(
    ant: AnthropicWireServer, anthropic_llm: AnthropicLLM
) -> None:
    ant.script(ScriptedReply(text=("tick ",) * 200, chunk_delay_s=0.01))
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in anthropic_llm.stream(HELLO):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (rec,) = ant.requests
    assert await rec.wait_finished() == "disconnected"
    assert rec.chunks_sent < 100


async def test_anthropic_garbage_event_is_a_provider_error(
    ant: AnthropicWireServer, anthropic_llm: AnthropicLLM
) -> None:
    ant.script(
        ScriptedReply(text=("Hel",), raw_after=b"event: content_block_delta\ndata: {oops\n\n")
    )
    with pytest.raises(ProviderError, match="malformed"):
        await collect(anthropic_llm, HELLO)


def test_anthropic_message_shapes() -> None:
    call = ToolCall("t1", "f", '{"a": 1}')
    system, msgs = anthropic_messages(
        [
            Message(Role.SYSTEM, "One."),
            Message(Role.SYSTEM, "Two."),
            Message(Role.USER, "q"),
            Message(Role.ASSISTANT, tool_calls=(call,)),
            Message(Role.TOOL, "r", tool_call_id="t1"),
            Message(Role.USER, "and?"),
        ]
    )
    assert system == "One.\n\nTwo."
    assert msgs[1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}],
    }
    # Tool results lead the next user turn; the user's words follow in the same turn.
    assert msgs[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "r"},
            {"type": "text", "text": "and?"},
        ],
    }
    with pytest.raises(LocalProtocolError) as info:
        anthropic_messages([Message(Role.ASSISTANT, tool_calls=(ToolCall("t", "f", "{"),))])
    assert info.value.code == "bad_tool_arguments"


# --------------------------------------------------------------------------- OpenAI audio


async def test_openai_stt_uploads_wav_and_returns_text(oai: OpenAIWireServer) -> None:
    oai.script_transcripts(" Call me at five five five. ")
    pcm = tone_pcm16(1.5, sample_rate=16_000)
    async with OpenAISTT(base_url=oai.openai_base_url, max_retries=0) as stt:
        transcript = await stt.transcribe(pcm)
    assert transcript.text == "Call me at five five five."
    assert transcript.duration_s == pytest.approx(1.5)
    (rec,) = oai.requests
    assert rec.path == "/v1/audio/transcriptions"
    assert rec.headers["content-type"].startswith("multipart/form-data")
    assert rec.form["model"] == "gpt-4o-mini-transcribe" and rec.form["language"] == "en"
    upload = rec.files["file"]
    assert upload.filename.endswith(".wav")
    with wave.open(io.BytesIO(upload.data), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16_000, 1, 2)
        assert wav.readframes(wav.getnframes()) == pcm


async def test_openai_stt_error(oai: OpenAIWireServer) -> None:
    oai.script_transcripts(ScriptedError(429, "slow down"))
    async with OpenAISTT(base_url=oai.openai_base_url, max_retries=0) as stt:
        with pytest.raises(ProviderError) as info:
            await stt.transcribe(tone_pcm16(0.2, 16_000))
    assert info.value.retryable


async def test_openai_tts_streams_whole_pcm_samples() -> None:
    pcm = tone_pcm16(0.5)  # 24 kHz
    # An odd chunk size: every HTTP chunk but the last splits a sample in two.
    async with OpenAIWireServer(speech_chunk_bytes=1001) as server:
        server.script_speech(pcm)
        async with OpenAITTS(
            base_url=server.openai_base_url, voice="coral", chunk_bytes=1001
        ) as tts:
            chunks = [c async for c in tts.synthesize("Hello there.")]
        (rec,) = server.requests
    assert tts.sample_rate == 24_000
    assert len(chunks) > 5
    assert all(len(c) % 2 == 0 for c in chunks)
    assert b"".join(chunks) == pcm
    assert rec.path == "/v1/audio/speech"
    assert rec.json_body == {
        "model": "gpt-4o-mini-tts",
        "voice": "coral",
        "input": "Hello there.",
        "response_format": "pcm",
    }


async def test_openai_tts_first_chunk_arrives_before_synthesis_ends() -> None:
    async with OpenAIWireServer(speech_chunk_delay_s=0.05) as server:
        server.script_speech(tone_pcm16(0.4))  # 4 chunks of 100 ms, 50 ms apart
        async with OpenAITTS(base_url=server.openai_base_url) as tts:
            async with aclosing(tts.synthesize("Hi.")) as it:
                first = await anext(it)
            (rec,) = server.requests
            assert len(first) == 4800
            assert await rec.wait_finished() == "disconnected"


async def test_openai_tts_error(oai: OpenAIWireServer) -> None:
    oai.script_speech(ScriptedError(500, "tts down"))
    async with OpenAITTS(base_url=oai.openai_base_url, max_retries=0) as tts:
        with pytest.raises(ProviderError, match="tts down") as info:
            _ = [c async for c in tts.synthesize("Hello")]
    assert info.value.retryable
    assert json.loads(oai.requests[0].body)["input"] == "Hello"

"""Client-executed function calling through the local Realtime server (GA protocol,
protocols.md §1.6.3): the backing cascade's LLM is a scripted OpenAI chat model
over the real wire format (``OpenAIWireServer``), so the model really calls the
client's tool and really receives the client's output as a tool message."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from openai import AsyncOpenAI
from websockets.asyncio.client import ClientConnection, connect

from parley.providers.openai_llm import OpenAILLM
from parley.realtime_server import RealtimeBackend, cascade_maker
from parley.testing import (
    FakeSTT,
    FakeTTS,
    FakeVAD,
    OpenAIWireServer,
    ScriptedReply,
    ScriptedToolCall,
    split_words,
)
from test_realtime_server import Stack, fake_backend, recv, send, serve, until

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
ARGS = ('{"city": ', '"Paris"}')
CALL = ScriptedToolCall("get_weather", ARGS, call_id="call_weather_1")
REPLY = "It is sunny and 21 degrees in Paris."
OUTPUT = json.dumps({"sky": "sunny", "temp_c": 21})


@asynccontextmanager
async def tool_stack(
    *replies: ScriptedReply, tool_output_timeout_s: float = 120.0
) -> AsyncIterator[tuple[str, OpenAIWireServer]]:
    """The Realtime server on a cascade whose LLM is the scripted wire server."""
    async with OpenAIWireServer() as wire:
        wire.script(*replies)
        llm = OpenAILLM("gpt-test", base_url=wire.openai_base_url, api_key="sk-test")
        vad, tts = FakeVAD(16000), FakeTTS(16000, ms_per_char=5.0, chunk_ms=100.0)
        backend = RealtimeBackend(
            vad=vad,
            stt=FakeSTT(),
            voices=("tone",),
            tool_output_timeout_s=tool_output_timeout_s,
        )
        try:
            async with serve(Stack(backend, cascade_maker(vad, FakeSTT(), llm, tts))) as url:
                yield url, wire
        finally:
            await llm.aclose()


async def setup(ws: ClientConnection, *, modalities: list[str]) -> None:
    assert (await recv(ws))["type"] == "session.created"
    await send(
        ws,
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "output_modalities": modalities,
                "tools": [WEATHER_TOOL],
                "tool_choice": "auto",
                "audio": {"input": {"turn_detection": None}},
            },
        },
    )
    updated = await recv(ws)
    assert updated["type"] == "session.updated"
    assert updated["session"]["tools"][0]["name"] == "get_weather"


async def ask(ws: ClientConnection, text: str) -> None:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    await send(ws, {"type": "conversation.item.create", "item": item})
    assert [(await recv(ws))["type"] for _ in range(2)] == [
        "conversation.item.added",
        "conversation.item.done",
    ]
    await send(ws, {"type": "response.create"})


def answer(call_id: str, output: str = OUTPUT) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": call_id, "output": output},
    }


def tool_messages(wire: OpenAIWireServer, request: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = wire.chat_requests[request]["messages"]
    return [m for m in messages if m["role"] == "tool" or m.get("tool_calls")]


async def test_function_call_round_trip_raw_websocket() -> None:
    replies = (ScriptedReply(tool_calls=(CALL,)), ScriptedReply(text=split_words(REPLY)))
    async with tool_stack(*replies) as (url, wire), connect(url) as ws:
        await setup(ws, modalities=["text"])
        await ask(ws, "What is the weather in Paris?")
        events = await until(ws, "response.done")
        assert [e["type"] for e in events] == [
            "response.created",
            "response.output_item.added",
            "conversation.item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
        added, args_done, item_done, done = events[1], events[4], events[5], events[-1]
        assert added["item"]["type"] == "function_call"
        assert added["item"]["status"] == "in_progress"
        assert added["item"]["call_id"] == "call_weather_1"
        assert added["item"]["name"] == "get_weather"
        assert added["output_index"] == 0
        assert events[3]["delta"] == '{"city": "Paris"}'
        assert args_done["call_id"] == "call_weather_1"
        assert args_done["name"] == "get_weather"
        assert json.loads(args_done["arguments"]) == {"city": "Paris"}
        assert item_done["item"]["status"] == "completed"
        assert item_done["item"]["arguments"] == '{"city": "Paris"}'
        response = done["response"]
        assert response["status"] == "completed"
        assert [o["type"] for o in response["output"]] == ["function_call"]
        assert response["output"][0]["call_id"] == "call_weather_1"
        assert response["usage"]["output_tokens"] > 0
        # The model was offered the client's tool in the OpenAI wire shape.
        first = wire.chat_requests[0]
        assert first["tools"][0]["function"]["name"] == "get_weather"
        assert first["tools"][0]["function"]["parameters"] == WEATHER_TOOL["parameters"]

        # The output alone makes no response (§1.6.3) ...
        await send(ws, answer("call_weather_1"))
        added_out, done_out = await recv(ws), await recv(ws)
        assert added_out["type"] == "conversation.item.added"
        assert added_out["item"]["type"] == "function_call_output"
        assert added_out["previous_item_id"] == added["item"]["id"]
        assert done_out["type"] == "conversation.item.done"
        assert len(wire.chat_requests) == 1
        # ... response.create asks for the continuation.
        await send(ws, {"type": "response.create"})
        events = await until(ws, "response.done")
        kinds = [e["type"] for e in events]
        assert kinds[:4] == [
            "response.created",
            "response.output_item.added",
            "conversation.item.added",
            "response.content_part.added",
        ]
        assert kinds[-5:] == [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
        text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
        assert text == REPLY
        second = events[-1]["response"]
        assert second["id"] != response["id"]
        assert second["status"] == "completed"
        assert [o["type"] for o in second["output"]] == ["message"]
        assert second["output"][0]["content"][0]["text"] == REPLY
    # The model's second request carried the call and the client's output.
    assert tool_messages(wire, 1) == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_weather_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_weather_1", "content": OUTPUT},
    ]


async def test_function_call_round_trip_official_sdk() -> None:
    replies = (ScriptedReply(tool_calls=(CALL,)), ScriptedReply(text=split_words(REPLY)))
    async with tool_stack(*replies) as (url, wire):
        client = AsyncOpenAI(api_key="sk-local", websocket_base_url=url.removesuffix("/realtime"))
        async with client.realtime.connect(model="gpt-realtime") as conn:
            assert (await conn.recv()).type == "session.created"
            await conn.session.update(
                session={
                    "type": "realtime",
                    "output_modalities": ["audio"],
                    "tools": [WEATHER_TOOL],  # type: ignore[list-item]
                    "audio": {"input": {"turn_detection": None}},
                }
            )
            assert (await conn.recv()).type == "session.updated"
            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Weather in Paris?"}],
                }
            )
            await conn.response.create()
            call = None
            async for event in conn:
                assert event.type != "error", event
                if event.type == "response.function_call_arguments.done":
                    call = event
                if event.type == "response.done":
                    first = event.response
                    break
            assert call is not None and call.name == "get_weather"
            assert json.loads(call.arguments) == {"city": "Paris"}
            assert first.status == "completed" and first.output is not None
            assert [o.type for o in first.output] == ["function_call"]

            await conn.conversation.item.create(
                item={"type": "function_call_output", "call_id": call.call_id, "output": OUTPUT}
            )
            await conn.response.create()
            transcript, audio_deltas = "", 0
            async for event in conn:
                assert event.type != "error", event
                if event.type == "response.output_audio.delta":
                    audio_deltas += 1
                elif event.type == "response.output_audio_transcript.done":
                    transcript = event.transcript
                elif event.type == "response.done":
                    second = event.response
                    break
    assert transcript == REPLY
    assert audio_deltas > 0
    assert second.status == "completed" and second.output is not None
    assert second.output[0].type == "message"
    assert tool_messages(wire, 1)[-1] == {
        "role": "tool",
        "tool_call_id": "call_weather_1",
        "content": OUTPUT,
    }


async def test_output_for_an_unknown_call_is_an_error_and_the_session_goes_on() -> None:
    stack, _ = fake_backend()
    async with serve(stack) as url, connect(url) as ws:
        await recv(ws)
        await send(ws, {**answer("call_nobody_made"), "event_id": "evt_out"})
        error = await recv(ws)
        assert error["type"] == "error"
        assert error["error"]["code"] == "invalid_tool_call_id"
        assert "call_nobody_made" in error["error"]["message"]
        assert error["error"]["event_id"] == "evt_out"
        missing = {"type": "conversation.item.create", "item": {"type": "function_call_output"}}
        await send(ws, missing)
        assert (await recv(ws))["error"]["code"] == "missing_required_parameter"
        # Nothing was added, and the session still answers.
        await send(
            ws,
            {
                "type": "session.update",
                "session": {"type": "realtime", "output_modalities": ["text"]},
            },
        )
        await recv(ws)
        await ask(ws, "still there")
        events = await until(ws, "response.done")
        assert events[-1]["response"]["status"] == "completed"
        text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
        assert text == "You said: still there"


async def test_unanswered_call_times_out_with_an_error_to_the_model() -> None:
    sorry = "Sorry, the weather service is not answering."
    replies = (ScriptedReply(tool_calls=(CALL,)), ScriptedReply(text=split_words(sorry)))
    async with tool_stack(*replies, tool_output_timeout_s=0.3) as (url, wire), connect(url) as ws:
        await setup(ws, modalities=["text"])
        await ask(ws, "What is the weather in Paris?")
        first = await until(ws, "response.done")
        assert first[-1]["response"]["output"][0]["type"] == "function_call"
        # The client never answers: after the timeout the client hears why, and the
        # model's continuation comes as a response the server starts itself.
        events = await until(ws, "response.done")
        assert events[0]["type"] == "error"
        assert events[0]["error"]["code"] == "function_call_output_timeout"
        assert "call_weather_1" in events[0]["error"]["message"]
        assert events[1]["type"] == "response.created"
        text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
        assert text == sorry
        assert events[-1]["response"]["status"] == "completed"
        # The model was told the call failed, as a tool message.
        tool = tool_messages(wire, 1)[-1]
        assert tool["role"] == "tool" and tool["tool_call_id"] == "call_weather_1"
        assert "error" in json.loads(tool["content"])
        # A late answer is for a call that no longer waits; the session goes on.
        await send(ws, answer("call_weather_1"))
        error = await recv(ws)
        assert error["type"] == "error" and error["error"]["code"] == "invalid_tool_call_id"

"""Loopback HTTP servers that speak the real wire formats of hosted model APIs.

A test points the official SDK (``openai``, ``anthropic``) at one of these instead
of the internet: real HTTP on 127.0.0.1, real streaming SSE with the chunk shapes
the services send, real multipart uploads. Each server plays a *script* of replies
in order and *records* every request it received, so a test can assert what the
model was sent (messages, tools, tool results, audio) as well as what came back.

    async with OpenAIWireServer() as server:
        server.script(ScriptedReply(text=split_words("Hello there.")))
        llm = OpenAILLM("gpt-4o-mini", base_url=server.openai_base_url, api_key="test")
        ...
        assert server.requests[0].json_body["messages"][-1]["content"] == "Hi"

The servers run on the caller's event loop (uvicorn with our own socket, no signal
handlers), start in a few milliseconds and stop in about 0.2 s.
"""

from __future__ import annotations

import io
import json
import math
import time
import uuid
import wave
from collections import deque
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .anthropic_wire import AnthropicWireServer
from .wire_base import (
    ChatScriptItem,
    RecordedRequest,
    ScriptedError,
    ScriptedReply,
    ScriptedToolCall,
    UploadedFile,
    WireServer,
    estimate_tokens,
    json_error,
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


# --------------------------------------------------------------------------- OpenAI

# (type, code) of OpenAI's error bodies per status.
_OPENAI_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


def _openai_error_body(err: ScriptedError) -> dict[str, Any]:
    kind, code = _OPENAI_ERROR_KINDS.get(
        err.status, ("server_error" if err.status >= 500 else "invalid_request_error", None)
    )
    return {"error": {"message": err.message, "type": kind, "param": None, "code": code}}


def _sse_data(payload: dict[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


class OpenAIWireServer(WireServer):
    """Chat Completions (streaming SSE and plain JSON), audio transcriptions and
    audio speech, as ``api.openai.com`` speaks them.

    Point ``AsyncOpenAI(base_url=server.openai_base_url)`` at it.
    """

    def __init__(self, *, speech_chunk_bytes: int = 4800, speech_chunk_delay_s: float = 0.0):
        super().__init__()
        self.speech_chunk_bytes = speech_chunk_bytes
        self.speech_chunk_delay_s = speech_chunk_delay_s
        self._chat: deque[ChatScriptItem] = deque()
        self._transcripts: deque[str | ScriptedError] = deque()
        self._speech: deque[bytes | ScriptedError] = deque()

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    def script(self, *items: ChatScriptItem) -> None:
        """Queue chat completion answers, one per request, in order."""
        self._chat.extend(items)

    def script_transcripts(self, *items: str | ScriptedError) -> None:
        self._transcripts.extend(items)

    def script_speech(self, *items: bytes | ScriptedError) -> None:
        """Queue PCM16 24 kHz answers; unscripted speech is a tone 60 ms per character."""
        self._speech.extend(items)

    @property
    def chat_requests(self) -> list[Any]:
        """The JSON bodies of the chat completion requests received."""
        return [r.json_body for r in self.requests_to("/v1/chat/completions")]

    def _routes(self) -> list[Route]:
        return [
            Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
            Route("/v1/audio/transcriptions", self._transcriptions, methods=["POST"]),
            Route("/v1/audio/speech", self._audio_speech, methods=["POST"]),
        ]

    async def _chat_completions(self, request: Request) -> Response:
        rec = await self._record(request)
        body = rec.json_body
        if not isinstance(body, dict) or "messages" not in body or "model" not in body:
            msg = "We could not parse the JSON body of your request."
            return json_error(400, _openai_error_body(ScriptedError(400, msg)), rec)
        if not self._chat:
            err = ScriptedError(400, "wire server: no scripted chat reply left")
            return json_error(400, _openai_error_body(err), rec)
        item = self._chat.popleft()
        if isinstance(item, ScriptedError):
            return json_error(item.status, _openai_error_body(item), rec)
        headers = {"x-request-id": f"req_{uuid.uuid4().hex[:24]}"}
        if not body.get("stream"):
            rec._finish("completed")
            return JSONResponse(self._completion(body, item), headers=headers)
        events = self._chunks(body, item)
        return self._stream(rec, events, "text/event-stream; charset=utf-8", headers)

    def _completion(self, body: dict[str, Any], reply: ScriptedReply) -> dict[str, Any]:
        calls = [
            {
                "id": tc.call_id or f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": tc.name, "arguments": tc.arguments_json},
            }
            for tc in reply.tool_calls
        ]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(reply.text) or None,
            "refusal": None,
            "annotations": [],
        }
        if calls:
            message["tool_calls"] = calls
        prompt = estimate_tokens(body)
        completion = len(reply.text) + sum(len(tc.arguments) for tc in reply.tool_calls)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:29]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if calls else "stop",
                }
            ],
            "usage": self._usage(prompt, completion),
            "service_tier": "default",
            "system_fingerprint": "fp_parley",
        }

    @staticmethod
    def _usage(prompt: int, completion: int) -> dict[str, Any]:
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _chunks(self, body: dict[str, Any], reply: ScriptedReply) -> list[tuple[float, bytes]]:
        """The ``chat.completion.chunk`` sequence the real API streams for ``reply``."""
        options = body.get("stream_options") or {}
        include_usage = bool(options.get("include_usage"))
        base: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:29]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
            "service_tier": "default",
            "system_fingerprint": "fp_parley",
        }
        delay = reply.chunk_delay_s

        def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[float, bytes]:
            payload = dict(base)
            payload["choices"] = [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            ]
            if include_usage:
                payload["usage"] = None
            # The real service pads chunks with a random "obfuscation" field; clients
            # must ignore fields they do not know.
            payload["obfuscation"] = uuid.uuid4().hex[: 1 + len(json.dumps(delta)) % 9]
            return delay, _sse_data(payload)

        out: list[tuple[float, bytes]] = []
        if reply.text or not reply.tool_calls:
            out.append(chunk({"role": "assistant", "content": "", "refusal": None}))
            out.extend(chunk({"content": piece}) for piece in reply.text)
        for index, tc in enumerate(reply.tool_calls):
            first: dict[str, Any] = {
                "index": index,
                "id": tc.call_id or f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": tc.name, "arguments": ""},
            }
            if index == 0 and not reply.text:
                out.append(chunk({"role": "assistant", "content": None, "tool_calls": [first]}))
            else:
                out.append(chunk({"tool_calls": [first]}))
            out.extend(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
                for fragment in tc.arguments
            )
        if reply.raw_after:
            out.append((delay, reply.raw_after))
        if reply.error_after is not None:
            # A failure inside a 200 stream: the body is an error object, not a chunk.
            out.append((delay, _sse_data(_openai_error_body(reply.error_after))))
            return out
        out.append(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
        if include_usage:
            completion = len(reply.text) + sum(len(tc.arguments) for tc in reply.tool_calls)
            final = dict(base)
            final["choices"] = []
            final["usage"] = self._usage(estimate_tokens(body), completion)
            out.append((delay, _sse_data(final)))
        out.append((delay, _sse_data("[DONE]")))
        return out

    async def _transcriptions(self, request: Request) -> Response:
        rec = await self._record(request)
        upload = rec.files.get("file")
        if upload is None or "model" not in rec.form:
            err = ScriptedError(400, "Missing required parameter: 'file' and 'model'.")
            return json_error(400, _openai_error_body(err), rec)
        try:
            with wave.open(io.BytesIO(upload.data), "rb") as wav:
                seconds = wav.getnframes() / wav.getframerate()
        except (wave.Error, EOFError):
            err = ScriptedError(400, "Invalid file format. Supported formats: [... 'wav' ...]")
            return json_error(400, _openai_error_body(err), rec)
        if not self._transcripts:
            err = ScriptedError(400, "wire server: no scripted transcript left")
            return json_error(400, _openai_error_body(err), rec)
        item = self._transcripts.popleft()
        if isinstance(item, ScriptedError):
            return json_error(item.status, _openai_error_body(item), rec)
        rec._finish("completed")
        usage = {"type": "duration", "seconds": math.ceil(seconds)}
        return JSONResponse({"text": item, "usage": usage})

    async def _audio_speech(self, request: Request) -> Response:
        rec = await self._record(request)
        body = rec.json_body
        if not isinstance(body, dict) or not body.get("input") or not body.get("voice"):
            err = ScriptedError(400, "Missing required parameter: 'input' and 'voice'.")
            return json_error(400, _openai_error_body(err), rec)
        if body.get("response_format", "mp3") != "pcm":
            err = ScriptedError(400, "wire server: only response_format 'pcm' is spoken here")
            return json_error(400, _openai_error_body(err), rec)
        item = self._speech.popleft() if self._speech else None
        if isinstance(item, ScriptedError):
            return json_error(item.status, _openai_error_body(item), rec)
        pcm = item if item is not None else tone_pcm16(0.06 * len(body["input"]))
        size = self.speech_chunk_bytes
        events = [(self.speech_chunk_delay_s, pcm[i : i + size]) for i in range(0, len(pcm), size)]
        return self._stream(rec, events, "audio/pcm")

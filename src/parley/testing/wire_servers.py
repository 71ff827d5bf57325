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

import asyncio
import contextlib
import io
import json
import math
import socket
import time
import uuid
import wave
from collections import deque
from collections.abc import AsyncIterator, Generator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self, TypeAlias

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

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


# --------------------------------------------------------------------------- script


@dataclass(frozen=True, slots=True)
class ScriptedToolCall:
    """A tool call the scripted model makes; ``arguments`` are streamed fragment by
    fragment exactly as given (their concatenation is the JSON text)."""

    name: str
    arguments: tuple[str, ...] = ("{}",)
    call_id: str = ""  # generated ("call_…" / "toolu_…") when empty

    @property
    def arguments_json(self) -> str:
        return "".join(self.arguments)


@dataclass(frozen=True, slots=True)
class ScriptedError:
    """An HTTP error answer (``status`` 400…599) in the API's own error-body shape.

    As an ``error_after`` of a reply it is sent *inside* the stream instead (the
    HTTP status is then 200, as with a real mid-stream failure).
    """

    status: int
    message: str = "scripted failure"


@dataclass(frozen=True, slots=True)
class ScriptedReply:
    """One model turn: text deltas (one chunk each), then tool calls."""

    text: tuple[str, ...] = ()
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    chunk_delay_s: float = 0.0  # pause before each chunk, to test cancellation/timing
    error_after: ScriptedError | None = None  # fail mid-stream after the chunks
    raw_after: bytes = b""  # written verbatim after the chunks: to test garbage from a peer


ChatScriptItem: TypeAlias = ScriptedReply | ScriptedError


def split_words(text: str) -> tuple[str, ...]:
    """Split text into word-sized deltas whose concatenation is ``text``."""
    pieces: list[str] = []
    for word in text.split(" "):
        pieces.append(word if not pieces else " " + word)
    return tuple(p for p in pieces if p)


def tone_pcm16(duration_s: float, sample_rate: int = 24_000, freq_hz: float = 440.0) -> bytes:
    """A sine tone as PCM16 little-endian mono: the default speech of the TTS server."""
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    return (9000 * np.sin(2 * np.pi * freq_hz * t)).astype("<i2").tobytes()


# --------------------------------------------------------------------------- record


@dataclass(frozen=True, slots=True)
class UploadedFile:
    filename: str
    content_type: str
    data: bytes


Outcome: TypeAlias = Literal["pending", "completed", "disconnected", "failed"]


@dataclass(eq=False, slots=True)
class RecordedRequest:
    """What the server received, and how answering it ended."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json_body: Any = None  # parsed JSON body, when the request was JSON
    form: dict[str, str] = field(default_factory=dict)  # multipart text fields
    files: dict[str, UploadedFile] = field(default_factory=dict)  # multipart files
    chunks_sent: int = 0  # SSE events / audio chunks written so far
    outcome: Outcome = "pending"
    _finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def _finish(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self._finished.set()

    async def wait_finished(self) -> Outcome:
        """Wait until the response is fully sent, failed, or the client went away.

        Gives up with ``TimeoutError`` after 10 s so a broken test cannot hang.
        """
        async with asyncio.timeout(10):
            await self._finished.wait()
        return self.outcome


# --------------------------------------------------------------------------- server core


class _LoopServer(uvicorn.Server):
    """uvicorn on the caller's loop: leave the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class _WireServer:
    """Lifecycle shared by the servers: uvicorn on a free 127.0.0.1 port."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._port = 0
        self._server: _LoopServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def _routes(self) -> list[Route]:
        raise NotImplementedError

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self._port}"

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    async def start(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            Starlette(routes=self._routes()),
            log_config=None,  # never reconfigure the host's logging
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="h11",
            ws="none",
            timeout_graceful_shutdown=2,
        )
        server = _LoopServer(config)
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if self._task.done():
                self._task.result()  # raises the startup failure
                raise RuntimeError("wire server exited during startup")
            await asyncio.sleep(0.002)
        return self

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._stopping.set()  # cut scripted delays short so open streams end now
        self._server.should_exit = True
        await self._task
        self._server = None
        self._task = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _record(self, request: Request) -> RecordedRequest:
        body = await request.body()
        rec = RecordedRequest(
            method=request.method,
            path=request.url.path,
            headers=dict(request.headers),
            body=body,
        )
        self.requests.append(rec)
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/json"):
            with contextlib.suppress(ValueError):
                rec.json_body = json.loads(body)
        elif ctype.startswith("multipart/form-data"):
            async with request.form() as form:
                for key, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        data = await value.read()
                        rec.files[key] = UploadedFile(
                            value.filename or "", value.content_type or "", data
                        )
                    else:
                        rec.form[key] = value
        return rec

    async def _pause(self, seconds: float) -> bool:
        """Sleep for a scripted delay; False when the server is stopping meanwhile."""
        if seconds <= 0:
            return not self._stopping.is_set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return not self._stopping.is_set()

    def _stream(
        self,
        rec: RecordedRequest,
        events: Sequence[tuple[float, bytes]],
        media_type: str,
        headers: dict[str, str] | None = None,
    ) -> StreamingResponse:
        """Send ``events`` (delay, bytes) one by one, recording how far it got."""

        async def body() -> AsyncIterator[bytes]:
            try:
                for delay, data in events:
                    if not await self._pause(delay):
                        rec._finish("failed")
                        return
                    yield data
                    rec.chunks_sent += 1
            except asyncio.CancelledError:
                # Starlette cancels the body when it sees the client disconnect.
                rec._finish("disconnected")
                raise
            rec._finish("completed")

        return StreamingResponse(body(), media_type=media_type, headers=headers)


def _json_error(status: int, payload: dict[str, Any], rec: RecordedRequest) -> Response:
    rec._finish("failed")
    return JSONResponse(payload, status_code=status)


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


def _estimate_tokens(body: Any) -> int:
    # A deterministic stand-in for a tokenizer: about four characters per token.
    return max(1, len(json.dumps(body.get("messages", []))) // 4) if isinstance(body, dict) else 1


class OpenAIWireServer(_WireServer):
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
            return _json_error(400, _openai_error_body(ScriptedError(400, msg)), rec)
        if not self._chat:
            err = ScriptedError(400, "wire server: no scripted chat reply left")
            return _json_error(400, _openai_error_body(err), rec)
        item = self._chat.popleft()
        if isinstance(item, ScriptedError):
            return _json_error(item.status, _openai_error_body(item), rec)
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
        prompt = _estimate_tokens(body)
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
            final["usage"] = self._usage(_estimate_tokens(body), completion)
            out.append((delay, _sse_data(final)))
        out.append((delay, _sse_data("[DONE]")))
        return out

    async def _transcriptions(self, request: Request) -> Response:
        rec = await self._record(request)
        upload = rec.files.get("file")
        if upload is None or "model" not in rec.form:
            err = ScriptedError(400, "Missing required parameter: 'file' and 'model'.")
            return _json_error(400, _openai_error_body(err), rec)
        try:
            with wave.open(io.BytesIO(upload.data), "rb") as wav:
                seconds = wav.getnframes() / wav.getframerate()
        except (wave.Error, EOFError):
            err = ScriptedError(400, "Invalid file format. Supported formats: [... 'wav' ...]")
            return _json_error(400, _openai_error_body(err), rec)
        if not self._transcripts:
            err = ScriptedError(400, "wire server: no scripted transcript left")
            return _json_error(400, _openai_error_body(err), rec)
        item = self._transcripts.popleft()
        if isinstance(item, ScriptedError):
            return _json_error(item.status, _openai_error_body(item), rec)
        rec._finish("completed")
        usage = {"type": "duration", "seconds": math.ceil(seconds)}
        return JSONResponse({"text": item, "usage": usage})

    async def _audio_speech(self, request: Request) -> Response:
        rec = await self._record(request)
        body = rec.json_body
        if not isinstance(body, dict) or not body.get("input") or not body.get("voice"):
            err = ScriptedError(400, "Missing required parameter: 'input' and 'voice'.")
            return _json_error(400, _openai_error_body(err), rec)
        if body.get("response_format", "mp3") != "pcm":
            err = ScriptedError(400, "wire server: only response_format 'pcm' is spoken here")
            return _json_error(400, _openai_error_body(err), rec)
        item = self._speech.popleft() if self._speech else None
        if isinstance(item, ScriptedError):
            return _json_error(item.status, _openai_error_body(item), rec)
        pcm = item if item is not None else tone_pcm16(0.06 * len(body["input"]))
        size = self.speech_chunk_bytes
        events = [(self.speech_chunk_delay_s, pcm[i : i + size]) for i in range(0, len(pcm), size)]
        return self._stream(rec, events, "audio/pcm")


# --------------------------------------------------------------------------- Anthropic

_ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _json_object(text: str) -> Any:
    try:
        return json.loads(text or "{}")
    except ValueError:  # a deliberately broken script: send what a parser can
        return {}


def _anthropic_error_body(err: ScriptedError) -> dict[str, Any]:
    kind = _ANTHROPIC_ERROR_TYPES.get(
        err.status, "api_error" if err.status >= 500 else "invalid_request_error"
    )
    return {
        "type": "error",
        "error": {"type": kind, "message": err.message},
        "request_id": f"req_{uuid.uuid4().hex[:24]}",
    }


def _sse_event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


class AnthropicWireServer(_WireServer):
    """The Messages API (streaming SSE and plain JSON) as ``api.anthropic.com`` speaks it.

    Point ``AsyncAnthropic(base_url=server.url)`` at it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._replies: deque[ChatScriptItem] = deque()

    def script(self, *items: ChatScriptItem) -> None:
        """Queue message answers, one per request, in order."""
        self._replies.extend(items)

    @property
    def message_requests(self) -> list[Any]:
        """The JSON bodies of the Messages requests received."""
        return [r.json_body for r in self.requests_to("/v1/messages")]

    def _routes(self) -> list[Route]:
        return [Route("/v1/messages", self._messages, methods=["POST"])]

    async def _messages(self, request: Request) -> Response:
        rec = await self._record(request)
        body = rec.json_body
        required = ("model", "messages", "max_tokens")
        if not isinstance(body, dict) or any(k not in body for k in required):
            err = ScriptedError(400, "model, messages and max_tokens are required")
            return _json_error(400, _anthropic_error_body(err), rec)
        if not self._replies:
            err = ScriptedError(400, "wire server: no scripted message reply left")
            return _json_error(400, _anthropic_error_body(err), rec)
        item = self._replies.popleft()
        if isinstance(item, ScriptedError):
            return _json_error(item.status, _anthropic_error_body(item), rec)
        headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}"}
        if not body.get("stream"):
            rec._finish("completed")
            return JSONResponse(self._message(body, item), headers=headers)
        return self._stream(rec, self._events(body, item), "text/event-stream", headers)

    @staticmethod
    def _blocks(reply: ScriptedReply) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if reply.text:
            blocks.append({"type": "text", "text": "".join(reply.text)})
        blocks.extend(
            {
                "type": "tool_use",
                "id": tc.call_id or f"toolu_{uuid.uuid4().hex[:24]}",
                "name": tc.name,
                "input": _json_object(tc.arguments_json),
            }
            for tc in reply.tool_calls
        )
        return blocks

    def _message(self, body: dict[str, Any], reply: ScriptedReply) -> dict[str, Any]:
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": self._blocks(reply),
            "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": _estimate_tokens(body),
                "output_tokens": len(reply.text) + sum(len(t.arguments) for t in reply.tool_calls),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }

    def _events(self, body: dict[str, Any], reply: ScriptedReply) -> list[tuple[float, bytes]]:
        """message_start, per block start/deltas/stop, message_delta, message_stop."""
        delay = reply.chunk_delay_s
        out: list[tuple[float, bytes]] = []

        def event(name: str, payload: dict[str, Any]) -> None:
            out.append((delay, _sse_event(name, {"type": name, **payload})))

        message = self._message(body, reply)
        start = dict(message, content=[], stop_reason=None)
        start["usage"] = dict(message["usage"], output_tokens=1)
        event("message_start", {"message": start})
        index = 0
        if reply.text:
            event(
                "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
            )
            event("ping", {})
            for piece in reply.text:
                event(
                    "content_block_delta",
                    {"index": 0, "delta": {"type": "text_delta", "text": piece}},
                )
            event("content_block_stop", {"index": 0})
            index = 1
        for tc, block in zip(reply.tool_calls, message["content"][index:], strict=True):
            event(
                "content_block_start",
                {
                    "index": index,
                    "content_block": {
                        "type": "tool_use",
                        "id": block["id"],
                        "name": tc.name,
                        "input": {},
                    },
                },
            )
            for fragment in ("", *tc.arguments):  # the service opens with an empty fragment
                event(
                    "content_block_delta",
                    {
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": fragment},
                    },
                )
            event("content_block_stop", {"index": index})
            index += 1
        if reply.raw_after:
            out.append((delay, reply.raw_after))
        if reply.error_after is not None:
            event("error", {"error": _anthropic_error_body(reply.error_after)["error"]})
            return out
        event(
            "message_delta",
            {
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": message["usage"]["output_tokens"]},
            },
        )
        event("message_stop", {})
        return out

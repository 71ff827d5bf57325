"""The core the loopback wire servers share: the script a test plays, the record of
what the client sent, and a uvicorn server on the caller's event loop.

:mod:`parley.testing.wire_servers` builds the OpenAI server on it and
:mod:`parley.testing.anthropic_wire` the Anthropic one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
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
    "ChatScriptItem",
    "Outcome",
    "RecordedRequest",
    "ScriptedError",
    "ScriptedReply",
    "ScriptedToolCall",
    "UploadedFile",
    "WireServer",
    "estimate_tokens",
    "json_error",
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


class WireServer:
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


def estimate_tokens(body: Any) -> int:
    """A deterministic stand-in for a tokenizer: about four characters per token."""
    return max(1, len(json.dumps(body.get("messages", []))) // 4) if isinstance(body, dict) else 1


def json_error(status: int, payload: dict[str, Any], rec: RecordedRequest) -> Response:
    rec._finish("failed")
    return JSONResponse(payload, status_code=status)

"""Real servers for integration tests: uvicorn on a free 127.0.0.1 port.

``serve_app(app)`` runs a :class:`~parley.app.Parley` app in-process on the test's
event loop (lifespan on, the process's signal handlers untouched);
``ServerProcess`` runs ``python -m parley serve`` as a subprocess configured by
``PARLEY_*`` environment variables, for tests that need signals (SIGTERM drain)
or several workers.

    async with serve_app(Parley(settings=ParleySettings(engine="loopback"))) as server:
        async with websockets.connect(server.ws_url("/twilio/stream")) as ws: ...
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from parley.app import Parley
from parley.server.uvicorn_ws import WS_PROTOCOL

__all__ = [
    "LoopServer",
    "RunningServer",
    "ServerProcess",
    "TwilioPhone",
    "free_port",
    "serve_app",
    "serve_asgi",
    "start_serving",
]

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class RunningServer:
    port: int
    app: Parley | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


class LoopServer(uvicorn.Server):
    """uvicorn on the caller's loop (or a thread's): the process's signal handlers are
    left alone, and it says when it listens (uvicorn itself has only a ``started``
    flag): ``listening`` (an ``asyncio.Event``, for its own loop) and
    ``listening_threadsafe`` (a ``threading.Event``, for other threads)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()
        self.listening_threadsafe = threading.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.listening.set()
            self.listening_threadsafe.set()


async def start_serving(
    server: LoopServer, sockets: list[socket.socket] | None = None
) -> asyncio.Task[None]:
    """Run ``server.serve()`` in a task and return it once the server listens; if it
    stops first, raise why."""
    task = asyncio.create_task(server.serve(sockets=sockets))
    listening = asyncio.create_task(server.listening.wait())
    await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
    if not server.listening.is_set():
        listening.cancel()
        task.result()
        raise RuntimeError("server exited during startup")
    return task


@contextlib.asynccontextmanager
async def serve_asgi(
    asgi: Any, *, lifespan: str = "off", ws: Any = WS_PROTOCOL
) -> AsyncIterator[int]:
    """Serve any ASGI app in this process, on this loop, until the block exits;
    yields the port."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when
    # the listener says it is TCP (else keep-alive requests wait ~40 ms on Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        asgi,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan=lifespan,  # type: ignore[arg-type]
        ws=ws,
        timeout_graceful_shutdown=2,
    )
    server = LoopServer(config)
    task = await start_serving(server, [sock])
    try:
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def serve_app(app: Parley) -> AsyncIterator[RunningServer]:
    """Serve ``app.asgi`` (lifespan on: warm-up, drain) in this process."""
    async with serve_asgi(app.asgi, lifespan="on") as port:
        yield RunningServer(port, app)


class ServerProcess:
    """``python -m parley serve`` in a subprocess; use as a (sync) context manager."""

    def __init__(self, env: Mapping[str, str] | None = None, *, startup_s: float = 60.0) -> None:
        self.port = free_port()
        self._env = {
            **os.environ,
            "PARLEY_HOST": "127.0.0.1",
            "PARLEY_PORT": str(self.port),
            **(env or {}),
        }
        self._startup_s = startup_s
        self.proc: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: a full pipe would stall the server.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def start(self) -> ServerProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "parley", "serve"],
            env=self._env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends the workers too
        )
        deadline = time.monotonic() + self._startup_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited at start:\n{self.output}")
            try:
                if httpx.get(self.url + "/readyz", timeout=0.5).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # another process: its readiness shows only over HTTP
        output = self.output
        self.stop()
        raise RuntimeError(f"server did not start within {self._startup_s} s:\n{output}")

    def terminate(self) -> None:
        """Send SIGTERM (what an orchestrator sends to drain a node)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    @property
    def output(self) -> str:
        """Everything the server printed so far."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL the node whole: the server and its ``--workers`` (which would
        otherwise outlive their parent and keep serving the port)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.wait(10)

    def stop(self) -> None:
        self.kill()
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class TwilioPhone:
    """The Twilio side of a Media Streams WebSocket, speaking the real JSON frames.

    ``await phone.start(params)`` sends ``connected`` and ``start``; ``send_media``
    sends base64 µ-law; ``receive()`` returns the next server message as
    ``("media", ulaw_bytes)``, ``("mark", name)`` or ``("clear", "")``.
    """

    def __init__(
        self, ws: Any, *, stream_sid: str = "MZ" + "0" * 32, call_sid: str = "CA1"
    ) -> None:
        self.ws = ws
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.seq = 0
        self.chunk = 0

    def _next(self) -> str:
        self.seq += 1
        return str(self.seq)

    async def start(self, params: Mapping[str, str] | None = None) -> None:
        await self.ws.send(
            json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        )
        await self.ws.send(
            json.dumps(
                {
                    "event": "start",
                    "sequenceNumber": self._next(),
                    "start": {
                        "accountSid": "AC" + "0" * 32,
                        "streamSid": self.stream_sid,
                        "callSid": self.call_sid,
                        "tracks": ["inbound"],
                        "customParameters": dict(params or {}),
                        "mediaFormat": {
                            "encoding": "audio/x-mulaw",
                            "sampleRate": 8000,
                            "channels": 1,
                        },
                    },
                    "streamSid": self.stream_sid,
                }
            )
        )

    async def send_media(self, ulaw: bytes) -> None:
        self.chunk += 1
        await self.ws.send(
            json.dumps(
                {
                    "event": "media",
                    "sequenceNumber": self._next(),
                    "media": {
                        "track": "inbound",
                        "chunk": str(self.chunk),
                        "timestamp": str(20 * self.chunk),
                        "payload": base64.b64encode(ulaw).decode(),
                    },
                    "streamSid": self.stream_sid,
                }
            )
        )

    async def send_mark(self, name: str) -> None:
        await self.ws.send(
            json.dumps(
                {
                    "event": "mark",
                    "sequenceNumber": self._next(),
                    "streamSid": self.stream_sid,
                    "mark": {"name": name},
                }
            )
        )

    async def stop(self) -> None:
        await self.ws.send(
            json.dumps(
                {
                    "event": "stop",
                    "sequenceNumber": self._next(),
                    "streamSid": self.stream_sid,
                    "stop": {"accountSid": "AC" + "0" * 32, "callSid": self.call_sid},
                }
            )
        )

    async def receive(self, wait_s: float = 5.0) -> tuple[str, bytes | str]:
        frame = await asyncio.wait_for(self.ws.recv(), wait_s)
        assert isinstance(frame, str), "Twilio messages are text frames"
        msg = json.loads(frame)
        assert msg["streamSid"] == self.stream_sid
        if msg["event"] == "media":
            return "media", base64.b64decode(msg["media"]["payload"])
        if msg["event"] == "mark":
            return "mark", str(msg["mark"]["name"])
        assert msg["event"] == "clear", msg
        return "clear", ""

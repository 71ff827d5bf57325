"""A real ``redis-server`` for tests and benchmarks: on a free 127.0.0.1 port, nothing
saved (``--save "" --appendonly no``), stopped on exit. Never the machine's 6379.

    with RedisServer() as redis:
        store = RedisSessionStore(url=redis.url)

Readiness is the server's own "Ready to accept connections" log line, read from its
stdout, not a polling loop.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from types import TracebackType

__all__ = ["RedisServer"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process; ``url`` is ``redis://127.0.0.1:PORT/0``."""

    def __init__(self, *, executable: str = "redis-server", startup_timeout: float = 10.0):
        path = shutil.which(executable)
        if path is None:
            raise FileNotFoundError(f"{executable} is not installed (Debian: redis-server)")
        self._executable = path
        self._timeout = startup_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._drainer: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        for _attempt in range(5):  # a port taken between the probe and the bind: try another
            self.port = _free_port()
            proc = subprocess.Popen(
                [
                    self._executable,
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "no",
                    "--daemonize", "no",
                    "--loglevel", "notice",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
            if self._wait_ready(proc):
                self._proc = proc
                # keep reading its log so a full pipe never blocks the server
                self._drainer = threading.Thread(target=self._drain, args=(proc,), daemon=True)
                self._drainer.start()
                return self
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        raise RuntimeError("redis-server did not start")

    def _wait_ready(self, proc: subprocess.Popen[str]) -> bool:
        assert proc.stdout is not None
        deadline = time.monotonic() + self._timeout
        for line in proc.stdout:
            if "Ready to accept connections" in line:
                return True
            if "Address already in use" in line or time.monotonic() > deadline:
                return False
        return False  # the process exited

    @staticmethod
    def _drain(proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for _ in proc.stdout:
                pass

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._drainer is not None:
            self._drainer.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

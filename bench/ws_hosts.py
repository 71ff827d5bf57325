"""The WebSocket host candidates for the phone stream, measured on the same calls.

    python bench/ws_hosts.py --calls 100 --duration 10
    python bench/ws_hosts.py --serve lean --port 8765      # one candidate, for profiling

Each candidate serves the same Parley app (``engine: loopback``, one process) and the
same Node callers of ``bench/calls.py`` run against it, one candidate after another in
one run (``--taskset`` pins as there). Candidates, all installed from the package index:

* ``fastapi+websockets-sansio`` — uvicorn's websockets-sansio under Starlette's
  WebSocket (the FastAPI route; the host before the lean one),
* ``fastapi+wsproto`` and ``fastapi+websockets`` — uvicorn's other implementations,
* ``websockets`` — the ``websockets`` library's own asyncio server
  (:mod:`parley.server.hosts.websockets`),
* ``lean`` — uvicorn handing the endpoints' upgrades to picows (Cython framing),
  :mod:`parley.server.hosts.lean`, what ``parley serve`` runs.

Prints one JSON line: per candidate the CPU per call, echo delay and audio returned,
and each one's CPU per call relative to ``lean``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import calls

CANDIDATES = {
    "fastapi+websockets-sansio": "websockets-sansio",
    "fastapi+wsproto": "wsproto",
    "fastapi+websockets": "websockets",
    "websockets": None,
    "lean": "parley.server.hosts.lean:LeanWebSocketProtocol",
}


def serve(candidate: str, port: int) -> None:
    """Serve the loopback app with one candidate until killed."""
    import uvicorn

    from parley.app import Parley
    from parley.config import EngineKind, ParleySettings
    from parley.server.hosts.websockets import serve_websockets

    app = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK))
    ws = CANDIDATES[candidate]
    if ws is None:

        async def run() -> None:
            server = await serve_websockets(app, "127.0.0.1", port)
            await server.serve_forever()

        asyncio.run(run())
        return
    uvicorn.run(app.asgi, host="127.0.0.1", port=port, ws=ws, log_level="warning")


def wait_port(port: int, proc: Any) -> None:
    import socket
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"candidate exited at start (exit {proc.returncode})")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                time.sleep(1.0)  # the app's start-up (warm-up) finishes after listen
                return
        time.sleep(0.1)
    raise SystemExit("candidate did not listen within 60 s")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import os
    import signal
    import subprocess

    node = calls.ensure_loadgen()
    server_cpus = loadgen_cpus = None
    if args.taskset:
        loadgen_cpus, server_cpus = "0", "1"
    rows: dict[str, Any] = {}
    for name in args.candidates.split(","):
        port = calls.free_port()
        cmd = [sys.executable, __file__, "--serve", name, "--port", str(port)]
        proc = subprocess.Popen(
            calls.pinned(cmd, server_cpus),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_port(port, proc)
            pids = calls.process_tree(proc.pid)
            url = f"ws://127.0.0.1:{port}/twilio/stream"
            raw = calls.run_loadgen(node, url, args.calls, args.duration, pids, loadgen_cpus)
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        s = calls.summarize(raw, name, 1, True)
        rows[name] = {
            "server_cpu_pct_of_core_per_call": s["server_cpu_pct_of_core_per_call"],
            "echo_delay_ms": s["echo_delay_ms"],
            "audio_returned": s["audio_returned"],
            "other_cpu_cores": s["other_cpu_cores"],
        }
    lean = rows.get("lean", {}).get("server_cpu_pct_of_core_per_call")
    for row in rows.values():
        ours = row["server_cpu_pct_of_core_per_call"]
        row["cpu_vs_lean"] = round(ours / lean, 2) if lean and ours else None
    return {
        "bench": "ws_hosts",
        "calls": args.calls,
        "duration_s": args.duration,
        "pinning": {"server_cpus": server_cpus, "loadgen_cpus": loadgen_cpus},
        "candidates": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--taskset", action="store_true")
    parser.add_argument("--serve", choices=list(CANDIDATES), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    print(json.dumps(measure(args)))


if __name__ == "__main__":
    main()

"""Memory of a Parley server: base RSS, per idle phone call, per idle ``/v1/realtime`` session.

    python bench/memory.py                       # 200 phone calls, 50 realtime sessions
    python bench/memory.py --calls 100 --sessions 20

Starts ``parley serve --engine loopback`` (one process, ``vad: energy`` so that no VAD
model loads), reads its resident set size from ``/proc/PID/status`` once it is ready
(the base: no model loaded), then opens N Twilio Media Streams calls (``connected`` +
``start``, then silence: an idle call, as a phone line on hold) and reads it again;
then one ``/v1/realtime`` session (which loads the speech models the sessions share)
and N more, idle after ``session.created``. The per-call figures are the RSS growth
divided by N, so what every call or session holds (its socket, protocol state, engine,
queues, records) and nothing shared. Last, one context injection into a live call
(``POST /conversations/{id}/context``): the first one loads the token counter's BPE
tables, so ``rss_after_first_context_injection_mb`` is the server with them.
Prints one JSON line with the issue's bounds:
≤ 150 KB per idle phone call, ≤ 256 KB per idle ``/v1/realtime`` session, base RSS
≤ 120 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))

import calls

GOAL = {"phone_call_kb_max": 150, "realtime_session_kb_max": 256, "base_rss_mb_max": 120}


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def settle(pid: int) -> int:
    """RSS once it stops moving (the server finished what the last connections asked)."""
    last = rss_kb(pid)
    for _ in range(20):
        await asyncio.sleep(0.5)
        now = rss_kb(pid)
        if abs(now - last) < 64:
            return now
        last = now
    return last


def start_frame(i: int) -> str:
    sid = "MZ" + str(i).zfill(32)
    start = {
        "streamSid": sid,
        "callSid": "CA" + str(i).zfill(32),
        "accountSid": "AC" + "0" * 32,
        "tracks": ["inbound"],
        "customParameters": {"from": f"+1415555{i:04d}"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    return json.dumps({"event": "start", "sequenceNumber": "1", "start": start, "streamSid": sid})


async def measure(port: int, pid: int, n_calls: int, n_sessions: int) -> dict[str, Any]:
    base = await settle(pid)
    phones = []
    for i in range(n_calls):
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/twilio/stream", compression=None)
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(start_frame(i))
        phones.append(ws)
    with_calls = await settle(pid)
    url = f"ws://127.0.0.1:{port}/v1/realtime?model=parley-realtime"
    first = await websockets.connect(url, compression=None, max_size=None)
    assert json.loads(await first.recv())["type"] == "session.created"
    one_session = await settle(pid)
    sessions = []
    for _ in range(n_sessions):
        ws = await websockets.connect(url, compression=None, max_size=None)
        assert json.loads(await ws.recv())["type"] == "session.created"
        sessions.append(ws)
    with_sessions = await settle(pid)
    alive = sum(1 for ws in phones if ws.state is websockets.State.OPEN)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        live = (await http.get("/conversations", params={"status": "live", "limit": 1})).json()
        call_id = live["conversations"][0]["id"]
        body = {"key": "account", "data": {"plan": "gold", "open_orders": 2}}
        injected = await http.post(f"/conversations/{call_id}/context", json=body)
        injected.raise_for_status()
    with_tables = await settle(pid)
    for ws in [*phones, first, *sessions]:
        await ws.close()
    per_call = (with_calls - base) / n_calls
    per_session = (with_sessions - one_session) / n_sessions
    return {
        "bench": "memory",
        "phone_calls": n_calls,
        "phone_calls_open_at_the_end": alive,
        "realtime_sessions": n_sessions,
        "base_rss_mb": round(base / 1024, 1),
        "rss_with_calls_mb": round(with_calls / 1024, 1),
        "kb_per_idle_phone_call": round(per_call, 1),
        "rss_after_first_realtime_session_mb": round(one_session / 1024, 1),
        "kb_per_idle_realtime_session": round(per_session, 1),
        "rss_after_first_context_injection_mb": round(with_tables / 1024, 1),
        "goal": {
            **GOAL,
            "phone_call": per_call <= GOAL["phone_call_kb_max"],
            "realtime_session": per_session <= GOAL["realtime_session_kb_max"],
            "base_rss": base / 1024 <= GOAL["base_rss_mb_max"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=50)
    args = parser.parse_args()
    os.environ.setdefault("PARLEY_VAD", "energy")
    os.environ["PARLEY_MAX_CALLS"] = str(args.calls + args.sessions + 10)
    port = calls.free_port()
    with calls.server_process(calls.parley_command(1, port), port, 1) as proc:
        gc.collect()
        result = asyncio.run(measure(port, proc.pid, args.calls, args.sessions))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

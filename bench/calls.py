"""N simulated Twilio calls at real-time pace against ``parley serve --engine loopback``.

    python bench/calls.py --calls 300            # default: 20 s, --workers 2
    python bench/calls.py --calls 1 --duration 10
    python bench/calls.py --url ws://host:port/twilio/stream --calls 50   # a running server
    python bench/calls.py --calls 300 --taskset           # generator on CPU 0, server on the rest
    python bench/calls.py --calls 40 --workers 1 --anchor pipecat   # + Pipecat, same run
    python bench/calls.py --calls 300 --analytics compare   # analytics off, then on
    python bench/calls.py --calls 300 --analytics compare --repeats 3   # ABBA, medians

``--analytics off`` serves with ``PARLEY_METRICS=false`` (no call meter, no /metrics);
``on`` with the meters, Prometheus and the whole analytics pipeline
(``enable_analytics``, ``track_costs``, ``track_engagement``: the SQLite history and the
built-in processor at each call's end); ``compare`` runs both in this run, one after
the other on fresh servers, and adds ``analytics_overhead_pct``: the extra server CPU
of "on" over "off", in percent of "off" (issue 11's goal: ≤ 2 %).

Starts the server (loopback engine: every caller hears their own audio, so what is
measured is the transport and conversation plumbing), then runs the callers from ONE
Node.js process (``bench/loadgen/loadgen.js``, the ``ws`` package; ``npm ci`` runs
there first if ``node_modules`` is missing): each call speaks Twilio's exact JSON —
``connected``, ``start``, a 20 ms µ-law ``media`` frame every 20 ms, ``stop`` — and
echoes the server's ``mark``s when their audio would have finished playing, as Twilio
does. Each second every call sends a 100 ms tone burst at one of eight frequencies;
the echo delay is from sending the burst's first frame to receiving a media message
whose decoded µ-law carries that burst (energy, then Goertzel to name the frequency).

Prints ONE JSON line: calls, duration, fraction of the audio returned, echo delay
p50/p99, server CPU (the server process and all its worker processes, from
``/proc/PID/stat``, over the measured window) in cores and per call, the load
generator's CPU and how late it sent its frames (it shares the machine: if it is
late, the figures say so), whether the goals hold (issue 15: ≤ 0.2 % of a core per
call at 300 calls), and a reference row for Pipecat measured earlier on this machine.

``--taskset`` pins the load generator to CPU 0 and the server (every worker) to the
other CPUs with ``taskset -c``, so the two do not steal each other's core; the line
says which CPUs each had. ``--anchor pipecat`` then runs Pipecat's echo bot
(``bench/anchors/pipecat_echo.py``: its Twilio serializer and FastAPI WebSocket
transport, one process) through the same generator with the same calls and pinning,
right after Parley in the same run, and prints both and the ratio of CPU per call.
Pipecat is installed by the bench into a side virtual environment,
``bench/.anchors/pipecat`` (git-ignored), on first use — never a Parley dependency.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
LOADGEN = ROOT / "bench" / "loadgen"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

#: Issues 4 and 15: at ≥ 300 calls, ≥ 99 % of the audio back, echo p99 ≤ 60 ms and at
#: most 0.2 % of a core per call; at one call, echo p50 ≤ 25 ms; with the anchor,
#: Parley's CPU per call at most 0.2 × Pipecat's.
GOAL = {
    "audio_returned_min": 0.99,
    "echo_p99_ms_max": 60.0,
    "echo_p50_ms_max_at_1_call": 25.0,
    "cpu_pct_of_core_per_call_max_at_300_calls": 0.2,
    "cpu_ratio_to_anchor_max": 0.2,
}
ANCHOR_DIR = ROOT / "bench" / ".anchors"
ANCHOR_REQUIREMENTS = {"pipecat": ["pipecat-ai[websocket]>=1.14,<1.15", "uvicorn>=0.30,<1"]}

#: Pipecat 1.14 (its Twilio serializer + FastAPI WebSocket transport + an echo processor,
#: one process), measured the same way on this machine before this bench existed.
REFERENCE = {
    "name": "Pipecat 1.14, one process (reference: measured earlier, not in this run)",
    "server_cpu_pct_of_core_per_call": 1.3,
    "echo_p50_ms_at_1_call": 165,
    "calls_before_echo_delay_over_400ms": "40-50",
    "audio_returned_at_120_calls": 0.20,
}


# ----------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants (uvicorn's workers are its children)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU time of each of ``pids`` so far (an exited process counts 0)."""
    times = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            times[pid] = 0.0
            continue
        times[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    return times


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (``/proc/stat``)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def pinned(cmd: list[str], cpus: str | None) -> list[str]:
    return cmd if cpus is None else ["taskset", "-c", cpus, *cmd]


def analytics_env(mode: str | None, folder: Path) -> dict[str, str]:
    """The server's environment for an ``--analytics`` mode (None: the defaults)."""
    if mode == "off":
        return {"PARLEY_METRICS": "false"}
    if mode == "on":
        return {
            "PARLEY_METRICS": "true",
            "PARLEY_CONVERSATION__ENABLE_ANALYTICS": "true",
            "PARLEY_CONVERSATION__TRACK_COSTS": "true",
            "PARLEY_CONVERSATION__TRACK_ENGAGEMENT": "true",
            "PARLEY_ANALYTICS_DB": str(folder / "analytics.sqlite3"),
        }
    return {}


def parley_command(workers: int, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "parley",
        "serve",
        "--engine",
        "loopback",
        "--workers",
        str(workers),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


@contextmanager
def server_process(
    cmd: list[str],
    port: int,
    workers: int,
    cpus: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` (pinned to ``cpus``) until the block exits, once ``/readyz`` answers."""
    cmd = pinned(cmd, cpus)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a full pipe stalls it
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_ready(f"http://127.0.0.1:{port}/readyz", proc, log, workers)
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: IO[bytes], workers: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"server exited at start:\n{log.read().decode(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=0.5) as r:
                # Every worker must be up: /readyz answers from the first one.
                expected = 1 if workers == 1 else workers + 1  # + uvicorn's supervisor
                if r.status == 200 and len(process_tree(proc.pid)) >= expected:
                    time.sleep(0.5)
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise SystemExit("server did not become ready within 60 s")


def ensure_loadgen() -> str:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("bench/calls.py needs Node.js (node ≥ 18) for its load generator")
    if not (LOADGEN / "node_modules" / "ws").is_dir():
        print("bench/calls.py: installing the load generator (npm ci)", file=sys.stderr)
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=LOADGEN, check=True
        )
    return node


# --------------------------------------------------------------------------- run


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ensure_anchor(name: str) -> Path:
    """The Python of the anchor's side virtual environment, made on first use."""
    venv = ANCHOR_DIR / name
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import pipecat.serializers.twilio, fastapi, uvicorn"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"bench/calls.py: installing the {name} anchor into {venv}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *ANCHOR_REQUIREMENTS[name]], check=True
    )
    subprocess.run(probe, check=True)
    return python


def run_loadgen(
    node: str,
    url: str,
    calls: int,
    duration: float,
    server_pids: list[int] | None,
    cpus: str | None = None,
) -> dict[str, Any]:
    cmd = [
        node,
        str(LOADGEN / "loadgen.js"),
        "--url",
        url,
        "--calls",
        str(calls),
        "--duration",
        str(duration),
    ]
    proc = subprocess.Popen(pinned(cmd, cpus), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    window: dict[str, Any] = {}
    result: dict[str, Any] | None = None
    for line in proc.stdout:
        msg = json.loads(line)
        now = time.monotonic()
        if msg["type"] == "ready":
            window["t0"] = now
            window["cpu0"] = cpu_seconds(server_pids or [])
            window["busy0"] = machine_busy_seconds()
        elif msg["type"] == "done":
            window["t1"] = now
            window["cpu1"] = cpu_seconds(server_pids or [])
            window["busy1"] = machine_busy_seconds()
        elif msg["type"] == "result":
            result = msg
    if proc.wait() != 0 or result is None or "t1" not in window:
        raise SystemExit(f"load generator failed (exit {proc.returncode})")
    result["window_s"] = window["t1"] - window["t0"]
    per_process = {pid: window["cpu1"][pid] - window["cpu0"][pid] for pid in window["cpu0"]}
    result["server_cpu_s"] = sum(per_process.values())
    result["machine_busy_s"] = window["busy1"] - window["busy0"]
    # Busiest first: one saturated worker shows here even when the sum looks low.
    result["server_cpu_s_by_process"] = sorted(per_process.values(), reverse=True)
    return result


def summarize(
    raw: dict[str, Any], server: str, workers: int | None, measured_cpu: bool
) -> dict[str, Any]:
    calls = int(raw["connected"])
    delays = [float(d) for d in raw["delays"]]
    returned = raw["recvBytes"] / raw["sentBytes"] if raw["sentBytes"] else 0.0
    window = raw["window_s"]
    p50, p99 = percentile(delays, 0.50), percentile(delays, 0.99)
    cores = raw["server_cpu_s"] / window if measured_cpu else None
    checks: dict[str, bool] = {
        "audio_returned": returned >= GOAL["audio_returned_min"],
        "echo_p99": p99 is not None and p99 <= GOAL["echo_p99_ms_max"],
    }
    if calls == 1:
        checks["echo_p50_at_1_call"] = p50 is not None and p50 <= GOAL["echo_p50_ms_max_at_1_call"]
    per_call = 100 * cores / calls if cores is not None and calls else None
    if calls >= 300 and per_call is not None:
        checks["cpu_per_call"] = per_call <= GOAL["cpu_pct_of_core_per_call_max_at_300_calls"]
    return {
        "bench": "calls",
        "server": server,
        "workers": workers,
        "calls": raw["calls"],
        "calls_connected": calls,
        "calls_failed": raw["failed"],
        "calls_closed_early": raw["closedEarly"],
        "duration_s": raw["duration"],
        "audio_returned": round(returned, 4),
        "worst_call_audio_returned": min(raw["perCallReturned"], default=0.0),
        "bursts_sent": raw["burstsSent"],
        "bursts_timed": raw["burstsEchoed"],
        "echo_delay_ms": {
            "p50": p50,
            "p90": percentile(delays, 0.90),
            "p99": p99,
            "max": max(delays, default=None),
        },
        "server_cpu_cores": round(cores, 3) if cores is not None else None,
        "server_cpu_cores_by_process": (
            [round(s / window, 3) for s in raw["server_cpu_s_by_process"]] if measured_cpu else None
        ),
        "server_cpu_pct_of_core_per_call": round(per_call, 3) if per_call is not None else None,
        "loadgen_cpu_cores": round(raw["loadgenCpuS"] / raw["loadgenWallS"], 3),
        "loadgen_frame_lateness_ms": {
            "p99": raw["framesLateP99Ms"],
            "max": round(raw["maxLatenessMs"], 1),
        },
        "machine_cores": os.cpu_count(),
        # Everything else the machine ran meanwhile (other jobs compete for the cores).
        "other_cpu_cores": (
            round(
                max(0.0, raw["machine_busy_s"] - raw["server_cpu_s"] - raw["loadgenCpuS"]) / window,
                3,
            )
            if measured_cpu
            else None
        ),
        "goal": {**checks, "met": all(checks.values()), "scale_goal_applies": calls >= 300},
        "reference": REFERENCE,
        "close_reasons": raw["closeReasons"],
    }


def served_run(
    node: str,
    args: argparse.Namespace,
    mode: str | None,
    server_cpus: str | None,
    loadgen_cpus: str | None,
) -> dict[str, Any]:
    """Start a server (``mode``: the analytics setting), run the callers, summarise."""
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        env = analytics_env(mode, Path(folder))
        with server_process(
            parley_command(args.workers, port), port, args.workers, server_cpus, env
        ) as proc:
            pids = process_tree(proc.pid)
            url = f"ws://127.0.0.1:{port}/twilio/stream"
            raw = run_loadgen(node, url, args.calls, args.duration, pids, loadgen_cpus)
    server = f"parley serve --engine loopback --workers {args.workers}"
    summary = summarize(raw, server, args.workers, True)
    summary["analytics"] = mode or "default"
    return summary


def compare_analytics(
    node: str, args: argparse.Namespace, server_cpus: str | None, loadgen_cpus: str | None
) -> dict[str, Any]:
    # Fresh servers differ by a few percent from one start to the next (how the kernel
    # spreads 300 connections over two workers, where the processes land), more than
    # the overhead being measured. With ``--repeats N`` the modes alternate in ABBA
    # order (off on, on off, ...), so a drift over the run falls on both equally, and
    # the figure is the difference of the medians.
    order = [("off", "on") if i % 2 == 0 else ("on", "off") for i in range(args.repeats)]
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for pair in order:
        for mode in pair:
            runs[mode].append(served_run(node, args, mode, server_cpus, loadgen_cpus))
    cores = {m: [r["server_cpu_cores"] for r in rs] for m, rs in runs.items()}
    # A starved server (other jobs on the machine) does less work than asked: per
    # unit of audio it actually returned, the two runs compare like for like.
    per_audio = {
        m: [r["server_cpu_cores"] / max(r["audio_returned"], 1e-9) for r in rs]
        for m, rs in runs.items()
    }
    off, on = statistics.median(cores["off"]), statistics.median(cores["on"])
    off_per, on_per = statistics.median(per_audio["off"]), statistics.median(per_audio["on"])
    pairs = [
        round(100 * (n - f) / f, 2) for f, n in zip(cores["off"], cores["on"], strict=True) if f
    ]
    return {
        "bench": "calls_analytics",
        "calls": args.calls,
        "repeats": args.repeats,
        "analytics_off": runs["off"][0] if args.repeats == 1 else runs["off"],
        "analytics_on": runs["on"][0] if args.repeats == 1 else runs["on"],
        "server_cpu_cores_off": cores["off"],
        "server_cpu_cores_on": cores["on"],
        "analytics_overhead_pct": round(100 * (on - off) / off, 2) if off else None,
        "analytics_overhead_pct_by_pair": pairs,
        "analytics_overhead_pct_per_audio_returned": (
            round(100 * (on_per - off_per) / off_per, 2) if off_per else None
        ),
        "goal_overhead_pct_max": 2.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of audio per call")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--url", help="a running server's /twilio/stream URL (no server started)")
    parser.add_argument("--server-pid", type=int, help="with --url: measure this process tree")
    parser.add_argument(
        "--taskset", action="store_true", help="pin the generator to CPU 0, servers to the rest"
    )
    parser.add_argument("--anchor", choices=["pipecat"], help="also run this echo bot, same run")
    parser.add_argument(
        "--analytics",
        choices=["on", "off", "compare"],
        help="serve with analytics on or off, or compare both in this run",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="with --analytics compare: this many off/on pairs, alternating order (ABBA)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the goal is not met")
    args = parser.parse_args()
    if args.calls < 1 or args.duration <= 0 or args.repeats < 1:
        parser.error("--calls and --repeats must be ≥ 1 and --duration > 0")
    server_cpus = loadgen_cpus = None
    if args.taskset:
        cores = os.cpu_count() or 1
        if cores < 2:
            parser.error("--taskset needs at least 2 CPUs")
        loadgen_cpus, server_cpus = "0", f"1-{cores - 1}" if cores > 2 else "1"
    node = ensure_loadgen()
    anchor_python = ensure_anchor(args.anchor) if args.anchor else None
    if args.url:
        pids = process_tree(args.server_pid) if args.server_pid else None
        raw = run_loadgen(node, args.url, args.calls, args.duration, pids, loadgen_cpus)
        summary = summarize(raw, args.url, None, pids is not None)
    elif args.analytics == "compare":
        summary = compare_analytics(node, args, server_cpus, loadgen_cpus)
        print(json.dumps(summary), flush=True)
        return
    else:
        summary = served_run(node, args, args.analytics, server_cpus, loadgen_cpus)
    summary["pinning"] = {"server_cpus": server_cpus, "loadgen_cpus": loadgen_cpus}
    if anchor_python is not None:
        port = free_port()
        cmd = [str(anchor_python), str(ROOT / "bench" / "anchors" / "pipecat_echo.py")]
        with server_process([*cmd, "--port", str(port)], port, 1, server_cpus) as proc:
            pids = process_tree(proc.pid)
            url = f"ws://127.0.0.1:{port}/twilio/stream"
            raw = run_loadgen(node, url, args.calls, args.duration, pids, loadgen_cpus)
        anchor = summarize(raw, "Pipecat echo bot (bench/anchors/pipecat_echo.py)", 1, True)
        for key in ("reference", "goal", "bench"):
            anchor.pop(key)
        summary["anchor"] = anchor
        ours, theirs = (
            summary["server_cpu_pct_of_core_per_call"],
            anchor["server_cpu_pct_of_core_per_call"],
        )
        ratio = round(ours / theirs, 3) if ours and theirs else None
        summary["cpu_per_call_ratio_to_anchor"] = ratio
        summary["goal"]["cpu_ratio_to_anchor"] = (
            ratio is not None and ratio <= GOAL["cpu_ratio_to_anchor_max"]
        )
        summary["goal"]["met"] = all(
            v for k, v in summary["goal"].items() if k not in ("met", "scale_goal_applies")
        )
    print(json.dumps(summary), flush=True)
    if args.check and not summary["goal"]["met"]:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""The ``parley`` command: help, settings errors, and a real call against a real server.

The end-to-end tests start ``python -m parley serve`` as a subprocess on a free
port (real uvicorn, real models) and run ``parley call`` against its
``/twilio/stream``: Piper speaks the sentence, the caller streams it at real-time
pace, and Whisper transcribes what came back.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import parley
from parley.cli import app, brain_description, engine_description
from parley.config import load_settings
from speech import normalise, words_missed

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"parley {parley.__version__}"


def test_serve_help_lists_the_options() -> None:
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--host", "--port", "--engine", "--brain", "--llm-base-url", "--workers"):
        assert option in result.output
    assert "--config" in result.output


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--port", "70000"], "port"),
        (["--brain", "oracle"], "brain"),
        (["--brain", "openai"], "brain"),  # no model
        (["--workers", "0"], "workers"),
    ],
)
def test_invalid_flags_exit_2_naming_the_field(args: list[str], field: str) -> None:
    result = runner.invoke(app, ["serve", *args])
    assert result.exit_code == 2, result.output
    assert f"invalid settings: {field}:" in result.stderr


def test_invalid_yaml_setting_exits_2_naming_the_nested_field(tmp_path: Path) -> None:
    config = tmp_path / "parley.yaml"
    config.write_text("conversation:\n  max_context_size: -5\n")
    result = runner.invoke(app, ["serve", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "conversation.max_context_size" in result.stderr
    missing = runner.invoke(app, ["serve", "--config", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "config:" in missing.stderr


def test_invalid_environment_setting_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_DRAIN_SECONDS", "-1")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "drain_seconds" in result.stderr


def test_the_banner_says_which_brain_and_why() -> None:
    echo = load_settings(overrides={"brain": "echo"})
    assert "no LLM configured" in brain_description(echo)
    assert engine_description(echo).startswith("local")
    openai = load_settings(
        overrides={"brain": "openai:llama3", "llm_base_url": "http://127.0.0.1:11434/v1"}
    )
    assert brain_description(openai) == (
        "openai:llama3 — an OpenAI-compatible chat endpoint at http://127.0.0.1:11434/v1"
    )
    loopback = load_settings(overrides={"engine": "loopback"})
    assert engine_description(loopback).startswith("loopback")
    assert brain_description(loopback).startswith("none")


def test_call_needs_exactly_one_audio_source(tmp_path: Path) -> None:
    url = "ws://127.0.0.1:9/twilio/stream"
    neither = runner.invoke(app, ["call", url])
    assert neither.exit_code == 2 and "--say" in neither.stderr
    both = runner.invoke(app, ["call", url, "--say", "hi", "--wav", str(tmp_path / "a.wav")])
    assert both.exit_code == 2
    bad_url = runner.invoke(app, ["call", "http://127.0.0.1:9/", "--say", "hi"])
    assert bad_url.exit_code == 2 and "ws://" in bad_url.stderr
    not_a_wav = tmp_path / "a.wav"
    not_a_wav.write_bytes(b"RIFF nonsense")
    bad_wav = runner.invoke(app, ["call", url, "--wav", str(not_a_wav)])
    assert bad_wav.exit_code == 2 and "cannot read" in bad_wav.stderr


def test_call_to_a_closed_port_fails_with_a_clear_message() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    result = runner.invoke(app, ["call", f"ws://127.0.0.1:{port}/twilio/stream", "--say", "Hello."])
    assert result.exit_code == 1
    assert "cannot connect" in result.stderr


# ----------------------------------------------------------------- real server, real call


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(*args: str, command: str = "serve") -> tuple[subprocess.Popen[str], int]:
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley", command, "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"parley {command} exited with {proc.returncode}:\n{out}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.1)  # another process: it shows it listens only by accepting
    proc.kill()
    pytest.fail("parley serve did not start listening within 90 s")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


@pytest.fixture(scope="module")
def local_server() -> Iterator[tuple[int, list[str]]]:
    proc, port = _start_server("--engine", "local", "--brain", "echo")
    logs: list[str] = []
    yield port, logs
    logs.append(_stop(proc))


def _call(port: int, *args: str) -> dict[str, object]:
    result = runner.invoke(
        app, ["call", f"ws://127.0.0.1:{port}/twilio/stream", "--json", "--timeout", "90", *args]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert isinstance(report, dict)
    return report


def test_parley_call_against_the_default_server_prints_the_agents_reply(
    local_server: tuple[int, list[str]],
) -> None:
    port, _logs = local_server
    sentence = "I would like to book a table for two people tonight."
    report = _call(port, "--say", sentence)
    assert report["ok"] is True, report
    turns = report["turns"]
    assert isinstance(turns, list) and len(turns) == 1
    turn = turns[0]
    # The echo brain answers "You said: <what it heard>", spoken by Piper.
    heard = normalise(turn["agent"])
    assert heard.startswith("you said"), turn
    assert words_missed(sentence, heard) <= 1, turn  # heard twice: TTS → µ-law → Whisper
    assert 0 < turn["latency_ms"] < 5000, turn
    assert report["marks_echoed"] == report["marks_received"] > 0


def test_parley_call_prints_a_readable_transcript(local_server: tuple[int, list[str]]) -> None:
    port, _logs = local_server
    result = runner.invoke(
        app, ["call", f"ws://127.0.0.1:{port}/twilio/stream", "--say", "Hello there."]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    agent = next(line for line in lines if line.strip().startswith("agent:"))
    # Heard twice (Piper → µ-law → Whisper): one word may slip ("You said" as "He said").
    assert words_missed("you said hello there", agent) <= 1, agent
    assert any("latency" in line and " ms " in line for line in lines)


def test_parley_call_against_a_loopback_server_hears_itself() -> None:
    proc, port = _start_server("--engine", "loopback")
    try:
        sentence = "Testing the telephone line, please hold."
        report = _call(port, "--say", sentence)
    finally:
        banner = _stop(proc)
    assert "loopback" in banner
    turn = report["turns"][0]  # type: ignore[index]
    assert normalise(turn["agent"]) == normalise(sentence)
    # Loopback returns each frame as it arrives: the reply starts before speech ends.
    assert turn["reply_ms"] >= turn["speech_ms"]


@pytest.fixture(scope="module")
def spoken_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from parley.audio import write_wav
    from speech import speak

    pcm, rate = speak("What a lovely day it is.")
    path = tmp_path_factory.mktemp("talk") / "say.wav"
    write_wav(path, pcm, rate)
    return path


def _talk(url: str, wav: Path, out: Path, *extra: str) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "parley",
            "talk",
            url,
            "--wav",
            str(wav),
            "--out",
            str(out),
            "--duration",
            "60",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_parley_talk_through_the_servers_realtime_endpoint(
    local_server: tuple[int, list[str]], spoken_wav: Path, tmp_path: Path
) -> None:
    """`parley serve` mounts /v1/realtime; `parley talk URL --wav` speaks the file to it."""
    port, _ = local_server
    out = _talk(f"http://127.0.0.1:{port}", spoken_wav, tmp_path / "reply.wav")
    assert "you said what a lovely day it is" in normalise(out)
    assert "median voice-to-voice" in out
    assert (tmp_path / "reply.wav").stat().st_size > 10_000


def test_parley_realtime_server_requires_its_key(spoken_wav: Path, tmp_path: Path) -> None:
    proc, port = _start_server("--api-key", "sk-local", command="realtime-server")
    try:
        out = _talk(
            f"http://127.0.0.1:{port}", spoken_wav, tmp_path / "a.wav", "--api-key", "sk-local"
        )
        assert "you said what a lovely day it is" in normalise(out)
        refused = subprocess.run(
            [
                sys.executable,
                "-m",
                "parley",
                "talk",
                f"http://127.0.0.1:{port}",
                "--wav",
                str(spoken_wav),
                "--api-key",
                "wrong",
                "--duration",
                "20",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 1
        assert "error" in (refused.stdout + refused.stderr).lower()
    finally:
        _stop(proc)

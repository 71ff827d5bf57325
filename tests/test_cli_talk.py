"""``parley talk``'s failures: one clear line on stderr, exit code 1."""

from __future__ import annotations

import socket
from pathlib import Path

from typer.testing import CliRunner

from parley.audio import write_wav
from parley.cli import app


def _closed_port() -> int:
    with socket.socket() as sock:  # bound, then released: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_server_prints_one_error_line(tmp_path: Path) -> None:
    wav = tmp_path / "quiet.wav"
    write_wav(wav, bytes(4800), 24000)
    url = f"ws://127.0.0.1:{_closed_port()}/v1/realtime"
    result = CliRunner().invoke(app, ["talk", url, "--wav", str(wav), "--duration", "20"])
    assert result.exit_code == 1, result.output
    err = result.stderr
    assert "unreachable" in err
    assert err.count("error") == 1, err  # not "error: error: …"

"""The local device: ``DeviceCallStream`` (parley.client.local) and ``parley local``.

Virtual devices: PortAudio (Debian's ``libportaudio2``) over ALSA's ``file`` PCM on
the ``null`` PCM (both in ``libasound2``), declared in an ALSA config file: a
microphone that reads a raw file and a speaker that writes one, listed by PortAudio
as ``parley_mic`` and ``parley_speaker``. The kernel's ``snd-aloop`` is not available
in this sandbox (no /proc/asound), and ALSA's ``null`` has no clock: audio through
these devices runs as fast as PortAudio pulls it. So the sounddevice microphone and
speaker are tested on them bounded (a few blocks through PortAudio, checked against
the files), and the conversations below the device seam, where a WAV microphone and
a speaker on a virtual clock keep real time: the real offline cascade answering a
Piper-spoken sentence, and a barge-in. PortAudio runs in a subprocess, as ALSA reads
its device list when PortAudio starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from parley.audio import read_wav, write_wav
from parley.cli import app as cli
from parley.client.devices import BufferSpeaker, WavFileSource
from parley.client.local import run_local
from parley.events import Role
from parley.testing.conformance import REPLY, conformance_engine
from parley.testing.fakes import silence, tone
from speech import normalise, speak_16k

SENTENCE = "I would like to book a table for two people tonight."
ROOT = Path(__file__).resolve().parents[1]


def alsa_config(tmp: Path, mic_raw: Path) -> Path:
    conf = tmp / "asoundrc"
    conf.write_text(
        textwrap.dedent(
            f"""
            pcm.parley_speaker {{
                type file
                slave.pcm "null"
                file "{tmp / "speaker.raw"}"
                format "raw"
                hint {{ show on description "Parley test speaker" }}
            }}
            pcm.parley_mic {{
                type file
                slave.pcm "null"
                file "/dev/null"
                infile "{mic_raw}"
                format "raw"
                hint {{ show on description "Parley test microphone" }}
            }}
            """
        )
    )
    return conf


DEVICE_SCRIPT = """
import asyncio, sys, numpy as np
from parley.client.devices import SoundDeviceMicrophone, SoundDeviceSpeaker, load_sounddevice

async def main():
    sd = load_sounddevice()
    names = [d["name"] for d in sd.query_devices()]
    print("devices", names)
    mic = SoundDeviceMicrophone(16000, device="parley_mic", block_ms=20)
    got = []
    async for chunk in mic.chunks():
        got.append(chunk)
        if len(got) == 10:
            break
    await mic.close()
    sys.stdout.buffer.write(b"MIC" + b"".join(got))
    sys.stdout.flush()
    speaker = SoundDeviceSpeaker(16000, device="parley_speaker", block_ms=20)
    speaker.write(bytes.fromhex(sys.argv[1]))
    while speaker.queued_ms > 0:
        await asyncio.sleep(0.001)  # the device plays on its own clock
    print("\\nplayed", speaker.played_ms)
    await speaker.close()

asyncio.run(main())
"""


def test_sounddevice_microphone_and_speaker_on_virtual_alsa_devices(tmp_path: Path) -> None:
    said = tone(500, 16000, freq=300)
    mic_raw = tmp_path / "mic.raw"
    mic_raw.write_bytes(said)
    env = {
        **os.environ,
        "ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{alsa_config(tmp_path, mic_raw)}",
        "PYTHONPATH": str(ROOT / "src"),
    }
    reply = tone(200, 16000, freq=500)
    out = subprocess.run(
        [sys.executable, "-c", DEVICE_SCRIPT, reply.hex()],
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    assert b"'parley_mic'" in out and b"'parley_speaker'" in out
    heard = out.split(b"MIC", 1)[1].split(b"\nplayed", 1)[0]
    # Through PortAudio, block by block: the first 200 ms are the file's first 200 ms.
    assert len(heard) == 10 * 640 and heard == said[: len(heard)]
    assert b"played 200.0" in out
    played = (tmp_path / "speaker.raw").read_bytes()
    start = played.find(reply[:64])
    assert start >= 0 and played[start : start + len(reply)] == reply


@pytest.mark.slow
async def test_the_offline_cascade_answers_through_the_local_device(tmp_path: Path) -> None:
    from parley.cli import _factory
    from parley.config import ParleySettings
    from parley.engines.spec import EngineKind, EngineRequest

    settings = ParleySettings()
    factory = _factory(settings)
    await factory.warmup()
    engine = factory.build(
        EngineRequest("local", EngineKind.LOCAL, "echo", "joe", "", None, 16000, "pcm16")
    )
    wav = tmp_path / "said.wav"
    write_wav(wav, silence(300, 16000) + speak_16k(SENTENCE), 16000)
    speaker = BufferSpeaker(24000, realtime=True)
    lines: list[str] = []
    conversation = await run_local(
        engine,
        WavFileSource(wav, sample_rate=16000, trailing_silence_ms=2500),
        speaker,
        duration_s=60,
        echo=lines.append,
    )
    await factory.aclose()
    user = [t.text for t in conversation.transcript if t.role is Role.USER]
    assert set(normalise(SENTENCE).split()) <= set(normalise(" ".join(user)).split()), user
    assert any(line.startswith("agent: You said:") for line in lines), lines
    played = np.frombuffer(speaker.audio, "<i2")
    assert len(played) > 24000 and np.abs(played).max() > 2000  # the reply was heard


async def test_barge_in_on_the_local_device_stops_the_speaker(tmp_path: Path) -> None:
    wav = tmp_path / "said.wav"
    # A turn, then speech again 1.5 s into the ~3 s reply.
    write_wav(wav, tone(600) + silence(1900) + tone(700) + silence(400), 16000)
    speaker = BufferSpeaker(16000, realtime=True)
    from parley.engines.spec import EngineKind, EngineRequest

    engine = conformance_engine(
        EngineRequest("local", EngineKind.LOCAL, "echo", "joe", "", None, 16000, "pcm16")
    )
    conversation = await run_local(
        engine, WavFileSource(wav, sample_rate=16000), speaker, duration_s=20, echo=print
    )
    replies = [t for t in conversation.transcript if t.role is Role.ASSISTANT]
    assert replies and replies[0].interrupted
    assert REPLY.startswith(replies[0].text) and replies[0].text != REPLY
    assert speaker.cleared_ms > 500  # the unplayed rest of the reply was dropped


@pytest.mark.slow
def test_parley_local_command(tmp_path: Path) -> None:
    wav, out = tmp_path / "said.wav", tmp_path / "reply.wav"
    write_wav(wav, silence(300, 16000) + speak_16k(SENTENCE), 16000)
    result = CliRunner().invoke(
        cli, ["local", "--wav", str(wav), "--out", str(out), "--duration", "60"]
    )
    assert result.exit_code == 0, result.output
    assert "you: I would like to book a table" in result.output.replace("\n", " ")
    assert "agent: You said:" in result.output
    pcm, rate, _ = read_wav(out)
    assert rate == 24000 and np.abs(np.frombuffer(pcm, "<i2")).max() > 2000

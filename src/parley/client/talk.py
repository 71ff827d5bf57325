"""``parley talk [URL]``: a voice conversation from the terminal.

:func:`talk` is what the CLI command calls. With no files it uses the sound card
(microphone and speaker via ``sounddevice``) until Ctrl-C or ``duration_s``; with
``input_wav`` it speaks that file instead of the microphone, and with
``output_wav`` it writes the replies to a file instead of the speaker (headless
use, demos, smoke tests against a server).

The mode follows the URL: ``api.openai.com`` (or no URL with ``mode="fast"``) is
OpenAI's Realtime API; anything else is a Parley server's ``/v1/realtime``. A bare
``http(s)://host:port`` is turned into ``ws(s)://host:port/v1/realtime``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from parley.events import ErrorEvent

from .devices import (
    AudioSink,
    AudioSource,
    BufferSpeaker,
    SoundDeviceMicrophone,
    SoundDeviceSpeaker,
    WavFileSource,
)
from .voice import (
    WIRE_SAMPLE_RATE,
    LatencyMode,
    Mode,
    ResponseInfo,
    VoiceClient,
    VoiceEngineConfig,
    VoiceMetrics,
)

__all__ = ["realtime_url", "talk"]


def realtime_url(url: str) -> str:
    """``http://host:8000`` → ``ws://host:8000/v1/realtime``; a ws(s) URL with a path is
    kept as given."""
    parts = urlsplit(url if "://" in url else f"ws://{url}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path not in ("", "/") else "/v1/realtime"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


async def talk(
    url: str | None = None,
    *,
    mode: Mode | None = None,
    api_key: str | None = None,
    model: str | None = None,
    voice: str | None = None,
    instructions: str = "",
    latency_mode: LatencyMode = "balanced",
    input_wav: str | os.PathLike[str] | None = None,
    output_wav: str | os.PathLike[str] | None = None,
    duration_s: float | None = None,
    input_device: int | str | None = None,
    output_device: int | str | None = None,
    retry_count: int = 3,
    echo: Callable[[str], object] = print,
) -> VoiceMetrics:
    """Talk to ``url`` until Ctrl-C, ``duration_s``, or (with ``input_wav``) until the
    file has been spoken and answered. Prints the transcripts through ``echo`` and
    returns the client's metrics."""
    if mode is None:
        mode = "fast" if url is None or "api.openai.com" in url else "big"
    config = VoiceEngineConfig(
        mode=mode,
        url=realtime_url(url) if url else None,
        api_key=api_key,
        model=model,
        voice=voice,
        instructions=instructions,
        latency_mode=latency_mode,
    )
    microphone: AudioSource | None = None
    speaker: AudioSink | None = None
    if input_wav is not None:
        microphone = WavFileSource(input_wav, sample_rate=WIRE_SAMPLE_RATE)
    elif input_device is not None:  # the same sounddevice microphone as `parley local`
        microphone = SoundDeviceMicrophone(WIRE_SAMPLE_RATE, device=input_device)
    if output_wav is not None:
        speaker = BufferSpeaker(WIRE_SAMPLE_RATE, path=output_wav)
    elif output_device is not None:
        speaker = SoundDeviceSpeaker(WIRE_SAMPLE_RATE, device=output_device)
    client = VoiceClient(config, microphone=microphone, speaker=speaker)
    replied = asyncio.Event()

    def on_transcript(role: str, text: str) -> None:
        if text:
            echo(f"{role}: {text}")

    def on_done(info: ResponseInfo) -> None:
        if info.latency_ms is not None:
            echo(f"  ({info.status}, first audio {info.latency_ms:.0f} ms after you stopped)")
        replied.set()

    def on_error(error: ErrorEvent) -> None:
        echo(f"! {error.code}: {error.message}")

    client.on_transcript = on_transcript
    client.on_response_done = on_done
    client.on_error = on_error
    await client.connect(retry_count=retry_count)
    try:
        client.start_listening()
        async with asyncio.timeout(duration_s):
            if input_wav is not None:
                await client.wait_until_listened()
                replied.clear()
                # The file is spoken: wait for the answer (it may already be playing).
                if client.get_metrics().responses == 0:
                    await replied.wait()
            else:
                await asyncio.Event().wait()  # until Ctrl-C (cancellation) or the timeout
    except TimeoutError:
        pass
    finally:
        await client.disconnect()
    return client.get_metrics()

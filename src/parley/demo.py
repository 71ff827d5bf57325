"""The offline demo behind ``make run`` until the server lands.

It speaks a sentence with the local TTS (Piper), transcribes the audio back with
the local STT (Whisper tiny.en), and prints both with the time each took. It needs
no keys and no network: both models ship inside Python packages.
"""

from __future__ import annotations

import asyncio
import sys
import time

from parley.audio import StreamResampler
from parley.providers.piper import PiperTTS
from parley.providers.whisper import WhisperSTT

__all__ = ["main", "run_demo"]

DEFAULT_SENTENCE = "Hello from Parley. My order number is four five six, and I would like a refund."


async def run_demo(sentence: str = DEFAULT_SENTENCE) -> tuple[str, str]:
    """Speak ``sentence`` and transcribe it back; returns (spoken, heard)."""
    tts = PiperTTS()
    stt = WhisperSTT()
    print(f"speaking : {sentence}", flush=True)
    started = time.perf_counter()
    first_chunk_ms: float | None = None
    resampler = StreamResampler(tts.sample_rate, stt.sample_rate)
    parts: list[bytes] = []
    async for chunk in tts.synthesize(sentence):
        if first_chunk_ms is None:
            first_chunk_ms = (time.perf_counter() - started) * 1000
        parts.append(resampler.process(chunk))
    parts.append(resampler.flush())
    audio = b"".join(parts)
    synth_ms = (time.perf_counter() - started) * 1000
    seconds = len(audio) / 2 / stt.sample_rate
    print(
        f"piper    : {seconds:.2f} s of audio in {synth_ms:.0f} ms "
        f"(first chunk after {first_chunk_ms or 0:.0f} ms)",
        flush=True,
    )
    started = time.perf_counter()
    transcript = await stt.transcribe(audio)
    stt_ms = (time.perf_counter() - started) * 1000
    print(f"whisper  : {transcript.text.strip()}  ({stt_ms:.0f} ms, first call includes warm-up)")
    return sentence, transcript.text.strip()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    asyncio.run(run_demo(" ".join(args) if args else DEFAULT_SENTENCE))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Shared test helpers: real speech made with Piper, cached for the test session.

``speak(text)`` returns Piper's PCM16 at 22,050 Hz; ``speak_16k(text)`` the same
resampled to 16 kHz (what Silero and Whisper take). Both are cached per process,
and the Piper voice itself loads once through the model registry.

Run as a script to print the offline stack's measured figures as JSON lines:

    .venv/bin/python tests/speech.py
"""

from __future__ import annotations

import functools
import re

import numpy as np
import soxr

from parley.providers.piper import PiperTTS

__all__ = [
    "noise_16k",
    "normalise",
    "silence_16k",
    "speak",
    "speak_16k",
    "tts",
    "words_missed",
]


@functools.cache
def tts() -> PiperTTS:
    # No sampling noise: the same text gives the same audio in every run, so a test
    # that passes once passes always.
    return PiperTTS(noise_scale=0.0, noise_w_scale=0.0)


@functools.cache
def speak(text: str) -> tuple[bytes, int]:
    """``text`` spoken by the bundled Piper voice: (PCM16 mono, sample rate)."""
    voice = tts()
    return voice.synthesize_blocking(text), voice.sample_rate


@functools.cache
def speak_16k(text: str) -> bytes:
    """``text`` spoken by Piper, as PCM16 mono at 16 kHz."""
    pcm, rate = speak(text)
    samples = np.frombuffer(pcm, dtype="<i2")
    return bytes(soxr.resample(samples, rate, 16000).astype("<i2").tobytes())


def silence_16k(seconds: float) -> bytes:
    return bytes(2 * int(16000 * seconds))


def noise_16k(seconds: float, *, dbfs: float = -40.0, seed: int = 1) -> bytes:
    """Gaussian white noise at an RMS of ``dbfs``."""
    rng = np.random.default_rng(seed)
    rms = 32768.0 * 10 ** (dbfs / 20)
    samples = rng.normal(0.0, rms, int(16000 * seconds))
    return bytes(np.clip(samples, -32768, 32767).astype("<i2").tobytes())


def normalise(text: str) -> str:
    """Lowercase words without punctuation, for comparing transcripts."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def words_missed(expected: str, heard: str) -> int:
    """Word edits (substitutions, insertions, deletions) between ``expected`` and the
    closest run of words in ``heard`` — for audio recognised twice (Piper → phone line →
    Whisper), where a one-word slip such as "a" → "the" is the recogniser's, not ours."""
    want, got = normalise(expected).split(), normalise(heard).split()
    # Edit distance of `want` against any substring of `got` (free start and end in got).
    prev = [0] * (len(got) + 1)
    for i, w in enumerate(want, 1):
        cur = [i] + [0] * len(got)
        for j, g in enumerate(got, 1):
            cur[j] = min(prev[j - 1] + (w != g), prev[j] + 1, cur[j - 1] + 1)
        prev = cur
    return min(prev)


def _measure() -> None:  # pragma: no cover - a measuring script, not a test
    import asyncio
    import json
    import statistics
    import time

    from parley.providers.silero import SileroVAD
    from parley.providers.whisper import WhisperSTT

    async def main() -> None:
        stt, voice, vad = WhisperSTT(), PiperTTS(), SileroVAD()
        t0 = time.perf_counter()
        await stt.warmup()
        await voice.warmup()
        await vad.warmup()
        print(json.dumps({"warmup_all_s": round(time.perf_counter() - t0, 3)}))

        # Whisper: median of 5 warm runs per utterance.
        utterances = [
            "Hello there, how are you?",
            "I would like to book a table for two people tonight.",
            "My phone number is five five five, one two three, four five six seven.",
            "Could you please tell me when the next train to Boston leaves the station,"
            " and which platform it departs from?",
        ]
        for text in utterances:
            pcm = speak_16k(text)
            times = []
            result = ""
            for _ in range(5):
                t = time.perf_counter()
                result = (await stt.transcribe(pcm)).text
                times.append(time.perf_counter() - t)
            print(
                json.dumps(
                    {
                        "whisper_audio_s": round(len(pcm) / 32000, 2),
                        "latency_ms_median": round(1000 * statistics.median(times)),
                        "latency_ms_min": round(1000 * min(times)),
                        "exact": normalise(result) == normalise(text),
                    }
                )
            )

        # Piper: first chunk of a short clause, and the real-time factor of a longer text.
        firsts = []
        for _ in range(5):
            t = time.perf_counter()
            async for _chunk in voice.synthesize("Sure, one moment."):
                firsts.append(time.perf_counter() - t)
                break
        text = (
            "Thanks for calling. Your order shipped yesterday and should arrive on Friday."
            " Is there anything else I can help you with today?"
        )
        rtfs, first_long = [], []
        for _ in range(3):
            t = time.perf_counter()
            total = 0
            first = 0.0
            async for chunk in voice.synthesize(text):
                if not total:
                    first = time.perf_counter() - t
                total += len(chunk)
            rtfs.append((time.perf_counter() - t) / (total / 2 / voice.sample_rate))
            first_long.append(first)
        print(
            json.dumps(
                {
                    "piper_first_chunk_short_clause_ms_median": round(
                        1000 * statistics.median(firsts)
                    ),
                    "piper_first_chunk_long_text_ms_median": round(
                        1000 * statistics.median(first_long)
                    ),
                    "piper_rtf_median": round(statistics.median(rtfs), 3),
                    "piper_audio_s": round(total / 2 / voice.sample_rate, 2),
                }
            )
        )

        # Silero: per-frame cost over 10 s of speech, one stream, on this thread.
        stream = vad.stream()
        pcm = speak_16k(utterances[-1])
        frames = [
            pcm[i : i + stream.frame_bytes]
            for i in range(0, len(pcm) - stream.frame_bytes + 1, stream.frame_bytes)
        ]
        t = time.perf_counter()
        n = 0
        while n < 300:
            for frame in frames:
                stream.probability(frame)
                n += 1
        per_frame = (time.perf_counter() - t) / n
        print(json.dumps({"silero_us_per_32ms_frame": round(per_frame * 1e6), "frames": n}))

    asyncio.run(main())


if __name__ == "__main__":
    _measure()

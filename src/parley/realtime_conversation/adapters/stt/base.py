"""The base class the document offers for custom STT engines (``BaseSTTEngine``).

Subclassing is optional: any object with ``transcribe(audio, language)`` and
``model_loaded`` is an :class:`~parley.realtime_conversation.core.interfaces.STTEngine`
(the document's ``MockSTTEngine`` subclasses nothing).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from parley.realtime_conversation.core.data import AudioData, TranscriptionResult

__all__ = ["BaseSTTEngine"]


class BaseSTTEngine(ABC):
    """Implement ``transcribe``; ``model_loaded`` is True unless you say otherwise."""

    @abstractmethod
    async def transcribe(
        self, audio: AudioData, language: str | None = None
    ) -> TranscriptionResult | None:
        """What ``audio`` says, or None when nothing was heard."""

    @property
    def model_loaded(self) -> bool:
        return True

"""Framework and service adapters of the document's library: WebSocket frameworks,
STT and TTS engines, configuration providers."""

from __future__ import annotations

__all__: list[str] = []

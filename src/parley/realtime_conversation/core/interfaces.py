"""The document's protocol definitions (seed 003), as thin types over Parley's core.

The "Real-time WebSocket Conversation Library" document describes engines by
Python protocols: :class:`STTEngine` (``transcribe(audio, language)``,
``model_loaded``), :class:`TTSEngine` (``synthesize(text, voice_config)``), a
:class:`WebSocketAdapter` a user subclasses (``receive_audio``/``send_audio``),
and a middleware chain of ``process(context, next_middleware)``. Here they are
exactly that shape, and :class:`~parley.realtime_conversation.ConversationEngine`
adapts each onto Parley's own seams (``parley.providers.seams``: ``STT``, ``TTS``,
``VAD``, ``LLM``; ``parley.conversation.middleware``) so every conversation runs on
Parley's cascade engine and ``Conversation`` — there is no second pipeline.

Two protocols the document uses but never shows are Parley's choice:

- :class:`PauseDetector` hands the cascade a Parley ``VAD`` and the turn-taking
  settings (``parley.turns.TurnConfig``) it implies;
- :class:`ResponseGenerator` answers one turn: ``generate_response(text, context)``.

:class:`ConversationContext` *is* a :class:`~parley.conversation.MiddlewareContext`
(``text``, ``metadata``, ``permissions``, ``token`` …) with the document's
``transcription`` and ``response_text``, so Parley's own middleware
(``TokenAuthMiddleware``, ``PIIRedactionMiddleware``, …) runs in the same chain.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, runtime_checkable

from parley.audio.format import AudioFormat
from parley.conversation.middleware import MiddlewareContext
from parley.events import ErrorEvent, Event
from parley.providers.seams import VAD, Message
from parley.realtime_conversation.core.adapter_stream import AdapterStream
from parley.realtime_conversation.core.data import AudioData, SynthesisResult, TranscriptionResult
from parley.transports.platform import PlatformStream
from parley.turns import TurnConfig

__all__ = [
    "AudioData",
    "ConversationContext",
    "ConversationMiddleware",
    "NextMiddleware",
    "PauseDetector",
    "ResponseGenerator",
    "STTEngine",
    "SynthesisResult",
    "TTSEngine",
    "TranscriptionResult",
    "WebSocketAdapter",
]


@runtime_checkable
class STTEngine(Protocol):
    """The document's STT protocol."""

    async def transcribe(
        self, audio: AudioData, language: str | None = None
    ) -> TranscriptionResult | None: ...

    @property
    def model_loaded(self) -> bool: ...


@runtime_checkable
class TTSEngine(Protocol):
    """The document's TTS protocol."""

    async def synthesize(
        self, text: str, voice_config: dict[str, Any]
    ) -> SynthesisResult | None: ...


@runtime_checkable
class PauseDetector(Protocol):
    """Voice activity and where a turn ends: a Parley ``VAD`` (16 kHz, the STT's rate)
    and the :class:`~parley.turns.TurnConfig` its settings imply."""

    @property
    def vad(self) -> VAD: ...

    def turn_config(self) -> TurnConfig: ...


@dataclass(slots=True)
class ConversationContext(MiddlewareContext):
    """One turn through the middleware chain (the document's ``ConversationContext``).

    ``text`` starts as the transcription's text and is what the response generator
    answers (a middleware may change it); ``response_text`` is set by the generator
    at the end of the chain, so a middleware reads it after ``await next_middleware``.
    ``metadata`` travels with the turn; ``permissions`` belong to the conversation.
    """

    transcription: TranscriptionResult | None = None
    response_text: str = ""
    turn_index: int = 0
    history: tuple[Message, ...] = ()  # the conversation so far, oldest first

    @property
    def session_id(self) -> str:
        return self.conversation_id


#: ``await next_middleware(context)``: the rest of the chain.
NextMiddleware: TypeAlias = Callable[[ConversationContext], Awaitable[ConversationContext]]


@runtime_checkable
class ConversationMiddleware(Protocol):
    """The document's middleware: ``process(context, next_middleware) -> context``.

    Subclass it (as the document does) or write any class with that method.
    """

    async def process(
        self, context: ConversationContext, next_middleware: NextMiddleware
    ) -> ConversationContext: ...


@runtime_checkable
class ResponseGenerator(Protocol):
    """Answers one turn: the user's ``text`` → the reply (``None`` or ``""``: no reply)."""

    async def generate_response(self, text: str, context: ConversationContext) -> str | None: ...


class WebSocketAdapter(ABC):
    """Base of the document's framework adapters: subclass it and implement
    ``receive_audio`` (``None`` once the peer has gone) and ``send_audio``.

    ``sample_rate``/``channels`` say what the adapter's :class:`AudioData` carries;
    ``None`` takes the engine's ``audio`` settings (PCM16 16 kHz mono by default).
    ``token`` and ``user_id`` reach the middleware (``context.token``). Everything else
    has a default: ``send_json`` has nowhere to send, ``on_event`` sends each error as
    ``{"type": "error", "code": …, "message": …}``, ``close`` does nothing.
    """

    sample_rate: int | None = None
    channels: int | None = None
    token: str | None = None
    user_id: str | None = None

    @abstractmethod
    async def receive_audio(self) -> AudioData | None:
        """The next chunk of the caller's audio, or ``None`` when the caller hung up."""

    @abstractmethod
    async def send_audio(self, audio: AudioData) -> None:
        """Reply audio, in this adapter's format."""

    async def send_json(self, message: Mapping[str, Any]) -> None:
        """A control message for the peer; this base has no channel for it."""
        return

    async def on_event(self, event: Event) -> None:
        """Every event of the conversation (``parley.events``), in order."""
        if isinstance(event, ErrorEvent):
            await self.send_json({"type": "error", "code": event.code, "message": event.message})

    async def close(self) -> None:
        """The conversation is over."""
        return

    def call_stream(self, audio: AudioFormat) -> PlatformStream:
        """This adapter as the call stream a Parley conversation runs over; ``audio``
        is the engine's default format. Framework adapters return their protocol's
        stream; this base wraps ``receive_audio``/``send_audio``."""
        return AdapterStream(self, audio)

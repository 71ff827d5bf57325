"""The middleware pipeline, and the document's engines on Parley's provider seams.

A conversation of :class:`~parley.realtime_conversation.ConversationEngine` runs on
Parley's :class:`~parley.engines.cascade.CascadeEngine`; this module is what plugs
the document's pieces into it:

- :class:`ProtocolSTT` is Parley's ``STT`` seam over a document ``STTEngine``
  (PCM16 16 kHz → ``AudioData`` → ``TranscriptionResult`` → ``Transcript``);
- :class:`ProtocolTTS` is Parley's ``TTS`` seam over a document ``TTSEngine`` (the
  ``SynthesisResult`` converted once to the stream's rate, so the conversation
  passes it through);
- :class:`TurnPipeline` is the document's middleware chain, run by Parley's
  :class:`~parley.conversation.middleware.MiddlewareChain` (its error policies:
  a ``ParleyError`` refuses the turn, another exception skips that middleware for
  the turn or, with ``on_error="strict"``, fails it) with the response generator
  as the last link. It is the cascade's *request hook* (the engines' middleware
  seam, :mod:`parley.engines.text_hooks`): the user's words come in, the chain
  runs once around the generator — so a middleware sees
  ``context.transcription`` before ``await next_middleware`` and
  ``result.response_text`` after it, as the document shows — and the words go on
  to the cascade's ``LLM`` seat, which is the same pipeline speaking the reply the
  chain produced. A refusal is therefore a *middleware* failure of the turn (an
  ``ErrorEvent``, the apology), and the reply is cut into clauses and spoken by
  the TTS like any model's.

Errors from user code (an engine, a generator) become ``ProviderError`` at this
boundary, naming the engine, so a failing turn is reported and apologised for and
the call goes on.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from parley.audio.format import AudioFormat
from parley.audio.transcode import Transcoder
from parley.conversation.middleware import (
    Middleware,
    MiddlewareChain,
    MiddlewareContext,
    MiddlewareError,
    Next,
    OnError,
    SkipReporter,
)
from parley.errors import ParleyError, ProviderError
from parley.events import Role
from parley.providers.seams import LLMChunk, Message, ToolSpec, Transcript
from parley.realtime_conversation.core.data import AudioData, TranscriptionResult
from parley.realtime_conversation.core.interfaces import (
    ConversationContext,
    ConversationMiddleware,
    ResponseGenerator,
    STTEngine,
    TTSEngine,
)

__all__ = ["ProtocolSTT", "ProtocolTTS", "TurnPipeline"]

_K = TypeVar("_K")
_V = TypeVar("_V")
_KEEP = 8  # transcriptions / replies kept between the two hooks of a turn


def _name(obj: object) -> str:
    return type(obj).__name__


def _put(store: OrderedDict[_K, _V], key: _K, value: _V) -> None:
    store[key] = value
    store.move_to_end(key)
    while len(store) > _KEEP:  # a superseded turn never collects its entry
        store.popitem(last=False)


class ProtocolSTT:
    """Parley's ``STT`` over a document ``STTEngine``; ``on_result`` sees each result."""

    def __init__(
        self,
        engine: STTEngine,
        *,
        on_result: Callable[[TranscriptionResult], None] | None = None,
        sample_rate: int = 16000,
    ) -> None:
        self.engine = engine
        self._on_result = on_result
        self._rate = sample_rate

    @property
    def sample_rate(self) -> int:
        return self._rate

    async def transcribe(self, pcm: bytes) -> Transcript:
        duration = len(pcm) / (2 * self._rate)
        try:
            result = await self.engine.transcribe(AudioData(pcm, self._rate), None)
        except ParleyError:
            raise
        except Exception as exc:  # the user-code boundary: a failure is typed, never raw
            raise ProviderError(f"{exc}", provider=_name(self.engine)) from exc
        if result is None:
            return Transcript("", language="", duration_s=duration)
        if self._on_result is not None:
            self._on_result(result)
        return Transcript(result.text, language=result.language or "", duration_s=duration)


class ProtocolTTS:
    """Parley's ``TTS`` over a document ``TTSEngine``: each text is one
    ``synthesize(text, voice_config)``, its audio converted to ``sample_rate`` mono."""

    def __init__(
        self, engine: TTSEngine, *, sample_rate: int, voice_config: Mapping[str, Any] | None = None
    ) -> None:
        self.engine = engine
        self._rate = sample_rate
        self._voice = dict(voice_config or {})

    @property
    def sample_rate(self) -> int:
        return self._rate

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        try:
            result = await self.engine.synthesize(text, dict(self._voice))
        except ParleyError:
            raise
        except Exception as exc:  # the user-code boundary
            raise ProviderError(f"{exc}", provider=_name(self.engine)) from exc
        if result is None or not result.audio.data:
            return
        audio = result.audio
        if audio.sample_rate == self._rate and audio.channels == 1:
            yield audio.data
            return
        # One conversion per clause (the cascade hands over a clause at a time).
        src = AudioFormat("pcm16", audio.sample_rate, audio.channels)
        transcoder = Transcoder(src, AudioFormat("pcm16", self._rate, 1))
        yield transcoder.process(audio.data) + transcoder.flush()


class _Generate:
    """The chain's last link: the response generator answers ``context.text``."""

    def __init__(self, generator: ResponseGenerator) -> None:
        self.generator = generator

    def __repr__(self) -> str:
        return _name(self.generator)

    async def process(self, context: MiddlewareContext, next: Next) -> MiddlewareContext:
        ctx = cast(ConversationContext, context)  # the pipeline made it
        try:
            reply = await self.generator.generate_response(ctx.text, ctx)
        except ParleyError:
            raise
        except Exception as exc:  # the user-code boundary
            raise ProviderError(
                f"response generator failed: {exc}", provider=_name(self.generator)
            ) from exc
        ctx.response_text = reply or ""
        return await next(ctx)


class TurnPipeline:
    """One conversation's middleware chain around its response generator: the
    cascade's request hook (:meth:`request`) and its ``LLM`` seat (:meth:`stream`).
    See the module docstring."""

    def __init__(
        self,
        middleware: Sequence[tuple[ConversationMiddleware | Middleware, OnError]],
        generator: ResponseGenerator,
        *,
        conversation_id: str,
        user_id: str | None = None,
        token: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        history: Callable[[], Sequence[Message]] | None = None,
        on_skip: SkipReporter | None = None,
    ) -> None:
        # A document middleware is a Parley Middleware at run time: the chain hands it
        # a ConversationContext (a MiddlewareContext) and its next returns one.
        links: list[Middleware] = [cast(Middleware, m) for m, _ in middleware]
        links.append(_Generate(generator))
        policies: list[OnError] = [p for _, p in middleware]
        policies.append("strict")  # the generator's failures are ProviderErrors anyway
        self._chain = MiddlewareChain(links, policies=policies, on_skip=on_skip)
        self.conversation_id = conversation_id
        self.user_id = user_id
        self.token = token
        self.metadata = dict(metadata or {})
        self.permissions: set[str] = set()
        self.turns = 0
        self._history = history
        self._heard: OrderedDict[str, TranscriptionResult] = OrderedDict()
        self._replies: OrderedDict[str, str] = OrderedDict()

    def heard(self, result: TranscriptionResult) -> None:
        """The STT's result, for the turn whose text it is (``context.transcription``)."""
        _put(self._heard, result.text.strip(), result)

    def context_for(self, text: str) -> ConversationContext:
        self.turns += 1
        transcription = self._heard.pop(text, None) or TranscriptionResult(text=text)
        return ConversationContext(
            text=text,
            direction="request",
            conversation_id=self.conversation_id,
            user_id=self.user_id,
            metadata=dict(self.metadata),
            permissions=self.permissions,
            token=self.token,
            transcription=transcription,
            turn_index=self.turns,
            history=tuple(self._history()) if self._history is not None else (),
        )

    async def request(self, text: str) -> str:
        """The request hook: run the chain for the user's ``text``; returns the text
        the reply answers ("" when the chain produced no reply: the turn is silent)."""
        result = await self._chain(self.context_for(text))
        if not isinstance(result, ConversationContext):  # a user middleware's return value
            raise MiddlewareError(
                f"a middleware returned a {type(result).__name__}, not the ConversationContext"
            )
        said, reply = result.text.strip(), " ".join(result.response_text.split())
        if not said or not reply:
            return ""
        _put(self._replies, said, reply)
        return said

    async def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LLMChunk]:
        """The ``LLM`` seat: the reply the chain produced for the last user message."""
        said = next((m.content for m in reversed(messages) if m.role is Role.USER), "")
        reply = self._replies.pop(said.strip(), None)
        if reply is None:  # the request hook runs before every reply; never without it
            raise ProviderError("no reply was prepared for this turn", provider="TurnPipeline")
        yield reply

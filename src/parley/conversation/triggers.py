"""Context triggers: when the conversation itself asks for the business's data.

Three kinds (:class:`TriggerType`), registered with ``@app.context_trigger``:

- ``SEMANTIC`` (``keywords=[...]``): fires when a final transcript — the user's,
  and by default also the agent's — touches the topic. Words are matched on their
  Snowball (Porter 2) English stems, so "refunds", "refunded" and "refunding" all
  match the keyword "refund"; a keyword of several words matches those stems in a
  row. An optional :class:`Embedder` adds similarity matching (cosine of sentence
  embeddings ≥ ``similarity_threshold``).
  :class:`parley.providers.minilm.MiniLMEmbedder` is all-MiniLM-L6-v2 run in
  numpy (no PyTorch; the ``embeddings`` extra plus the weights package).
  Handler: ``async (session_id, detected: list[str]) -> dict | None``.
- ``PERIODIC`` (``interval_seconds=...``): every interval while the call is live.
  Handler: ``async (session_id) -> dict | None``.
- ``EVENT`` (``event="user_authenticated"``): fired by the app
  (``await conversation.fire("user_authenticated", data)``) or over REST
  (``POST /conversations/{id}/events``). Handler: ``async (session_id, data) -> dict | None``.

What a handler returns is injected under the trigger's ``key`` (the handler's
name by default); ``None`` injects nothing. Handlers are user code: one that
raises is logged and the call goes on. Semantic and periodic handlers run as
tasks of their own, so a slow database never holds up the conversation's events.

:class:`TriggerRunner` runs one call's triggers and providers against its
:class:`~parley.conversation.context.ContextManager`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import snowballstemmer  # type: ignore[import-untyped]  # ships no type information

from parley.conversation.context import ContextManager, ContextProvider, InjectResult, render
from parley.errors import ConfigError
from parley.events import (
    Event,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    Role,
    TranscriptFinal,
)
from parley.providers.models import run_blocking
from parley.tasks import cancel_and_wait

__all__ = [
    "ContextTrigger",
    "Embedder",
    "KeywordMatcher",
    "TriggerHandler",
    "TriggerRunner",
    "TriggerType",
    "stem_words",
]

log = logging.getLogger("parley.context")

TriggerHandler = Callable[..., Awaitable[Mapping[str, Any] | None]]

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


class _Stemmers(threading.local):
    """One Snowball stemmer per thread: a stemmer keeps its working string and cursor
    on the instance, so one shared by two threads garbles stems or raises IndexError
    (the loop's triggers and an analytics processor in the model executor stem at the
    same time). ``threading.local`` runs ``__init__`` once in each thread."""

    def __init__(self) -> None:
        self.english: Any = snowballstemmer.stemmer("english")


_stemmers = _Stemmers()


class TriggerType(StrEnum):
    SEMANTIC = "semantic"
    PERIODIC = "periodic"
    EVENT = "event"


def stem_words(text: str) -> list[str]:
    """Lower-cased Snowball English stems of the words of ``text``."""
    words = _WORD.findall(text.lower())
    return list(_stemmers.english.stemWords(words)) if words else []


class KeywordMatcher:
    """Which keywords a text touches, matched on word stems (see the module docstring)."""

    def __init__(self, keywords: Sequence[str]) -> None:
        self._phrases: list[tuple[str, tuple[str, ...]]] = []
        for kw in keywords:
            stems = tuple(stem_words(kw))
            if not stems:
                raise ConfigError(f"keyword {kw!r} has no words", field="keywords")
            self._phrases.append((kw, stems))

    def match(self, text: str) -> list[str]:
        stems = stem_words(text)
        if not stems:
            return []
        single = set(stems)
        found: list[str] = []
        for kw, phrase in self._phrases:
            if len(phrase) == 1:
                if phrase[0] in single:
                    found.append(kw)
            elif any(
                tuple(stems[i : i + len(phrase)]) == phrase
                for i in range(len(stems) - len(phrase) + 1)
            ):
                found.append(kw)
        return found


@runtime_checkable
class Embedder(Protocol):
    """Sentence embeddings for similarity matching; called in the model executor."""

    def embed(self, texts: Sequence[str]) -> Sequence[Sequence[float]]: ...


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


@dataclass(slots=True)
class ContextTrigger:
    """One ``@app.context_trigger`` registration (validated when made).

    Also the base class of an application's own triggers, given to
    ``Parley(context_triggers=[OrderContextTrigger(), …])`` (seed 000)::

        class OrderContextTrigger(ContextTrigger):
            def __init__(self) -> None:
                super().__init__(TriggerType.SEMANTIC, self.orders, keywords=["order"])

            async def orders(self, session_id: str, detected: list[str]) -> dict:
                return {"last_order": "#4521"}
    """

    type: TriggerType
    handler: TriggerHandler
    keywords: tuple[str, ...] = ()
    interval_seconds: float | None = None
    event: str | None = None
    key: str = ""
    roles: frozenset[Role] = frozenset({Role.USER, Role.ASSISTANT})
    embedder: Embedder | None = None
    # 0.5 with MiniLM: "I want my money back" scores 0.62 against "refund", opening
    # hours and weather 0.02–0.05 (tests/test_minilm.py).
    similarity_threshold: float = 0.5
    cooldown_seconds: float = 0.0
    matcher: KeywordMatcher | None = field(default=None, init=False)
    _vectors: Sequence[Sequence[float]] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not self.key:
            self.key = getattr(self.handler, "__name__", self.type.value)
        if self.type is TriggerType.SEMANTIC:
            if not self.keywords:
                raise ConfigError("a SEMANTIC trigger needs keywords=[...]", field="keywords")
            self.matcher = KeywordMatcher(self.keywords)
            if not 0.0 < self.similarity_threshold <= 1.0:
                raise ConfigError(
                    "similarity_threshold must be in (0, 1]", field="similarity_threshold"
                )
        elif self.type is TriggerType.PERIODIC:
            if self.interval_seconds is None or self.interval_seconds <= 0:
                raise ConfigError(
                    "a PERIODIC trigger needs interval_seconds > 0", field="interval_seconds"
                )
        elif not self.event:
            raise ConfigError('an EVENT trigger needs event="name"', field="event")
        if self.cooldown_seconds < 0:
            raise ConfigError("cooldown_seconds must not be negative", field="cooldown_seconds")

    async def detect(self, text: str) -> list[str]:
        """The keywords ``text`` touches (stems, then embeddings when configured)."""
        assert self.matcher is not None
        found = self.matcher.match(text)
        embedder = self.embedder
        if embedder is None or len(found) == len(self.keywords):
            return found
        if self._vectors is None:
            self._vectors = await run_blocking(embedder.embed, list(self.keywords))
        (vector,) = await run_blocking(embedder.embed, [text])
        for kw, kv in zip(self.keywords, self._vectors, strict=True):
            if kw not in found and _cosine(vector, kv) >= self.similarity_threshold:
                found.append(kw)
        return found


@dataclass(slots=True)
class TriggerRunner:
    """One call's triggers and providers, feeding its :class:`ContextManager`.

    ``start()`` at conversation start (runs the providers), ``observe(event)`` for
    each engine event, ``fire(event, data)`` for EVENT triggers, ``close()`` at the end.
    """

    session_id: str
    manager: ContextManager
    triggers: Sequence[ContextTrigger] = ()
    providers: Sequence[ContextProvider] = ()
    user_id: str | None = None
    fired: dict[str, int] = field(default_factory=dict, init=False)  # key → times fired
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _last: dict[str, float] = field(default_factory=dict, init=False)
    _semantic: list[ContextTrigger] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._semantic = [t for t in self.triggers if t.type is TriggerType.SEMANTIC]

    async def start(self) -> None:
        for provider in self.providers:
            await self._provide(provider)
            self._spawn(self._refresh(provider))
        for trigger in self.triggers:
            if trigger.type is TriggerType.PERIODIC:
                self._spawn(self._periodic(trigger))

    async def observe(self, event: Event) -> None:
        """Feed one engine event: transcripts for SEMANTIC triggers, reply boundaries
        for deferred injection."""
        if isinstance(event, TranscriptFinal):
            if event.role is Role.USER and event.text:
                self._match(Role.USER, event.text)
        elif isinstance(event, ResponseStarted):
            self.manager.set_responding(True)
        elif isinstance(event, ResponseDone | Interrupted):
            if self.manager.set_responding(False):
                await self.manager.flush()
            if isinstance(event, ResponseDone) and event.text:
                self._match(Role.ASSISTANT, event.text)

    async def inject(self, key: str, data: object, *, source: str = "app") -> InjectResult:
        """Blend ``data`` into this call's context (see :meth:`ContextManager.inject`)."""
        return await self.manager.inject(key, data, source=source)

    async def fire(self, event: str, data: Mapping[str, Any] | None = None) -> int:
        """Run the EVENT triggers named ``event``; how many ran."""
        payload = dict(data or {})
        ran = 0
        for trigger in self.triggers:
            if trigger.type is TriggerType.EVENT and trigger.event == event:
                ran += 1
                await self._run(trigger, (self.session_id, payload))
        return ran

    async def close(self) -> None:
        for task in list(self._tasks):
            await cancel_and_wait(task)
        await self.manager.close()

    # -- internals ---------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _match(self, role: Role, text: str) -> None:
        for trigger in self._semantic:
            if role in trigger.roles:
                self._spawn(self._semantic_check(trigger, text))

    async def _semantic_check(self, trigger: ContextTrigger, text: str) -> None:
        detected = await trigger.detect(text)
        if not detected:
            return
        now = time.monotonic()
        last = self._last.get(trigger.key)
        if last is not None and now - last < trigger.cooldown_seconds:
            return
        self._last[trigger.key] = now
        await self._run(trigger, (self.session_id, detected))

    async def _periodic(self, trigger: ContextTrigger) -> None:
        assert trigger.interval_seconds is not None
        loop = asyncio.get_running_loop()
        due = loop.time() + trigger.interval_seconds
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            due += trigger.interval_seconds  # a fixed schedule: no drift from slow handlers
            await self._run(trigger, (self.session_id,))

    async def _run(self, trigger: ContextTrigger, args: tuple[Any, ...]) -> None:
        self.fired[trigger.key] = self.fired.get(trigger.key, 0) + 1
        try:
            data = await trigger.handler(*args)
        except Exception:  # the user-code boundary: a failing handler must not drop the call
            log.exception("context trigger %s failed for %s", trigger.key, self.session_id)
            return
        if data is not None:
            await self.manager.inject(trigger.key, data, source=f"trigger:{trigger.type.value}")

    async def _provide(self, provider: ContextProvider) -> None:
        try:
            data, _ = await provider.get(self.user_id)
        except Exception:  # the user-code boundary, as for triggers
            log.exception("context provider %s failed for %s", provider.key, self.session_id)
            return
        if data is None:
            return
        current = self.manager.entries.get(provider.key)
        if current is None or current.text != render(data):  # unchanged: nothing to send
            await self.manager.inject(provider.key, data, source="provider")

    async def _refresh(self, provider: ContextProvider) -> None:
        # Called again whenever its cache expires: at most once per TTL per user.
        while True:
            await asyncio.sleep(provider.expires_in(self.user_id) or provider.ttl_seconds)
            await self._provide(provider)

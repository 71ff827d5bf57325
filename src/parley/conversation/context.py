"""Context blending: the business's data flowing into a live conversation.

A :class:`ContextManager` per call holds the injected context as named entries
(``key → text``) and hands each change to the engine (``engine.inject_context``),
which puts it in front of the model without interrupting a reply: the cascade
adds it to the system message of its next LLM call, the realtime engine sends a
system item at once. The manager enforces what the engines do not:

- **a token budget** (``ConversationConfig.max_context_size``) over all entries
  together: when a new entry does not fit, the entries updated longest ago are
  evicted; one entry larger than the whole budget is truncated to it. Tokens are
  counted with OpenAI's ``o200k_base`` BPE (the ``bpe-openai`` package ships its
  tables: ``tiktoken`` itself downloads them at run time, which this offline
  server cannot do); without that package, the documented estimate of one token
  per four characters (OpenAI's rule of thumb for English) is used. The tables
  cost ~130 MB of RSS, so a manager's default counter loads them at the first
  injection (off the event loop), not at import or start: a server whose calls
  never get context never holds them.
- **a time window** (``context_window_minutes``): an entry not refreshed within
  it expires.
- **newest wins**: a new value for a key replaces the older one.
- **when it goes** (``enable_async_injection``): on, every change goes to the
  engine at once, also while a reply is streaming; off, a change made during a
  reply waits until the reply ends (or is cut).

An evicted or expired entry is withdrawn by overwriting its key with
:data:`EXPIRED_TEXT` (which also tells a realtime model that its earlier system
item for that key no longer holds).

:class:`ContextProvider` wraps ``@app.context_provider``: ``async (user_id) -> dict``
called at conversation start and again whenever its per-user cache expires.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from parley.errors import ConfigError
from parley.tasks import cancel_and_wait

__all__ = [
    "EXPIRED_TEXT",
    "BPETokenCounter",
    "ContextEntry",
    "ContextManager",
    "ContextProvider",
    "ContextSink",
    "DeferredTokenCounter",
    "EstimateTokenCounter",
    "InjectResult",
    "ProviderFn",
    "TokenCounter",
    "default_token_counter",
    "render",
]

log = logging.getLogger("parley.context")

#: What an evicted or expired key is overwritten with when the engine cannot remove it.
EXPIRED_TEXT = "(expired: disregard earlier values of this context)"
_TRUNCATED = " …[truncated]"

ProviderFn = Callable[[str | None], Awaitable[Mapping[str, Any] | None]]


# -- tokens ----------------------------------------------------------------------------


@runtime_checkable
class TokenCounter(Protocol):
    name: str

    def count(self, text: str) -> int: ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` of at most ``max_tokens`` tokens."""
        ...


class EstimateTokenCounter:
    """One token per four characters, rounded up: OpenAI's published rule of thumb
    for English text. Used only when no real tokenizer is installed."""

    name = "estimate-4-chars"

    def count(self, text: str) -> int:
        return math.ceil(len(text) / 4)

    def truncate(self, text: str, max_tokens: int) -> str:
        return text[: max(0, max_tokens) * 4]


class BPETokenCounter:
    """Exact counts with an OpenAI BPE (``o200k_base``: GPT-4o and the Realtime models)."""

    def __init__(self, encoding: str = "o200k_base") -> None:
        # bpe-openai 0.1 reads its bundled tables with importlib.resources.open_binary,
        # deprecated since 3.11: a warning about its code, not ours (warnings are errors).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import bpe_openai  # type: ignore[import-untyped]  # ships no type information

            self._enc: Any = bpe_openai.get_encoding(encoding)
        self.name = encoding

    def count(self, text: str) -> int:
        # encode_ordinary: text that contains "<|endoftext|>" is data, not a control token.
        return len(self._enc.encode_ordinary(text))

    def truncate(self, text: str, max_tokens: int) -> str:
        tokens = self._enc.encode_ordinary(text)
        if len(tokens) <= max_tokens:
            return text
        return str(self._enc.decode(tokens[: max(0, max_tokens)]))


_default_counter: TokenCounter | None = None
# Calls load the counter from worker threads: one of them builds it, the others wait.
_default_lock = threading.Lock()


def default_token_counter() -> TokenCounter:
    """The process-wide counter: the real BPE when installed, else the estimate."""
    global _default_counter
    with _default_lock:
        if _default_counter is None:
            try:
                _default_counter = BPETokenCounter()
            except ImportError:
                log.warning("bpe-openai is not installed: counting context tokens as chars/4")
                _default_counter = EstimateTokenCounter()
        return _default_counter


class DeferredTokenCounter:
    """:func:`default_token_counter`, loaded when first needed: a
    :class:`ContextManager` awaits :meth:`load` (a worker thread builds the tables,
    the event loop keeps serving calls) before it counts. Counting before ``load``
    builds them in place."""

    def __init__(self) -> None:
        self.name = "o200k_base (not loaded yet)"
        self._counter: TokenCounter | None = None

    @property
    def loaded(self) -> bool:
        return self._counter is not None

    async def load(self) -> TokenCounter:
        if self._counter is None:
            self._counter = await asyncio.to_thread(default_token_counter)
            self.name = self._counter.name
        return self._counter

    def _loaded(self) -> TokenCounter:
        if self._counter is None:
            self._counter = default_token_counter()
            self.name = self._counter.name
        return self._counter

    def count(self, text: str) -> int:
        return self._loaded().count(text)

    def truncate(self, text: str, max_tokens: int) -> str:
        return self._loaded().truncate(text, max_tokens)


#: Every manager's default counter (one per process, like the tables it loads).
_deferred_counter = DeferredTokenCounter()


def render(data: object) -> str:
    """How data reaches the model: text as is, anything else as compact JSON."""
    if isinstance(data, str):
        return data
    try:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return repr(data)


# -- the manager -----------------------------------------------------------------------


@runtime_checkable
class ContextSink(Protocol):
    """Where context goes: every :class:`~parley.engines.seams.Engine` is one."""

    async def inject_context(self, key: str, data: object) -> None: ...


@dataclass(slots=True)
class ContextEntry:
    key: str
    text: str
    tokens: int
    source: str
    updated_at: float  # the manager's clock (monotonic seconds)
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class InjectResult:
    """What one :meth:`ContextManager.inject` did."""

    key: str
    tokens: int
    truncated: bool
    deferred: bool  # held until the current reply ends (enable_async_injection off)
    evicted: tuple[str, ...]  # keys dropped to stay within the token budget
    latency_ms: float  # inject() called → handed to the engine (or queued, if deferred)


@dataclass(slots=True)
class ContextManager:
    """One call's injected context (see the module docstring)."""

    sink: ContextSink
    max_tokens: int = 8000
    window_seconds: float = 1800.0
    async_injection: bool = True
    counter: TokenCounter = field(default_factory=lambda: _deferred_counter)
    clock: Callable[[], float] = time.monotonic
    _entries: dict[str, ContextEntry] = field(default_factory=dict, init=False)
    _tokens: int = field(default=0, init=False)
    # Changes not yet sent to the engine: key → text, None = withdraw.
    _dirty: dict[str, str | None] = field(default_factory=dict, init=False)
    _responding: bool = field(default=False, init=False)
    _expiry: asyncio.Task[None] | None = field(default=None, init=False)
    _closed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.max_tokens <= 0:
            raise ConfigError("the context budget must be positive", field="max_context_size")
        if self.window_seconds <= 0:
            raise ConfigError("the context window must be positive", field="context_window_minutes")

    # -- reading -----------------------------------------------------------------------

    @property
    def entries(self) -> Mapping[str, ContextEntry]:
        return self._entries

    @property
    def tokens(self) -> int:
        """Tokens of all current entries together (≤ ``max_tokens``)."""
        return self._tokens

    def blended(self) -> str:
        """All current entries as the model sees them, oldest first."""
        return "\n".join(f"[{e.key}]\n{e.text}" for e in self._entries.values())

    # -- writing -----------------------------------------------------------------------

    async def inject(self, key: str, data: object, *, source: str = "app") -> InjectResult:
        """Blend ``data`` under ``key`` (replacing the older value) and send it on."""
        t0 = time.perf_counter()
        if isinstance(self.counter, DeferredTokenCounter) and not self.counter.loaded:
            await self.counter.load()  # the process's first injection (in its latency)
        if self._closed:
            raise ConfigError("the conversation has ended", field="context")
        if not key:
            raise ConfigError("a context key must not be empty", field="key")
        now = self.clock()
        expired = self._expire(now)
        text = render(data)
        tokens = self.counter.count(text)
        truncated = tokens > self.max_tokens
        if truncated:
            room = self.max_tokens - self.counter.count(_TRUNCATED)
            text = self.counter.truncate(text, room) + _TRUNCATED
            tokens = self.counter.count(text)
        old = self._entries.pop(key, None)
        if old is not None:
            self._tokens -= old.tokens
        evicted: list[str] = []
        while self._tokens + tokens > self.max_tokens and self._entries:
            oldest = next(iter(self._entries))  # dict order = update order
            self._drop(oldest)
            evicted.append(oldest)
        self._entries[key] = ContextEntry(key, text, tokens, source, now, truncated)
        self._tokens += tokens
        self._dirty[key] = text
        deferred = self._responding and not self.async_injection
        if not deferred:
            await self.flush()
        self._arm()
        return InjectResult(
            key,
            tokens,
            truncated,
            deferred,
            tuple(expired + evicted),
            (time.perf_counter() - t0) * 1000,
        )

    async def remove(self, key: str) -> bool:
        """Withdraw one entry; False if there was none."""
        if key not in self._entries:
            return False
        self._drop(key)
        if not (self._responding and not self.async_injection):
            await self.flush()
        return True

    def set_responding(self, responding: bool) -> bool:
        """The engine started (True) or ended (False) a reply; True when changes are
        waiting to be flushed (the caller then awaits :meth:`flush`)."""
        self._responding = responding
        return not responding and bool(self._dirty)

    async def flush(self) -> None:
        """Send every pending change to the engine, in order."""
        while self._dirty:
            key = next(iter(self._dirty))
            text = self._dirty.pop(key)
            await self.sink.inject_context(key, text if text is not None else EXPIRED_TEXT)

    async def close(self) -> None:
        self._closed = True
        task, self._expiry = self._expiry, None
        await cancel_and_wait(task)

    # -- budget and window -------------------------------------------------------------

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        self._tokens -= entry.tokens
        self._dirty[key] = None

    def _expire(self, now: float) -> list[str]:
        horizon = now - self.window_seconds
        gone: list[str] = []
        for key, entry in self._entries.items():  # oldest first: stop at the first fresh
            if entry.updated_at > horizon:
                break
            gone.append(key)
        for key in gone:
            self._drop(key)
        return gone

    def _arm(self) -> None:
        """Make sure one timer task per call withdraws entries as they expire."""
        if self._expiry is None or self._expiry.done():
            self._expiry = asyncio.get_running_loop().create_task(self._expire_loop())

    async def _expire_loop(self) -> None:
        while self._entries and not self._closed:
            oldest = next(iter(self._entries.values()))
            delay = oldest.updated_at + self.window_seconds - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            self._expire(self.clock())
            if not (self._responding and not self.async_injection):
                await self.flush()


# -- providers -------------------------------------------------------------------------


@dataclass(slots=True)
class ContextProvider:
    """``@app.context_provider``: per-user data, cached per user for ``ttl_seconds``."""

    fn: ProviderFn
    ttl_seconds: float = 300.0
    key: str = ""
    clock: Callable[[], float] = time.monotonic
    calls: int = field(default=0, init=False)  # how often ``fn`` ran (cache misses)
    _cache: dict[str | None, tuple[float, Mapping[str, Any] | None]] = field(
        default_factory=dict, init=False
    )

    def __post_init__(self) -> None:
        if self.ttl_seconds <= 0:
            raise ConfigError("a provider's cache TTL must be positive", field="ttl_seconds")
        if not self.key:
            self.key = getattr(self.fn, "__name__", "context")

    async def get(self, user_id: str | None) -> tuple[Mapping[str, Any] | None, bool]:
        """The user's data and whether it was fetched now (False: from the cache)."""
        now = self.clock()
        hit = self._cache.get(user_id)
        if hit is not None and now - hit[0] < self.ttl_seconds:
            return hit[1], False
        self.calls += 1
        data = await self.fn(user_id)
        self._cache[user_id] = (self.clock(), data)
        return data, True

    def expires_in(self, user_id: str | None) -> float:
        """Seconds until the user's cached data expires (0 when not cached)."""
        hit = self._cache.get(user_id)
        if hit is None:
            return 0.0
        return max(0.0, hit[0] + self.ttl_seconds - self.clock())

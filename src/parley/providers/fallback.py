"""Several hosted LLMs in one brain seat: ``OpenAIProvider``, ``AnthropicProvider`` and
:class:`FallbackLLM`, what seed 000's multi-provider example builds::

    backend = ParleyBackend(
        providers=[OpenAIProvider(api_key="..."), AnthropicProvider(api_key="...")],
        fallback_strategy="latency_based",       # or "ordered"
    )

The providers are descriptions (which API, model, key, endpoint); the LLMs they build
are Parley's own :class:`~parley.providers.openai_llm.OpenAILLM` and
:class:`~parley.providers.anthropic_llm.AnthropicLLM`. :class:`FallbackLLM` streams a
reply from one of them:

- ``"ordered"``: the first provider, and the next only when one fails;
- ``"latency_based"``: the provider whose replies began soonest (a moving average of
  the time to the first chunk; a provider not measured yet is tried first, in the
  given order, so each gets measured), and the next one when it fails.

A provider that fails is skipped for ``retry_after_s`` (it goes last). A failure is a
``ProviderError``, ``RateLimited`` or ``AuthError`` raised **before the first chunk**:
once the caller is hearing a reply, switching model mid-sentence would splice two
answers, so a later failure ends the turn as any provider failure does (the apology).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, get_args

from parley.errors import AuthError, ConfigError, ProviderError, RateLimited
from parley.providers.seams import LLM, LLMChunk, Message, ToolSpec

__all__ = [
    "AnthropicProvider",
    "ClosableLLM",
    "FallbackLLM",
    "FallbackStrategy",
    "HostedProvider",
    "OpenAIProvider",
]

log = logging.getLogger("parley.providers")

FallbackStrategy = Literal["ordered", "latency_based"]
_STRATEGIES: tuple[str, ...] = get_args(FallbackStrategy)


class ClosableLLM(LLM, Protocol):
    """An LLM holding an HTTP client (Parley's hosted ones)."""

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class OpenAIProvider:
    """An OpenAI (or OpenAI-compatible) chat model. ``base_url=None``: the SDK's own
    default (``$OPENAI_BASE_URL``, else api.openai.com); ``api_key=None``:
    ``$OPENAI_API_KEY``."""

    api_key: str | None = field(default=None, repr=False)
    model: str = "gpt-4o-mini"
    base_url: str | None = None

    @property
    def spec(self) -> str:
        return f"openai:{self.model}"

    def build(self) -> ClosableLLM:
        from parley.providers.openai_llm import OpenAILLM

        return OpenAILLM(self.model, base_url=self.base_url, api_key=self.api_key)

    def describe(self) -> str:
        where = self.base_url or os.environ.get("OPENAI_BASE_URL") or "api.openai.com"
        return f"{self.model} at {where}"


@dataclass(frozen=True, slots=True)
class AnthropicProvider:
    """An Anthropic model. ``base_url=None``: ``$ANTHROPIC_BASE_URL``, else
    api.anthropic.com; ``api_key=None``: ``$ANTHROPIC_API_KEY``."""

    api_key: str | None = field(default=None, repr=False)
    model: str = "claude-3-5-haiku-latest"
    base_url: str | None = None

    @property
    def spec(self) -> str:
        return f"anthropic:{self.model}"

    def build(self) -> ClosableLLM:
        from parley.providers.anthropic_llm import AnthropicLLM

        return AnthropicLLM(self.model, base_url=self.base_url, api_key=self.api_key)

    def describe(self) -> str:
        where = self.base_url or os.environ.get("ANTHROPIC_BASE_URL") or "api.anthropic.com"
        return f"{self.model} at {where} (Anthropic)"


HostedProvider = OpenAIProvider | AnthropicProvider


@dataclass(slots=True)
class _Seat:
    name: str
    llm: ClosableLLM
    index: int
    latency_ms: float | None = None  # moving average of the time to the first chunk
    down_until: float = 0.0


class FallbackLLM:
    """One LLM over several (see the module docstring)."""

    def __init__(
        self,
        llms: Sequence[tuple[str, ClosableLLM]],
        *,
        strategy: str = "ordered",
        retry_after_s: float = 30.0,
        smoothing: float = 0.3,
    ) -> None:
        if strategy not in _STRATEGIES:
            raise ConfigError(
                f"fallback_strategy {strategy!r} is not one Parley has: "
                f"{' or '.join(repr(s) for s in _STRATEGIES)}",
                field="fallback_strategy",
            )
        if not llms:
            raise ConfigError("providers=[...] needs at least one provider", field="providers")
        self.strategy: str = strategy
        self.retry_after_s = retry_after_s
        self.smoothing = smoothing
        self._seats = [_Seat(name, llm, i) for i, (name, llm) in enumerate(llms)]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self._seats)

    def latencies_ms(self) -> dict[str, float | None]:
        """Each provider's moving average of the time to its first chunk (None: unmeasured)."""
        return {s.name: s.latency_ms for s in self._seats}

    def order(self) -> list[str]:
        """Who is asked first for the next reply, then who next."""
        return [s.name for s in self._ranked(time.monotonic())]

    def _ranked(self, now: float) -> list[_Seat]:
        def rank(s: _Seat) -> tuple[bool, float, int]:
            down = s.down_until > now
            if self.strategy == "ordered":
                return (down, 0.0, s.index)
            return (down, -1.0 if s.latency_ms is None else s.latency_ms, s.index)

        return sorted(self._seats, key=rank)

    async def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncGenerator[LLMChunk, None]:
        failures: list[str] = []
        last: ProviderError | RateLimited | AuthError | None = None
        for seat in self._ranked(time.monotonic()):
            t0 = time.monotonic()
            chunks = seat.llm.stream(messages, tools)
            try:
                first = await anext(chunks, None)
            except (ProviderError, RateLimited, AuthError) as exc:
                seat.down_until = time.monotonic() + self.retry_after_s
                failures.append(f"{seat.name}: {exc}")
                last = exc
                log.warning("LLM %s failed (%s); trying the next provider", seat.name, exc)
                continue
            self._measured(seat, (time.monotonic() - t0) * 1000)
            if first is None:
                return
            yield first
            async for chunk in chunks:
                yield chunk
            return
        raise ProviderError(
            "every provider failed: " + "; ".join(failures),
            provider="fallback",
            retryable=isinstance(last, ProviderError) and last.retryable,
        ) from last

    def _measured(self, seat: _Seat, ms: float) -> None:
        seat.down_until = 0.0
        a = self.smoothing
        seat.latency_ms = ms if seat.latency_ms is None else (1 - a) * seat.latency_ms + a * ms

    async def aclose(self) -> None:
        """Close each provider's HTTP client."""
        for seat in self._seats:
            await seat.llm.aclose()

    @classmethod
    def of(cls, providers: Sequence[HostedProvider], strategy: str = "ordered") -> FallbackLLM:
        """The brain of ``providers=[...]``: each provider's LLM, named by its spec."""
        return cls([(p.spec, p.build()) for p in providers], strategy=strategy)

    def describe(self, providers: Sequence[HostedProvider]) -> str:
        parts = ", ".join(p.describe() for p in providers)
        return f"{self.strategy} fallback over {parts}"

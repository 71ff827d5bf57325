"""Middleware: code of the business between the caller, the model and the voice.

Three kinds, all registered on the :class:`~parley.Parley` app:

- **request middleware** transforms the user's text before the model sees it,
  with the conversation's context (``@app.request_middleware``:
  ``async (text, ctx) -> text``). The transcript keeps the caller's own words;
  only the model's input changes. Returning ``""`` skips the model's reply for
  that turn. On the realtime engine it applies to typed text (``send_text``): the
  upstream model hears spoken audio itself, so there is no text to change first.
- **response middleware** transforms the model's text before it is spoken
  (``@app.response_middleware``: ``async (text, ctx) -> text``): on the cascade
  it runs on each whole sentence (or long clause) from the sentence splitter,
  before TTS, so what is spoken, the ``TextDelta`` events, the transcript and the
  history all carry the transformed text (see :mod:`parley.engines.text_hooks`
  for how a pattern split across pieces is kept whole). On the realtime engine it
  applies to the text outputs and the audio transcripts, sentence by sentence;
  it **cannot change audio already synthesised upstream** — a card number the
  model says is heard by the caller, and only the transcript is redacted. Use the
  cascade where what is spoken must be filtered.
- **audio preprocessors** (``@app.audio_preprocessor``: ``(pcm: bytes) -> bytes``, or
  ``async`` as seed 000 writes it, then awaited per chunk) run on every inbound chunk
  after it is decoded and resampled to the engine's PCM16 mono, before VAD and STT.
  With none registered the inbound path does no extra work at all.

The chain form of the seeds, ``process(context, next)``, is the
:class:`Middleware` Protocol; ``app.add_middleware(m)`` registers one for
requests, responses or both. Order: registration order, first registered runs
first (and is outermost: it sees what the later ones did after ``next``
returns). A middleware that returns without calling ``next`` short-circuits the
rest of the chain; what it returns is the result.

When a middleware fails (the error policy, :data:`OnError`):

- a ``ParleyError`` it raises on purpose (e.g. :class:`~parley.errors.AuthError`
  from :class:`TokenAuthMiddleware`) refuses the turn: the engine reports an
  ``ErrorEvent``, the caller hears the apology, and the call goes on;
- any other exception is a bug in that middleware. With ``"skip"`` (the default)
  the middleware is left out for that turn — the rest of the chain runs on the text
  as it was before it — the failure is reported (one log line naming the call, an
  ``ErrorEvent`` with code ``middleware_error``) and the caller still gets an
  answer. With ``"strict"`` it becomes a :class:`MiddlewareError` that ends the
  turn like a refusal: nothing the middleware should have changed is said. Use
  ``strict`` for middleware that must never be bypassed (redaction, compliance):
  ``app.add_middleware(PIIRedactionMiddleware(), on_error="strict")``.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
import typing
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from parley.errors import AuthError, ConfigError, ParleyError

__all__ = [
    "AnalyticsMiddleware",
    "AsyncAudioChain",
    "AsyncAudioPreprocessor",
    "AudioPreprocessor",
    "Direction",
    "LoggingMiddleware",
    "Middleware",
    "MiddlewareChain",
    "MiddlewareContext",
    "MiddlewareError",
    "MiddlewareRegistry",
    "Next",
    "OnError",
    "Session",
    "TextMiddleware",
    "TextPipeline",
    "TextTransform",
    "TimingMiddleware",
    "TokenAuthMiddleware",
    "context_data",
]

log = logging.getLogger("parley.middleware")

Direction = Literal["request", "response"]
#: What a middleware's bug does to the turn (see the module docstring).
OnError = Literal["skip", "strict"]
#: Told of a skipped middleware: ``(middleware, exception)``.
SkipReporter = Callable[["Middleware", Exception], Awaitable[None]]


class MiddlewareError(ParleyError):
    """User middleware failed with something other than a ``ParleyError``."""

    code = "middleware_error"


@dataclass(slots=True)
class MiddlewareContext:
    """What one pass through the chain carries. Mutable: middleware edit ``text``,
    ``metadata`` and ``permissions`` in place or return a changed copy."""

    text: str
    direction: Direction = "request"
    conversation_id: str = ""
    user_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Shared by every pass of one conversation: what TokenAuthMiddleware grants stays.
    permissions: set[str] = field(default_factory=set)
    context: Mapping[str, str] = field(default_factory=dict)  # the injected context, key → text
    token: str | None = None


Next = Callable[[MiddlewareContext], Awaitable[MiddlewareContext]]


@runtime_checkable
class Middleware(Protocol):
    """The chain form: do something, ``await next(context)``, maybe do more."""

    async def process(self, context: MiddlewareContext, next: Next) -> MiddlewareContext: ...


class MiddlewareChain:
    """Middleware run in order; the end of the chain returns the context as it is.

    ``policies`` gives each middleware's :data:`OnError` (default ``"strict"``, the
    safe choice for a chain built by hand; the app's registry passes its own);
    ``on_skip`` is told of each skipped failure (the switchboard reports it).
    """

    def __init__(
        self,
        middleware: Iterable[Middleware],
        *,
        policies: Sequence[OnError] | None = None,
        on_skip: SkipReporter | None = None,
    ) -> None:
        self.middleware: tuple[Middleware, ...] = tuple(middleware)
        strict: OnError = "strict"
        self.policies: tuple[OnError, ...] = (
            tuple(policies) if policies is not None else (strict,) * len(self.middleware)
        )
        if len(self.policies) != len(self.middleware):
            raise ConfigError("one error policy per middleware", field="policies")
        self._on_skip = on_skip

    def __len__(self) -> int:
        return len(self.middleware)

    async def __call__(self, context: MiddlewareContext) -> MiddlewareContext:
        return await self._at(0, context)

    async def _at(self, index: int, context: MiddlewareContext) -> MiddlewareContext:
        if index == len(self.middleware):
            return context
        mw = self.middleware[index]
        downstream: list[MiddlewareContext] = []

        async def next_(ctx: MiddlewareContext) -> MiddlewareContext:
            result = await self._at(index + 1, ctx)
            downstream.append(result)
            return result

        skip = self.policies[index] == "skip"
        # What the middleware may change in place, as it was: a skipped one leaves no trace.
        before = (context.text, dict(context.metadata)) if skip else None
        try:
            result = await mw.process(context, next_)
        except ParleyError:
            raise  # a refusal on purpose (or a downstream one): never skipped
        except Exception as exc:  # the user-code boundary: a bug is typed, never raw
            return await self._failed(mw, exc, index, context, before, downstream)
        if not isinstance(result, MiddlewareContext):
            wrong = TypeError(f"process returned {type(result).__name__}, not a MiddlewareContext")
            return await self._failed(mw, wrong, index, context, before, downstream)
        return result

    async def _failed(
        self,
        mw: Middleware,
        exc: Exception,
        index: int,
        context: MiddlewareContext,
        before: tuple[str, dict[str, Any]] | None,
        downstream: list[MiddlewareContext],
    ) -> MiddlewareContext:
        if before is None:  # strict
            log.debug("middleware %r failed", mw, exc_info=exc)
            raise MiddlewareError(f"{type(mw).__name__} failed: {exc}") from exc
        if downstream:  # it failed after the rest of the chain ran: keep that result
            await self._report(mw, exc)
            return downstream[-1]
        return await self._skip(mw, exc, index, context, before)

    async def _skip(
        self,
        mw: Middleware,
        exc: Exception,
        index: int,
        context: MiddlewareContext,
        before: tuple[str, dict[str, Any]] | None,
    ) -> MiddlewareContext:
        await self._report(mw, exc)
        if before is not None:
            context.text, context.metadata = before[0], before[1]
        return await self._at(index + 1, context)

    async def _report(self, mw: Middleware, exc: Exception) -> None:
        log.debug("middleware %r failed; skipped for this turn", mw, exc_info=exc)
        if self._on_skip is not None:
            await self._on_skip(mw, exc)


# -- the simple decorators' form ---------------------------------------------------------

#: ``async (text, ctx) -> text`` — ``@app.request_middleware`` / ``@app.response_middleware``;
#: the second parameter may also be the context as a dict, or a :class:`Session`.
TextMiddleware = (
    Callable[[str, "MiddlewareContext"], Awaitable[str]]
    | Callable[[str, dict[str, Any]], Awaitable[str]]
    | Callable[[str, "Session"], Awaitable[str]]
)
#: ``(pcm16: bytes) -> bytes`` at the engine's input rate.
AudioPreprocessor = Callable[[bytes], bytes]
#: ``async (pcm16: bytes) -> bytes``: seed 000's form, awaited per chunk.
AsyncAudioPreprocessor = Callable[[bytes], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class Session:
    """The call as seed 000's ``response_middleware(text, session: Session)`` sees it.

    ``user_name`` is the conversation's ``user_name`` metadata, else a ``user_name``
    field of its injected context (what a context provider or trigger returned, e.g.
    ``{"user_name": "John", …}``), else None. ``context`` is the injected context as
    data: key → what was injected (parsed back from the JSON the model is given).
    """

    session_id: str
    user_id: str | None
    user_name: str | None
    metadata: Mapping[str, Any]
    context: Mapping[str, Any]

    @classmethod
    def of(cls, ctx: MiddlewareContext) -> Session:
        data = context_data(ctx.context)
        name = ctx.metadata.get("user_name")
        if not isinstance(name, str):
            name = next(
                (
                    v["user_name"]
                    for v in data.values()
                    if isinstance(v, Mapping) and isinstance(v.get("user_name"), str)
                ),
                None,
            )
        return cls(ctx.conversation_id, ctx.user_id, name, dict(ctx.metadata), data)


def context_data(context: Mapping[str, str]) -> dict[str, Any]:
    """The injected context (key → text as the model gets it) as data: JSON parsed
    back, text (or a truncated entry) as it is."""
    out: dict[str, Any] = {}
    for key, text in context.items():
        try:
            out[key] = json.loads(text)
        except ValueError:
            out[key] = text
    return out


#: What the second parameter of a text middleware function receives.
_SecondArg = Literal["ctx", "dict", "session"]


def _second_arg(fn: Callable[..., Any]) -> _SecondArg:
    """``(text, context: dict)`` gets the context as data, ``(text, session: Session)``
    a :class:`Session`, anything else (unannotated too) the :class:`MiddlewareContext`."""
    params = list(inspect.signature(fn).parameters.values())
    if len(params) < 2:
        raise ConfigError(
            f"{getattr(fn, '__name__', fn)!r} must take (text, ctx)", field="middleware"
        )
    hint = params[1].annotation
    if isinstance(hint, str):  # postponed annotations: the name is enough to decide
        head = hint.split("[", 1)[0].strip().rsplit(".", 1)[-1]
    else:
        origin = typing.get_origin(hint) or hint
        head = getattr(origin, "__name__", "")
    if head in ("dict", "Dict", "Mapping", "MutableMapping"):
        return "dict"
    if head == "Session":
        return "session"
    return "ctx"


class TextTransform:
    """A :data:`TextMiddleware` function as a chain link: it transforms, then calls next.

    Its second argument is chosen once, from the function's annotation: the
    :class:`MiddlewareContext`, the context as a ``dict`` or a :class:`Session`."""

    def __init__(self, fn: Callable[..., Awaitable[str]]) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise ConfigError(
                f"{getattr(fn, '__name__', fn)!r} must be an async function (text, ctx) -> text",
                field="middleware",
            )
        self.fn = fn
        self._arg = _second_arg(fn)

    def __repr__(self) -> str:
        return f"TextTransform({getattr(self.fn, '__name__', self.fn)!r})"

    async def process(self, context: MiddlewareContext, next: Next) -> MiddlewareContext:
        arg: object = context
        if self._arg == "dict":
            arg = context_data(context.context)
        elif self._arg == "session":
            arg = Session.of(context)
        text = await self.fn(context.text, arg)
        if not isinstance(text, str):
            raise MiddlewareError(f"{self!r} returned {type(text).__name__}, not str")
        context.text = text
        return await next(context)


class TextPipeline:
    """One conversation's request and response chains as the engines' text hooks
    (:mod:`parley.engines.text_hooks`)."""

    def __init__(
        self,
        request: Sequence[Middleware],
        response: Sequence[Middleware],
        *,
        conversation_id: str = "",
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        token: str | None = None,
        context: Callable[[], Mapping[str, str]] | None = None,
        request_policies: Sequence[OnError] | None = None,
        response_policies: Sequence[OnError] | None = None,
        on_skip: SkipReporter | None = None,
    ) -> None:
        self._request = MiddlewareChain(request, policies=request_policies, on_skip=on_skip)
        self._response = MiddlewareChain(response, policies=response_policies, on_skip=on_skip)
        self.conversation_id = conversation_id
        self.user_id = user_id
        self.metadata = dict(metadata or {})
        self.token = token
        self.permissions: set[str] = set()
        self._context = context

    @property
    def has_request(self) -> bool:
        return bool(self._request)

    @property
    def has_response(self) -> bool:
        return bool(self._response)

    def context_for(self, text: str, direction: Direction) -> MiddlewareContext:
        return MiddlewareContext(
            text=text,
            direction=direction,
            conversation_id=self.conversation_id,
            user_id=self.user_id,
            metadata=dict(self.metadata),
            permissions=self.permissions,
            context=self._context() if self._context is not None else {},
            token=self.token,
        )

    async def request(self, text: str) -> str:
        """The request hook: the user's text → what the model gets."""
        return (await self._request(self.context_for(text, "request"))).text

    async def response(self, text: str) -> str:
        """The response hook: one sentence of the model's reply → what is spoken/shown."""
        return (await self._response(self.context_for(text, "response"))).text


class MiddlewareRegistry:
    """What an app registered; builds each call's :class:`TextPipeline` and audio chain."""

    def __init__(self) -> None:
        self.request: list[Middleware] = []
        self.response: list[Middleware] = []
        # Each one's error policy; None: the app's default (settings middleware_errors).
        self._request_policy: list[OnError | None] = []
        self._response_policy: list[OnError | None] = []
        self._audio: list[tuple[Callable[..., Any], bool]] = []  # fn, per_call

    def add(
        self,
        middleware: Middleware,
        *,
        request: bool = True,
        response: bool = True,
        on_error: OnError | None = None,
    ) -> None:
        if not isinstance(middleware, Middleware):
            raise ConfigError(f"{middleware!r} has no process(context, next)", field="middleware")
        if not request and not response:
            raise ConfigError("middleware must run on requests, responses or both")
        if on_error not in (None, "skip", "strict"):
            raise ConfigError(f"on_error must be 'skip' or 'strict', not {on_error!r}")
        if request:
            self.request.append(middleware)
            self._request_policy.append(on_error)
        if response:
            self.response.append(middleware)
            self._response_policy.append(on_error)

    def add_audio(self, fn: Callable[..., Any], *, per_call: bool = False) -> None:
        """``fn(pcm) -> pcm``, or with ``per_call`` a factory ``fn(sample_rate) -> (pcm) -> pcm``
        called once per call (for filters that keep state between chunks)."""
        if per_call and inspect.iscoroutinefunction(fn):
            raise ConfigError(
                "a per_call audio preprocessor is a plain factory sample_rate -> filter "
                "(the filter it returns may be async)",
                field="audio_preprocessor",
            )
        self._audio.append((fn, per_call))

    @property
    def has_text(self) -> bool:
        return bool(self.request or self.response)

    def pipeline(
        self,
        *,
        conversation_id: str = "",
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        context: Callable[[], Mapping[str, str]] | None = None,
        default_policy: OnError = "skip",
        on_skip: SkipReporter | None = None,
    ) -> TextPipeline | None:
        """The call's text hooks, or None when no text middleware is registered."""
        if not self.has_text:
            return None
        meta = dict(metadata or {})
        token = meta.get("token")
        return TextPipeline(
            self.request,
            self.response,
            conversation_id=conversation_id,
            user_id=user_id,
            metadata=meta,
            token=token if isinstance(token, str) else None,
            context=context,
            request_policies=[p or default_policy for p in self._request_policy],
            response_policies=[p or default_policy for p in self._response_policy],
            on_skip=on_skip,
        )

    def audio_chain(self, sample_rate: int) -> AudioPreprocessor | AsyncAudioChain | None:
        """The call's audio preprocessing as one function, or None (the zero-cost path);
        an :class:`AsyncAudioChain` when a step is ``async``."""
        if not self._audio:
            return None
        steps: list[Callable[[bytes], Any]] = [
            fn(sample_rate) if per else fn for fn, per in self._audio
        ]
        if any(inspect.iscoroutinefunction(step) for step in steps):
            return AsyncAudioChain(steps)
        if len(steps) == 1:
            return steps[0]

        def chain(pcm: bytes) -> bytes:
            for step in steps:
                pcm = step(pcm)
            return pcm

        return chain


class AsyncAudioChain:
    """Audio preprocessors of which at least one is ``async`` (seed 000's form),
    awaited in order on each inbound chunk of PCM16."""

    def __init__(self, steps: Sequence[Callable[[bytes], Any]]) -> None:
        self._steps = [(step, inspect.iscoroutinefunction(step)) for step in steps]

    async def __call__(self, pcm: bytes) -> bytes:
        for step, is_async in self._steps:
            pcm = await step(pcm) if is_async else step(pcm)
            if not isinstance(pcm, bytes):
                raise MiddlewareError(
                    f"audio preprocessor {getattr(step, '__name__', step)!r} returned "
                    f"{type(pcm).__name__}, not bytes"
                )
        return pcm


# -- built-ins ---------------------------------------------------------------------------


class LoggingMiddleware:
    """Logs each pass: direction, conversation, length (the text itself only with
    ``log_text``: it may hold exactly what other middleware is there to remove)."""

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        level: int = logging.INFO,
        log_text: bool = False,
    ) -> None:
        self.logger = logger or log
        self.level = level
        self.log_text = log_text

    async def process(self, context: MiddlewareContext, next: Next) -> MiddlewareContext:
        what = f": {context.text!r}" if self.log_text else ""
        self.logger.log(
            self.level,
            "%s %s (%d chars)%s",
            context.conversation_id,
            context.direction,
            len(context.text),
            what,
        )
        try:
            return await next(context)
        except ParleyError as exc:
            self.logger.warning(
                "%s %s refused: %s", context.conversation_id, context.direction, exc
            )
            raise


class TimingMiddleware:
    """Times the rest of the chain: ``metadata["timings_ms"][name]``; passes slower than
    ``slow_ms`` are logged."""

    def __init__(self, name: str = "chain", *, slow_ms: float | None = None) -> None:
        self.name = name
        self.slow_ms = slow_ms
        self.last_ms: float | None = None

    async def process(self, context: MiddlewareContext, next: Next) -> MiddlewareContext:
        t0 = time.perf_counter()
        try:
            return await next(context)
        finally:
            ms = (time.perf_counter() - t0) * 1000
            self.last_ms = ms
            context.metadata.setdefault("timings_ms", {})[self.name] = ms
            if self.slow_ms is not None and ms > self.slow_ms:
                log.warning(
                    "%s %s middleware took %.1f ms", context.conversation_id, context.direction, ms
                )


PermissionLookup = Callable[[str], Awaitable[Iterable[str] | None]]


class TokenAuthMiddleware:
    """Token → permissions, on requests. The token is the conversation's ``token``
    metadata (browser ``start`` metadata or ``POST /conversations``); ``tokens`` is a
    mapping or an async lookup (None = unknown). An unknown or missing token, or one
    without every ``required`` permission, raises :class:`~parley.errors.AuthError`:
    the turn is refused, nothing reaches the model. Granted permissions are added to
    the conversation's ``permissions`` for later middleware and turns."""

    def __init__(
        self,
        tokens: Mapping[str, Iterable[str]] | PermissionLookup,
        *,
        required: Iterable[str] = (),
    ) -> None:
        self._tokens = tokens
        self.required = frozenset(required)

    async def _lookup(self, token: str) -> frozenset[str] | None:
        if isinstance(self._tokens, Mapping):
            perms = self._tokens.get(token)
        else:
            perms = await self._tokens(token)
        return None if perms is None else frozenset(perms)

    async def process(self, context: MiddlewareContext, next: Next) -> MiddlewareContext:
        if context.direction != "request":
            return await next(context)
        token = context.token
        if not token:
            raise AuthError("no token: this conversation is not authenticated")
        perms = await self._lookup(token)
        if perms is None:
            raise AuthError("unknown token")
        missing = self.required - perms
        if missing:
            raise AuthError(f"token lacks permission(s): {', '.join(sorted(missing))}")
        context.permissions.update(perms)
        return await next(context)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class AnalyticsMiddleware:
    """Counts passes, characters and refusals per direction and times the rest of the
    chain (the last ``window`` passes per direction). One instance serves every call:
    :meth:`snapshot` is the app-wide picture."""

    def __init__(self, *, window: int = 1000) -> None:
        self.counts: Counter[str] = Counter()
        self.latency_ms: dict[str, deque[float]] = {
            "request": deque(maxlen=window),
            "response": deque(maxlen=window),
        }

    async def process(self, context: MiddlewareContext, next: Next) -> MiddlewareContext:
        d = context.direction
        self.counts[d] += 1
        self.counts[f"{d}_chars"] += len(context.text)
        t0 = time.perf_counter()
        try:
            result = await next(context)
        except ParleyError:
            self.counts[f"{d}_errors"] += 1
            raise
        finally:
            self.latency_ms[d].append((time.perf_counter() - t0) * 1000)
        if not result.text:
            self.counts[f"{d}_emptied"] += 1
        return result

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.counts)
        for d, values in self.latency_ms.items():
            if values:
                out[f"{d}_latency_ms"] = {
                    "p50": _percentile(values, 0.5),
                    "p99": _percentile(values, 0.99),
                    "count": len(values),
                }
        return out

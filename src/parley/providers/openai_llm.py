"""An ``LLM`` on any OpenAI-compatible Chat Completions endpoint.

OpenAI itself, or Ollama, vLLM, llama.cpp's server, LM Studio …: anything that
speaks ``POST {base_url}/chat/completions`` with ``stream: true``. Text deltas are
yielded as they arrive; tool calls are assembled from their streamed argument
fragments and yielded whole once the model has finished them.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
)

from parley.errors import ConfigError, ProviderError
from parley.events import Role, ToolCall
from parley.providers.client import OwnedClient
from parley.providers.seams import LLMChunk, Message, ToolSpec

__all__ = ["OpenAILLM", "openai_client", "openai_messages", "openai_provider_error", "openai_tools"]

# Error types a server may put in a mid-stream error body that mean "try again".
_RETRYABLE_KINDS = frozenset({"server_error", "rate_limit_exceeded", "overloaded_error"})


def openai_provider_error(exc: openai.OpenAIError, provider: str = "openai") -> ProviderError:
    """Map an ``openai`` SDK error to ``ProviderError``; 408/409/429/5xx and
    connection failures are retryable, other client errors are not."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retryable = status in (408, 409, 429) or status >= 500
        return ProviderError(
            f"HTTP {status}: {exc.message}", provider=provider, retryable=retryable
        )
    if isinstance(exc, openai.APIConnectionError):  # includes timeouts
        return ProviderError(f"connection failed: {exc}", provider=provider, retryable=True)
    if isinstance(exc, openai.APIError):  # an error object inside a 200 stream
        body = exc.body if isinstance(exc.body, Mapping) else {}
        kind = body.get("type") or body.get("code")
        return ProviderError(exc.message, provider=provider, retryable=kind in _RETRYABLE_KINDS)
    return ProviderError(str(exc), provider=provider, retryable=False)


def openai_client(
    client: AsyncOpenAI | None,
    api_key: str | None,
    base_url: str | None,
    timeout: float,
    max_retries: int,
) -> AsyncOpenAI:
    """The given client, or a new one; a local server (``base_url``) needs no key."""
    if client is not None:
        return client
    key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
    if key is None:
        if base_url is None:
            raise ConfigError("set api_key or OPENAI_API_KEY", field="api_key")
        key = "unused"  # local OpenAI-compatible servers ignore the key
    return AsyncOpenAI(api_key=key, base_url=base_url, timeout=timeout, max_retries=max_retries)


def openai_messages(messages: Sequence[Message]) -> list[ChatCompletionMessageParam]:
    """Convert provider-neutral messages into Chat Completions ``messages``."""
    out: list[ChatCompletionMessageParam] = []
    for m in messages:
        if m.role is Role.SYSTEM:
            out.append({"role": "system", "content": m.content})
        elif m.role is Role.USER:
            if m.name:
                out.append({"role": "user", "content": m.content, "name": m.name})
            else:
                out.append({"role": "user", "content": m.content})
        elif m.role is Role.ASSISTANT:
            msg: ChatCompletionAssistantMessageParam = {"role": "assistant"}
            # "content" may be null only when the turn is all tool calls.
            msg["content"] = m.content if m.content or not m.tool_calls else None
            if m.tool_calls:
                msg["tool_calls"] = [_tool_call_param(tc) for tc in m.tool_calls]
            out.append(msg)
        else:
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
    return out


def _tool_call_param(tc: ToolCall) -> ChatCompletionMessageFunctionToolCallParam:
    return {
        "id": tc.call_id,
        "type": "function",
        "function": {"name": tc.name, "arguments": tc.arguments or "{}"},
    }


def openai_tools(tools: Sequence[ToolSpec]) -> list[ChatCompletionFunctionToolParam]:
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters,
            },
        }
        for t in tools
    ]


@dataclass(slots=True)
class _PartialCall:
    call_id: str = ""
    name: str = ""
    fragments: list[str] = field(default_factory=list)

    def done(self) -> ToolCall:
        return ToolCall(
            call_id=self.call_id or f"call_{uuid.uuid4().hex[:24]}",
            name=self.name,
            arguments="".join(self.fragments) or "{}",
        )


class _CallAssembler:
    """Streamed ``delta.tool_calls`` fragments → whole ``ToolCall``s.

    Fragments are keyed by their ``index``. Some servers (Ollama) reuse index 0 for
    every call of a parallel batch and tell them apart only by ``id``; a new id at a
    used index therefore closes the call that was there.
    """

    def __init__(self) -> None:
        self._open: dict[int, _PartialCall] = {}

    def feed(
        self, index: int, call_id: str | None, name: str | None, args: str | None
    ) -> list[ToolCall]:
        finished: list[ToolCall] = []
        part = self._open.get(index)
        if part is not None and call_id and part.call_id and call_id != part.call_id:
            finished.append(part.done())
            part = None
        if part is None:
            part = self._open[index] = _PartialCall()
        if call_id:
            part.call_id = call_id
        if name:
            part.name = name  # names arrive whole, in the first fragment
        if args:
            part.fragments.append(args)
        return finished

    def flush(self) -> list[ToolCall]:
        calls = [self._open[i].done() for i in sorted(self._open)]
        self._open.clear()
        return calls


class OpenAILLM(OwnedClient):
    """Streams a chat completion from an OpenAI-compatible endpoint.

    ``base_url`` is the API root including ``/v1`` (``http://localhost:11434/v1``
    for Ollama). A local server needs no key; OpenAI's key is read from
    ``OPENAI_API_KEY`` when ``api_key`` is not given. ``max_retries`` is the SDK's
    own retry of 408/409/429/5xx before a ``ProviderError`` is raised.
    """

    _client: AsyncOpenAI

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        client: AsyncOpenAI | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        extra_body: Mapping[str, Any] | None = None,
        provider: str = "openai",
    ) -> None:
        self.model = model
        self.provider = provider
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._extra_body = dict(extra_body) if extra_body else None
        self._owns_client = client is None
        self._client = openai_client(client, api_key, base_url, timeout, max_retries)
        self._is_openai = self._client.base_url.host == "api.openai.com"

    async def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncGenerator[LLMChunk, None]:
        """Yield text deltas and whole tool calls; raises ``ProviderError``.

        Closing the iterator (or cancelling its consumer) closes the HTTP stream,
        which is how a barge-in stops the model generating.
        """
        kwargs: dict[str, Any] = {}
        if tools:
            kwargs["tools"] = openai_tools(tools)
        if self._temperature is not None:
            kwargs["temperature"] = self._temperature
        if self._max_tokens is not None:
            # OpenAI's reasoning models accept only the newer name; many compatible
            # servers know only the older one.
            key = "max_completion_tokens" if self._is_openai else "max_tokens"
            kwargs[key] = self._max_tokens
        if self._extra_body:
            kwargs["extra_body"] = self._extra_body
        try:
            response = await self._client.chat.completions.create(
                model=self.model, messages=openai_messages(messages), stream=True, **kwargs
            )
        except openai.OpenAIError as exc:
            raise openai_provider_error(exc, self.provider) from exc
        calls = _CallAssembler()
        try:
            async with response:
                async for chunk in response:
                    for choice in chunk.choices:
                        if choice.index != 0:
                            continue
                        delta = choice.delta
                        if delta.content:
                            yield delta.content
                        for tc in delta.tool_calls or ():
                            fn = tc.function
                            name = fn.name if fn else None
                            args = fn.arguments if fn else None
                            for call in calls.feed(tc.index, tc.id, name, args):
                                yield call
                        if choice.finish_reason is not None:
                            for call in calls.flush():
                                yield call
                # A server that ends the stream without a finish_reason.
                for call in calls.flush():
                    yield call
        except openai.OpenAIError as exc:
            raise openai_provider_error(exc, self.provider) from exc
        except json.JSONDecodeError as exc:  # the SDK parses each SSE data line
            raise ProviderError(
                f"malformed stream chunk: {exc}", provider=self.provider, retryable=False
            ) from exc

"""An ``LLM`` on Anthropic's Messages API (``anthropic`` SDK).

The system prompt travels apart from the messages; tool calls are ``tool_use``
content blocks whose JSON input streams as ``input_json_delta`` fragments, and
tool results go back as ``tool_result`` blocks in the next user turn.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Literal

import anthropic
from anthropic import AsyncAnthropic
from anthropic.types import (
    MessageParam,
    TextBlockParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlockParam,
)

from parley.errors import ConfigError, LocalProtocolError, ProviderError
from parley.events import Role, ToolCall
from parley.providers.client import OwnedClient
from parley.providers.seams import LLMChunk, Message, ToolSpec

__all__ = [
    "AnthropicLLM",
    "anthropic_messages",
    "anthropic_provider_error",
    "anthropic_tools",
]

# Error types in an ``event: error`` (HTTP 200 stream) that mean "try again".
_RETRYABLE_KINDS = frozenset({"overloaded_error", "rate_limit_error", "api_error"})

_Block = TextBlockParam | ToolUseBlockParam | ToolResultBlockParam


def anthropic_provider_error(
    exc: anthropic.AnthropicError, provider: str = "anthropic"
) -> ProviderError:
    """Map an ``anthropic`` SDK error to ``ProviderError``; 408/409/429/5xx/529,
    overloaded mid-stream errors and connection failures are retryable."""
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        body = exc.body if isinstance(exc.body, Mapping) else {}
        err = body.get("error")
        kind = err.get("type") if isinstance(err, Mapping) else None
        message = err.get("message") if isinstance(err, Mapping) else None
        retryable = status in (408, 409, 429) or status >= 500 or kind in _RETRYABLE_KINDS
        text = f"HTTP {status}: {message or exc.message}"
        if status == 200 and kind:  # an ``event: error`` inside the stream
            text = f"{kind}: {message}"
        return ProviderError(text, provider=provider, retryable=retryable)
    if isinstance(exc, anthropic.APIConnectionError):  # includes timeouts
        return ProviderError(f"connection failed: {exc}", provider=provider, retryable=True)
    return ProviderError(str(exc), provider=provider, retryable=False)


def _tool_input(tc: ToolCall) -> dict[str, object]:
    try:
        value = json.loads(tc.arguments or "{}")
    except ValueError as exc:
        raise LocalProtocolError(
            f"tool call {tc.call_id} has arguments that are not JSON: {tc.arguments!r}",
            code="bad_tool_arguments",
        ) from exc
    if not isinstance(value, dict):
        raise LocalProtocolError(
            f"tool call {tc.call_id} arguments must be a JSON object", code="bad_tool_arguments"
        )
    return value


def anthropic_messages(messages: Sequence[Message]) -> tuple[str, list[MessageParam]]:
    """Convert messages into ``(system, messages)`` for the Messages API.

    System messages are joined into the system prompt. Consecutive messages of one
    side merge into one turn: the API wants the results of a parallel batch of
    tool calls together in the single user turn after them, ahead of any text.
    """
    system: list[str] = []
    turns: list[tuple[Literal["user", "assistant"], list[_Block]]] = []

    def add(role: Literal["user", "assistant"], blocks: list[_Block]) -> None:
        if not blocks:
            return
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))

    for m in messages:
        text: list[_Block] = [{"type": "text", "text": m.content}] if m.content else []
        if m.role is Role.SYSTEM:
            if m.content:
                system.append(m.content)
        elif m.role is Role.USER:
            add("user", text)
        elif m.role is Role.ASSISTANT:
            uses: list[_Block] = [
                {"type": "tool_use", "id": tc.call_id, "name": tc.name, "input": _tool_input(tc)}
                for tc in m.tool_calls
            ]
            add("assistant", text + uses)
        else:
            result: ToolResultBlockParam = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id,
                "content": m.content,
            }
            add("user", [result])
    out: list[MessageParam] = []
    for role, blocks in turns:
        if role == "user":
            out.append({"role": "user", "content": blocks})
        else:
            out.append({"role": "assistant", "content": blocks})
    return "\n\n".join(system), out


def anthropic_tools(tools: Sequence[ToolSpec]) -> list[ToolParam]:
    return [
        {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools
    ]


class AnthropicLLM(OwnedClient):
    """Streams a reply from Claude through the Messages API.

    The key is read from ``ANTHROPIC_API_KEY`` when ``api_key`` is not given;
    ``base_url`` points it at a proxy or a test server. ``max_tokens`` is required
    by the API; a spoken reply rarely needs many.
    """

    _client: AsyncAnthropic

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        client: AsyncAnthropic | None = None,
        max_tokens: int = 1024,
        temperature: float | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        provider: str = "anthropic",
    ) -> None:
        self.model = model
        self.provider = provider
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._owns_client = client is None
        if client is None:
            key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY")
            if key is None:
                raise ConfigError("set api_key or ANTHROPIC_API_KEY", field="api_key")
            client = AsyncAnthropic(
                api_key=key, base_url=base_url, timeout=timeout, max_retries=max_retries
            )
        self._client = client

    async def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncGenerator[LLMChunk, None]:
        """Yield text deltas and whole tool calls; raises ``ProviderError``.

        Closing the iterator (or cancelling its consumer) closes the HTTP stream.
        """
        system, params = anthropic_messages(messages)
        kwargs: dict[str, Any] = {}
        if system:
            kwargs["system"] = system
        if tools:
            kwargs["tools"] = anthropic_tools(tools)
        if self._temperature is not None:
            kwargs["temperature"] = self._temperature
        try:
            response = await self._client.messages.create(
                model=self.model,
                max_tokens=self._max_tokens,
                messages=params,
                stream=True,
                **kwargs,
            )
        except anthropic.AnthropicError as exc:
            raise anthropic_provider_error(exc, self.provider) from exc
        # index → (id, name, input fragments) of the tool_use blocks being streamed
        open_calls: dict[int, tuple[str, str, list[str]]] = {}
        try:
            async with response:
                async for event in response:
                    if event.type == "content_block_start":
                        block = event.content_block
                        if block.type == "tool_use":
                            open_calls[event.index] = (block.id, block.name, [])
                    elif event.type == "content_block_delta":
                        delta = event.delta
                        if delta.type == "text_delta":
                            if delta.text:
                                yield delta.text
                        elif delta.type == "input_json_delta" and event.index in open_calls:
                            open_calls[event.index][2].append(delta.partial_json)
                    elif event.type == "content_block_stop" and event.index in open_calls:
                        call_id, name, fragments = open_calls.pop(event.index)
                        yield ToolCall(call_id, name, "".join(fragments) or "{}")
        except anthropic.AnthropicError as exc:
            raise anthropic_provider_error(exc, self.provider) from exc
        except json.JSONDecodeError as exc:  # the SDK parses each SSE data line
            raise ProviderError(
                f"malformed stream event: {exc}", provider=self.provider, retryable=False
            ) from exc

"""Client-executed tools: the session's ``tools`` as an engine's :class:`ToolRunner`.

The Realtime protocol runs functions on the client (protocols.md §1.6.3). The
engine sees an ordinary tool runner: ``specs`` are the client's function tools,
and ``run(call)`` hands the call to the session, which sends it to the client and
returns the client's ``function_call_output`` (or an error once the answer
timeout passes) when a ``response.create`` asks for the continuation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from parley.events import ToolCall, ToolResult
from parley.protocols.openai_realtime import Tool
from parley.providers.seams import ToolSpec

__all__ = ["ClientTools", "function_specs"]


def function_specs(tools: Sequence[Tool], tool_choice: object = "auto") -> tuple[ToolSpec, ...]:
    """The function tools the model may call under ``tool_choice``.

    ``"none"`` offers none; ``{"type": "function", "name": X}`` offers only X; ``"auto"``
    and ``"required"`` offer all (an engine's LLM seam cannot force a call, so
    ``"required"`` is best effort). MCP tools are skipped: this server runs none.
    """
    if tool_choice == "none":
        return ()
    only: str | None = None
    if isinstance(tool_choice, dict):
        choice: dict[str, Any] = tool_choice
        name = choice.get("name")
        if choice.get("type") == "function" and isinstance(name, str):
            only = name
    specs: list[ToolSpec] = []
    for tool in tools:
        if tool.type != "function" or not isinstance(tool.name, str) or not tool.name:
            continue
        if only is not None and tool.name != only:
            continue
        description = tool.description if isinstance(tool.description, str) else ""
        params = tool.parameters if isinstance(tool.parameters, dict) else None
        specs.append(
            ToolSpec(tool.name, description, params)
            if params is not None
            else ToolSpec(tool.name, description)
        )
    return tuple(specs)


class ClientTools:
    """A :class:`~parley.engines.seams.ToolRunner` whose tools run on the client.

    ``specs`` is read at every model call, so per-response tools apply as soon as
    the session changes what ``get_specs`` returns.
    """

    def __init__(
        self,
        get_specs: Callable[[], tuple[ToolSpec, ...]],
        run: Callable[[ToolCall], Awaitable[ToolResult]],
    ) -> None:
        self._get_specs = get_specs
        self._run = run

    @property
    def specs(self) -> Sequence[ToolSpec]:
        return self._get_specs()

    async def run(self, call: ToolCall) -> ToolResult:
        return await self._run(call)

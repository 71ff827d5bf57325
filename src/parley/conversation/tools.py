"""Tools the model may call: plain Python callables, described by their signature.

``ToolRegistry`` turns a function's type hints and docstring into a
:class:`~parley.providers.seams.ToolSpec` (JSON Schema parameters) and runs a
:class:`~parley.events.ToolCall` against it, returning a
:class:`~parley.events.ToolResult`. Async functions are awaited; plain functions run
in a worker thread so a slow lookup never blocks the event loop.

    tools = ToolRegistry()

    @tools.register
    async def order_status(order_id: str, verbose: bool = False) -> dict[str, str]:
        '''Look up an order.

        Args:
            order_id: The order number the caller read out.
        '''
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from parley.errors import ConfigError, ParleyError
from parley.events import ToolCall, ToolResult
from parley.providers.seams import ToolSpec

__all__ = ["ToolError", "ToolRegistry", "tool_spec"]

ToolFunction = Callable[..., Any]


class ToolError(Exception):
    """Raise from a tool to tell the model it failed; the message goes to the model."""


# The failures a tool's bad input or a failed lookup raise: reported to the model as an
# error result. Anything else is a bug in the tool and ends the call loudly.
_REPORTED = (ToolError, ValueError, TypeError, LookupError, OSError, ParleyError)

_SIMPLE: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    dict: {"type": "object"},
    list: {"type": "array"},
    Any: {},
}


def _schema(tp: Any) -> dict[str, Any]:
    """JSON Schema of one annotation."""
    if tp in _SIMPLE:
        return dict(_SIMPLE[tp])
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _schema(options[0])  # Optional[X]: the absence is "not required"
        return {"anyOf": [_schema(a) for a in options]}
    if origin in (list, tuple, set, frozenset, Sequence, Iterable):
        item = args[0] if args else Any
        return {"type": "array", "items": _schema(item)}
    if origin is dict:
        return {"type": "object"}
    if origin is typing.Annotated:
        schema = _schema(args[0])
        text = [a for a in args[1:] if isinstance(a, str)]
        if text:
            schema["description"] = text[0]
        return schema
    raise ConfigError(f"no JSON Schema for parameter type {tp!r}", field="tools")


_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^\s*(\w+)(?:\s*\([^)]*\))?\s*:\s*(.+)$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Summary (text before the ``Args:`` section) and per-argument descriptions."""
    lines = inspect.cleandoc(doc).splitlines() if doc else []
    summary: list[str] = []
    params: dict[str, str] = {}
    in_args = False
    current = ""
    for line in lines:
        if _ARGS_HEADER.match(line):
            in_args = True
            continue
        if not in_args:
            summary.append(line)
            continue
        if line and not line[0].isspace():
            break  # the next section (Returns:, Raises:)
        m = _ARG_LINE.match(line)
        if m:
            current = m.group(1)
            params[current] = m.group(2).strip()
        elif current and line.strip():
            params[current] += " " + line.strip()
    return " ".join(" ".join(summary).split()), params


def tool_spec(
    fn: ToolFunction, *, name: str | None = None, description: str | None = None
) -> ToolSpec:
    """Describe ``fn`` for a model: name, description and JSON Schema of its parameters."""
    summary, arg_docs = _parse_docstring(inspect.getdoc(fn) or "")
    try:
        hints = get_type_hints(fn, include_extras=True)
    except NameError as exc:  # a string annotation naming something not in scope
        raise ConfigError(
            f"tool {fn.__name__}: cannot resolve hints: {exc}", field="tools"
        ) from exc
    properties: dict[str, Any] = {}
    required: list[str] = []
    for pname, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(
                f"tool {fn.__name__}: *args/**kwargs cannot be described", field="tools"
            )
        if pname not in hints:
            raise ConfigError(
                f"tool {fn.__name__}: parameter {pname!r} needs a type hint", field="tools"
            )
        schema = _schema(hints[pname])
        if pname in arg_docs:
            schema.setdefault("description", arg_docs[pname])
        properties[pname] = schema
        optional = get_origin(hints[pname]) in (Union, types.UnionType) and type(None) in get_args(
            hints[pname]
        )
        if param.default is param.empty and not optional:
            required.append(pname)
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    return ToolSpec(
        name=name or fn.__name__,
        description=description if description is not None else summary,
        parameters=parameters,
    )


@dataclass(frozen=True, slots=True)
class _Tool:
    spec: ToolSpec
    fn: ToolFunction


class ToolRegistry:
    """Named tools; satisfies :class:`parley.engines.seams.ToolRunner`."""

    def __init__(self, tools: Iterable[ToolFunction] = (), *, timeout_s: float = 30.0) -> None:
        self._tools: dict[str, _Tool] = {}
        self.timeout_s = timeout_s
        for fn in tools:
            self.register(fn)

    @typing.overload
    def register(self, fn: ToolFunction, /) -> ToolFunction: ...

    @typing.overload
    def register(
        self, fn: None = None, /, *, name: str | None = None, description: str | None = None
    ) -> Callable[[ToolFunction], ToolFunction]: ...

    def register(
        self,
        fn: ToolFunction | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> ToolFunction | Callable[[ToolFunction], ToolFunction]:
        """Add a tool; usable as ``@registry.register`` or ``@registry.register(name=...)``."""

        def add(f: ToolFunction) -> ToolFunction:
            spec = tool_spec(f, name=name, description=description)
            if spec.name in self._tools:
                raise ConfigError(f"tool {spec.name!r} is registered twice", field="tools")
            self._tools[spec.name] = _Tool(spec, f)
            return f

        return add(fn) if fn is not None else add

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def specs(self) -> Sequence[ToolSpec]:
        return tuple(t.spec for t in self._tools.values())

    async def run(self, call: ToolCall) -> ToolResult:
        """Run one call. Bad arguments, unknown names, timeouts and reported failures
        come back as ``is_error`` results for the model to see, not as exceptions."""
        tool = self._tools.get(call.name)
        if tool is None:
            return self._error(call, f"unknown tool {call.name!r}")
        try:
            args = json.loads(call.arguments) if call.arguments.strip() else {}
        except json.JSONDecodeError as exc:
            return self._error(call, f"arguments are not valid JSON: {exc}")
        if not isinstance(args, dict):
            return self._error(call, "arguments must be a JSON object")
        props = tool.spec.parameters.get("properties", {})
        unknown = sorted(set(args) - set(props))
        missing = [p for p in tool.spec.parameters.get("required", []) if p not in args]
        if unknown or missing:
            return self._error(call, f"unknown arguments {unknown}, missing arguments {missing}")
        try:
            async with asyncio.timeout(self.timeout_s):
                if inspect.iscoroutinefunction(tool.fn):
                    value = await tool.fn(**args)
                else:
                    value = await asyncio.to_thread(tool.fn, **args)
        except TimeoutError:
            return self._error(call, f"tool timed out after {self.timeout_s:g} s")
        except _REPORTED as exc:
            return self._error(call, f"{type(exc).__name__}: {exc}")
        output = value if isinstance(value, str) else json.dumps(value, default=str)
        return ToolResult(call.call_id, call.name, output)

    @staticmethod
    def _error(call: ToolCall, message: str) -> ToolResult:
        return ToolResult(call.call_id, call.name, json.dumps({"error": message}), is_error=True)

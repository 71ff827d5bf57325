"""A loopback server speaking Anthropic's Messages API (streaming SSE and plain JSON).

Part of the loopback wire servers (:mod:`parley.testing.wire_servers`, which also
exports it): point ``AsyncAnthropic(base_url=server.url)`` at it.
"""

from __future__ import annotations

import json
import uuid
from collections import deque
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .wire_base import (
    ChatScriptItem,
    ScriptedError,
    ScriptedReply,
    WireServer,
    estimate_tokens,
    json_error,
)

__all__ = ["AnthropicWireServer"]


# --------------------------------------------------------------------------- Anthropic

_ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _json_object(text: str) -> Any:
    try:
        return json.loads(text or "{}")
    except ValueError:  # a deliberately broken script: send what a parser can
        return {}


def _anthropic_error_body(err: ScriptedError) -> dict[str, Any]:
    kind = _ANTHROPIC_ERROR_TYPES.get(
        err.status, "api_error" if err.status >= 500 else "invalid_request_error"
    )
    return {
        "type": "error",
        "error": {"type": kind, "message": err.message},
        "request_id": f"req_{uuid.uuid4().hex[:24]}",
    }


def _sse_event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


class AnthropicWireServer(WireServer):
    """The Messages API (streaming SSE and plain JSON) as ``api.anthropic.com`` speaks it.

    Point ``AsyncAnthropic(base_url=server.url)`` at it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._replies: deque[ChatScriptItem] = deque()

    def script(self, *items: ChatScriptItem) -> None:
        """Queue message answers, one per request, in order."""
        self._replies.extend(items)

    @property
    def message_requests(self) -> list[Any]:
        """The JSON bodies of the Messages requests received."""
        return [r.json_body for r in self.requests_to("/v1/messages")]

    def _routes(self) -> list[Route]:
        return [Route("/v1/messages", self._messages, methods=["POST"])]

    async def _messages(self, request: Request) -> Response:
        rec = await self._record(request)
        body = rec.json_body
        required = ("model", "messages", "max_tokens")
        if not isinstance(body, dict) or any(k not in body for k in required):
            err = ScriptedError(400, "model, messages and max_tokens are required")
            return json_error(400, _anthropic_error_body(err), rec)
        if not self._replies:
            err = ScriptedError(400, "wire server: no scripted message reply left")
            return json_error(400, _anthropic_error_body(err), rec)
        item = self._replies.popleft()
        if isinstance(item, ScriptedError):
            return json_error(item.status, _anthropic_error_body(item), rec)
        headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}"}
        if not body.get("stream"):
            rec._finish("completed")
            return JSONResponse(self._message(body, item), headers=headers)
        return self._stream(rec, self._events(body, item), "text/event-stream", headers)

    @staticmethod
    def _blocks(reply: ScriptedReply) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if reply.text:
            blocks.append({"type": "text", "text": "".join(reply.text)})
        blocks.extend(
            {
                "type": "tool_use",
                "id": tc.call_id or f"toolu_{uuid.uuid4().hex[:24]}",
                "name": tc.name,
                "input": _json_object(tc.arguments_json),
            }
            for tc in reply.tool_calls
        )
        return blocks

    def _message(self, body: dict[str, Any], reply: ScriptedReply) -> dict[str, Any]:
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": self._blocks(reply),
            "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": estimate_tokens(body),
                "output_tokens": len(reply.text) + sum(len(t.arguments) for t in reply.tool_calls),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }

    def _events(self, body: dict[str, Any], reply: ScriptedReply) -> list[tuple[float, bytes]]:
        """message_start, per block start/deltas/stop, message_delta, message_stop."""
        delay = reply.chunk_delay_s
        out: list[tuple[float, bytes]] = []

        def event(name: str, payload: dict[str, Any]) -> None:
            out.append((delay, _sse_event(name, {"type": name, **payload})))

        message = self._message(body, reply)
        start = dict(message, content=[], stop_reason=None)
        start["usage"] = dict(message["usage"], output_tokens=1)
        event("message_start", {"message": start})
        index = 0
        if reply.text:
            event(
                "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
            )
            event("ping", {})
            for piece in reply.text:
                event(
                    "content_block_delta",
                    {"index": 0, "delta": {"type": "text_delta", "text": piece}},
                )
            event("content_block_stop", {"index": 0})
            index = 1
        for tc, block in zip(reply.tool_calls, message["content"][index:], strict=True):
            event(
                "content_block_start",
                {
                    "index": index,
                    "content_block": {
                        "type": "tool_use",
                        "id": block["id"],
                        "name": tc.name,
                        "input": {},
                    },
                },
            )
            for fragment in ("", *tc.arguments):  # the service opens with an empty fragment
                event(
                    "content_block_delta",
                    {
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": fragment},
                    },
                )
            event("content_block_stop", {"index": index})
            index += 1
        if reply.raw_after:
            out.append((delay, reply.raw_after))
        if reply.error_after is not None:
            event("error", {"error": _anthropic_error_body(reply.error_after)["error"]})
            return out
        event(
            "message_delta",
            {
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": message["usage"]["output_tokens"]},
            },
        )
        event("message_stop", {})
        return out

"""Starlette (FastAPI) WebSockets and the platform seam: what a scope tells before
the socket is accepted, and refusing it."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from parley.transports.platform import Connection, Refusal
from parley.transports.socket import close_reason

__all__ = ["refuse_starlette", "starlette_connection"]


def starlette_connection(websocket: WebSocket) -> Connection:
    """What a Starlette WebSocket scope tells before it is accepted."""
    client = websocket.client
    return Connection(
        path=websocket.url.path,
        params={k: str(v) for k, v in websocket.path_params.items()},
        query=dict(websocket.query_params),
        headers={k.lower(): v for k, v in websocket.headers.items()},
        subprotocols=tuple(websocket.scope.get("subprotocols") or ()),
        client=f"{client.host}:{client.port}" if client is not None else "",
    )


async def refuse_starlette(websocket: WebSocket, refusal: Refusal) -> None:
    """Refuse before accepting: the HTTP status where the ASGI server supports denial
    responses (uvicorn does), else accept-and-close with the refusal's code."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        body = dict(refusal.body) if refusal.body is not None else {"error": refusal.reason}
        await websocket.send_denial_response(JSONResponse(body, status_code=refusal.status))
    else:
        await websocket.close(refusal.close_code, close_reason(refusal.reason))

"""``POST /webrtc/offer``: WebRTC signalling for the talk page, in one request.

The page sends its offer (ICE gathered, no trickle) and, like its WebSocket does,
the id of a conversation it created with ``POST /conversations`` (or none: a new
one); the answer comes back at once and the call runs on the switchboard like any
other (``Switchboard.serve`` with the :class:`~parley.transports.webrtc.WebRTCPlatform`
and the call's data-channel socket): refused while draining or full, claimed,
handshaken on the data channel, counted, logged and ended there.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from parley.errors import ConfigError
from parley.server.switchboard import Switchboard
from parley.transports.platform import Connection
from parley.transports.webrtc import WebRTCPlatform, answer_offer, restrict_ice_addresses

__all__ = ["WebRTCAnswer", "WebRTCOffer", "webrtc_router"]


class WebRTCOffer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sdp: str = Field(min_length=1, max_length=64_000)
    type: Literal["offer"] = "offer"
    conversation_id: str | None = Field(default=None, max_length=100)


class WebRTCAnswer(BaseModel):
    sdp: str
    type: Literal["answer"] = "answer"


_CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key"})


def webrtc_router(app: Switchboard) -> APIRouter:
    router = APIRouter(tags=["webrtc"])
    platform = next((p for p in app.platforms if isinstance(p, WebRTCPlatform)), None)
    calls: set[asyncio.Future[None]] = set()  # held so a running call is not collected
    addresses = app.settings.webrtc_ice_addresses

    @router.post("/webrtc/offer", response_model=WebRTCAnswer)
    async def offer(body: WebRTCOffer, request: Request) -> WebRTCAnswer:
        if platform is None:
            raise HTTPException(404, detail="WebRTC is not a platform of this server")
        refusal = app.refusal()
        if refusal is not None:
            raise HTTPException(503, detail=refusal, headers={"Retry-After": "5"})
        cid = body.conversation_id
        if cid is not None and app.calls.get(cid) is None:
            raise HTTPException(404, detail=f"no conversation {cid!r}")
        try:
            if addresses is not None:
                restrict_ice_addresses(addresses)
            sdp, socket = await answer_offer(body.sdp)
        except ConfigError as exc:
            raise HTTPException(501, detail=str(exc)) from None
        except ValueError as exc:
            raise HTTPException(400, detail=f"not a usable offer: {exc}") from None
        connection = Connection(
            path="/webrtc/offer",
            params={"conversation_id": cid} if cid is not None else {},
            # the offer's credentials admit its call, as a socket's handshake would
            headers={k: v for k, v in request.headers.items() if k in _CREDENTIAL_HEADERS},
            client=request.client.host if request.client is not None else "",
        )
        call = asyncio.ensure_future(app.serve(platform, socket, connection))
        calls.add(call)
        call.add_done_callback(calls.discard)
        return WebRTCAnswer(sdp=sdp)

    return router

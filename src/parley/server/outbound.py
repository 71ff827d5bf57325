"""``POST /calls``: place an outbound phone call that talks to a conversation.

The conversation is created first (like ``POST /conversations``, with the body's
prompt, voice, engine and brain), then Twilio is asked, through the official SDK
(:func:`parley.transports.twilio_rest.place_twilio_call_async`), to call ``to`` from
``from``, fetching its instructions from our own voice webhook:
``/twilio/voice?conversation_id=ID``. When the callee answers, Twilio POSTs that
webhook (signed, like any inbound call), which answers ``<Connect><Stream>`` to
``/twilio/stream/ID`` with a one-time token minted for the real CallSid; the stream
claims the conversation made here. Fetching the TwiML rather than sending it inline
is what lets the token be bound to the CallSid, which only exists once the call is
placed.

Needs ``twilio_account_sid`` and ``twilio_auth_token``; ``twilio_api_base`` points the
SDK at another API host (a regional edge, a test server).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from parley.engines.spec import EngineKind
from parley.errors import ProviderError
from parley.security.tenancy import Action
from parley.server.opening import open_conversation
from parley.server.switchboard import Switchboard
from parley.server.urls import http_base
from parley.transports.twilio_rest import place_twilio_call_async

__all__ = ["OutboundCall", "OutboundPlaced", "outbound_router"]

_E164 = r"^\+?[0-9A-Za-z:@._-]{3,64}$"  # a number, or a SIP/client address


class OutboundCall(BaseModel):
    """Call ``to`` from ``from``; the rest configures the conversation (defaults: the
    server's)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    to: str = Field(pattern=_E164)
    from_: str = Field(alias="from", pattern=_E164)
    system_prompt: str | None = Field(default=None, max_length=20_000)
    voice: str | None = Field(default=None, min_length=1, max_length=100)
    engine: EngineKind | None = None
    brain: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class OutboundPlaced(BaseModel):
    id: str
    call_sid: str
    status: str
    to: str
    url: str


def outbound_router(app: Switchboard) -> APIRouter:
    router = APIRouter(tags=["calls"])

    @router.post("/calls", status_code=201, response_model=OutboundPlaced)
    async def place_call(body: OutboundCall, request: Request) -> OutboundPlaced:
        """Needs ``conversation`` (like ``POST /conversations``); the callee's number is
        the conversation's user only for an ``admin`` caller, with authentication on."""
        settings = app.settings
        who = await app.security.principal(request)
        await app.security.authorize(request, who, Action.CREATE)  # before saying what is missing
        sid, token = settings.twilio_account_sid, settings.twilio_auth_token
        if sid is None or token is None:
            raise HTTPException(
                503, detail="outbound calls need PARLEY_TWILIO_ACCOUNT_SID and _AUTH_TOKEN"
            )
        trusted = not app.security.enabled or who.is_admin
        record = await open_conversation(
            app,
            request,
            who,
            kind="twilio",
            user_id=body.to if trusted else None,
            system_prompt=body.system_prompt,
            voice=body.voice,
            engine=body.engine,
            brain=body.brain,
            metadata={**body.metadata, "direction": "outbound", "to": body.to},
            audit="call.place",
        )
        base = http_base(request, settings)
        try:
            call_sid = await place_twilio_call_async(
                sid,
                token.get_secret_value(),
                to=body.to,
                from_=body.from_,
                url=f"{base}/twilio/voice?conversation_id={record.id}",
                api_base=settings.twilio_api_base,
            )
        except ProviderError as exc:
            record.end_reason = "dial_failed"
            await app.admission.drop_pending(record)  # no longer counted against its creator
            raise HTTPException(502 if exc.retryable else 422, detail=str(exc)) from None
        record.call_sid = call_sid
        return OutboundPlaced(
            id=record.id,
            call_sid=call_sid,
            status=record.status.value,
            to=body.to,
            url=f"{base}/conversations/{record.id}",
        )

    return router

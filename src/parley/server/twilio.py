"""Twilio: the voice webhook that answers TwiML, and the Media Streams WebSocket."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from twilio.twiml.voice_response import Connect, Stream, VoiceResponse  # type: ignore[import-untyped]

from parley.errors import RateLimited
from parley.server.auth import twilio_signature_valid
from parley.server.switchboard import Switchboard
from parley.server.urls import request_url, ws_base
from parley.transports.twilio import TwilioPlatform

__all__ = ["REFUSAL_SPEECH", "STREAM_PATH", "twilio_router", "twiml_connect", "twiml_refusal"]

#: What a caller hears when limits refuse the call: a short sentence, not silence.
REFUSAL_SPEECH = "Sorry, we cannot take your call right now. Please try again later."

STREAM_PATH = TwilioPlatform.routes[0]


def twiml_connect(stream_url: str, parameters: dict[str, str]) -> str:
    """``<Response><Connect><Stream url=...>`` with ``<Parameter>``s, as XML text."""
    response = VoiceResponse()
    connect = Connect()
    stream = Stream(url=stream_url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    connect.append(stream)
    response.append(connect)
    return str(response)


def twiml_refusal(*, spoken: bool) -> str:
    """A refused call: a short spoken refusal then hang up (a limit: the caller may
    try later), or ``<Reject>`` (not a call we will take: a replayed webhook)."""
    response = VoiceResponse()
    if spoken:
        response.say(REFUSAL_SPEECH)
        response.hangup()
    else:
        response.reject(reason="rejected")
    return str(response)


def _xml(text: str) -> Response:
    return Response(text, media_type="application/xml")


def twilio_router(app: Switchboard) -> APIRouter:
    """The voice webhook (the Media Streams socket itself is a platform route)."""
    router = APIRouter(tags=["twilio"])

    @router.post(
        "/twilio/voice",
        response_class=Response,
        responses={200: {"content": {"application/xml": {}}}, 403: {}, 503: {}},
    )
    async def voice_webhook(request: Request) -> Response:
        form = await request.form()
        settings = app.settings
        if settings.twilio_auth_token is not None:
            ok = twilio_signature_valid(
                settings.twilio_auth_token.get_secret_value(),
                request_url(request, settings),
                form,
                request.headers.get("x-twilio-signature"),
            )
            if not ok:
                return Response(
                    "invalid or missing X-Twilio-Signature",
                    status_code=403,
                    media_type="text/plain",
                )
        refusal = app.refusal()
        if refusal is not None:
            return Response(
                refusal, status_code=503, media_type="text/plain", headers={"Retry-After": "5"}
            )
        call_sid = str(form.get("CallSid") or "")
        caller = str(form.get("From") or "")
        security = app.security
        once = security.twilio
        if once is not None and call_sid and not await once.first_webhook(call_sid):
            # A replayed (signed) webhook: no second token for the same call.
            await security.record(
                None,
                "twilio.webhook",
                "denied",
                request,
                target=call_sid,
                detail={"reason": "replayed webhook"},
            )
            return _xml(twiml_refusal(spoken=False))
        try:  # the caller's new-call budget, counted until its stream starts
            await security.limits.hold_pending(security.phone_principal(caller, call_sid), call_sid)
        except RateLimited:
            return _xml(twiml_refusal(spoken=True))
        params: dict[str, str] = {}
        if caller:
            params["from"] = caller
        if app.twilio_tokens is not None:
            params["token"] = app.twilio_tokens.issue(call_sid, caller)
        path = STREAM_PATH
        claim = request.query_params.get("conversation_id")  # an outbound call (POST /calls)
        if claim is not None:
            if app.calls.get(claim) is None:
                return Response(f"no conversation {claim!r}", status_code=404)
            path = f"{STREAM_PATH}/{claim}"
        return _xml(twiml_connect(ws_base(request, settings) + path, params))

    return router

"""Twilio: the voice webhook that answers TwiML, and the Media Streams WebSocket."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from twilio.twiml.voice_response import Connect, Stream, VoiceResponse  # type: ignore[import-untyped]

from parley.server.auth import twilio_signature_valid
from parley.server.switchboard import Switchboard
from parley.server.urls import request_url, ws_base
from parley.transports.twilio import TwilioPlatform

__all__ = ["STREAM_PATH", "twilio_router", "twiml_connect"]

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
        xml = twiml_connect(ws_base(request, settings) + path, params)
        return Response(xml, media_type="application/xml")

    return router

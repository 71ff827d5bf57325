"""Answer webhooks for Telnyx, Vonage and Plivo, like ``POST /twilio/voice`` for Twilio.

Each platform asks its answer URL what to do with a call; each route here checks
the platform's request signature (when its credential is configured), refuses
while the server drains or is full (503, so the platform tries its fallback), and
answers with the document that connects the call to our media-stream route, with
the caller and a one-time token (:class:`~parley.server.tokens.StreamTokens`) for
the stream's handshake to check:

==============================  =====================  ===============================
route                           signature              the stream's token travels in
==============================  =====================  ===============================
``POST /telnyx/texml``          Ed25519 (public key)   ``<Parameter>`` → ``custom_parameters``
``GET|POST /vonage/answer``     JWT (signature secret) NCCO ``headers`` → ``websocket:connected``
``POST /plivo/answer``          V3 HMAC (auth token)   ``extraHeaders`` → ``start.extra_headers``
==============================  =====================  ===============================

The documents are built by :mod:`parley.protocols.phone_webhooks`. Which form
field names the call: TeXML's ``CallSid`` (the stream's ``call_control_id``, an
inference: Telnyx documents TeXML as Twilio-compatible), Vonage's ``uuid``, Plivo's
``CallUUID`` (the stream's ``callId``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from fastapi import APIRouter, Request, Response
from starlette.datastructures import FormData

from parley.protocols.phone_webhooks import (
    plivo_signature_v3_valid,
    plivo_stream_xml,
    telnyx_signature_valid,
    telnyx_texml_stream,
    vonage_ncco_websocket,
    vonage_signature_valid,
)
from parley.server.switchboard import Switchboard
from parley.server.urls import request_url, ws_base
from parley.transports.plivo import PlivoPlatform
from parley.transports.telnyx import TelnyxPlatform
from parley.transports.vonage import VonagePlatform

__all__ = ["phone_answers_router"]

_XML: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/xml": {}}},
    403: {},
    503: {},
}


def _forbidden(what: str) -> Response:
    return Response(f"invalid or missing {what}", status_code=403, media_type="text/plain")


def _busy(reason: str) -> Response:
    return Response(reason, status_code=503, media_type="text/plain", headers={"Retry-After": "5"})


def _field(values: Mapping[str, Any], name: str) -> str:
    value = values.get(name)
    return value if isinstance(value, str) else ""


def phone_answers_router(app: Switchboard) -> APIRouter:
    router = APIRouter(tags=["phone"])
    settings = app.settings

    def token(platform: str, call_id: str, caller: str) -> dict[str, str]:
        tokens = app.stream_tokens.get(platform)
        return {"token": tokens.issue(call_id, caller)} if tokens is not None else {}

    @router.post("/telnyx/texml", response_class=Response, responses=_XML)
    async def telnyx_texml(request: Request) -> Response:
        """TeXML: ``<Connect><Stream bidirectionalMode="rtp">`` to ``/telnyx/stream``."""
        body = await request.body()
        key = settings.telnyx_public_key
        if key is not None and not telnyx_signature_valid(
            key,
            body,
            request.headers.get("telnyx-signature-ed25519"),
            request.headers.get("telnyx-timestamp"),
        ):
            return _forbidden("telnyx-signature-ed25519")
        refusal = app.refusal()
        if refusal is not None:
            return _busy(refusal)
        form = await request.form()
        call_id, caller = _field(form, "CallSid"), _field(form, "From")
        params = {"from": caller} if caller else {}
        params |= token("telnyx", call_id, caller)
        url = ws_base(request, settings) + TelnyxPlatform.routes[0]
        return Response(telnyx_texml_stream(url, parameters=params), media_type="application/xml")

    async def vonage_answer(request: Request) -> Response:
        """NCCO: ``connect`` to ``/vonage/stream`` as L16 16 kHz (GET query or POST JSON)."""
        body = await request.body()
        secret = settings.vonage_signature_secret
        if secret is not None and not vonage_signature_valid(
            secret.get_secret_value(), request.headers.get("authorization"), body
        ):
            return _forbidden("signed webhook JWT (Authorization: Bearer)")
        refusal = app.refusal()
        if refusal is not None:
            return _busy(refusal)
        values: Mapping[str, Any] = request.query_params
        if request.method == "POST" and body:
            try:
                decoded = msgspec.json.decode(body)
            except msgspec.DecodeError:
                return Response("the body is not JSON", status_code=400, media_type="text/plain")
            values = decoded if isinstance(decoded, dict) else {}
        call_id, caller = _field(values, "uuid"), _field(values, "from")
        headers = {"call_uuid": call_id, "from": caller} | token("vonage", call_id, caller)
        url = ws_base(request, settings) + VonagePlatform.routes[0]
        return Response(vonage_ncco_websocket(url, headers=headers), media_type="application/json")

    for method in ("GET", "POST"):  # Vonage's answer_method is either
        router.add_api_route(
            "/vonage/answer",
            vonage_answer,
            methods=[method],
            response_class=Response,
            responses={200: {"content": {"application/json": {}}}, 403: {}, 503: {}},
            operation_id=f"vonage_answer_{method.lower()}",
        )

    @router.post("/plivo/answer", response_class=Response, responses=_XML)
    async def plivo_answer(request: Request) -> Response:
        """Plivo XML: a bidirectional ``<Stream>`` to ``/plivo/stream`` (µ-law 8 kHz)."""
        form: FormData = await request.form()
        auth = settings.plivo_auth_token
        if auth is not None and not plivo_signature_v3_valid(
            auth.get_secret_value(),
            "POST",
            request_url(request, settings),
            request.headers.get("x-plivo-signature-v3-nonce"),
            request.headers.get("x-plivo-signature-v3"),
            [(k, v) for k, v in form.multi_items() if isinstance(v, str)],
        ):
            return _forbidden("X-Plivo-Signature-V3")
        refusal = app.refusal()
        if refusal is not None:
            return _busy(refusal)
        call_id, caller = _field(form, "CallUUID"), _field(form, "From")
        headers = ({"from": caller} if caller else {}) | token("plivo", call_id, caller)
        url = ws_base(request, settings) + PlivoPlatform.routes[0]
        return Response(plivo_stream_xml(url, extra_headers=headers), media_type="application/xml")

    return router

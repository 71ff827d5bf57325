"""Telnyx, Vonage and Plivo over a real server: each answer webhook signed the way the
platform signs it (Telnyx Ed25519, Vonage JWT, Plivo V3 by Plivo's SDK), the one-time
token it mints carried by the provider's own start frame to a full conformance call,
tokens refused when missing, forged, replayed or moved (also on /phone/stream),
the shared endpoint refusing what no provider sends, and DTMF from every phone
platform arriving as the typed ``DTMFReceived``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode
from xml.etree import ElementTree

import httpx
import jwt
import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from plivo.utils.signature_v3 import construct_post_url, get_signature_v3

from parley.app import Parley
from parley.events import DTMFReceived
from parley.protocols.plivo import parse_extra_headers
from parley.testing.conformance import ConformanceReport, conformance_app, run_conformance
from parley.testing.phones import (
    ConformancePhone,
    PlivoTestPhone,
    TelnyxTestPhone,
    TwilioTestPhone,
    VonageTestPhone,
)
from servers import RunningServer, serve_app

KEY = Ed25519PrivateKey.generate()
PUBLIC = base64.b64encode(KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
TELNYX_API_KEY = "KEY0123456789"
VONAGE_SECRET = "vonage-signature-secret-0123456789abcdef"
PLIVO_TOKEN = "plivo-auth-token"
CALLER = "+14155550100"

AUTH = {
    "telnyx_public_key": PUBLIC,
    "telnyx_api_key": TELNYX_API_KEY,
    "vonage_signature_secret": VONAGE_SECRET,
    "plivo_auth_token": PLIVO_TOKEN,
}


@pytest.fixture
def app() -> Parley:
    return conformance_app(**AUTH)


@pytest.fixture
async def server(app: Parley) -> AsyncIterator[RunningServer]:
    async with serve_app(app) as running:
        yield running


async def close_of(url: str, frames: list[str | bytes]) -> websockets.frames.Close:
    async with websockets.connect(url) as ws:
        for frame in frames:
            await ws.send(frame)
        with pytest.raises(websockets.ConnectionClosed) as info:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None
    return info.value.rcvd


# ----------------------------------------------------------------------- Telnyx


async def telnyx_answer(server: RunningServer, form: dict[str, str]) -> httpx.Response:
    raw = urlencode(form).encode()
    ts = str(int(time.time()))
    sig = base64.b64encode(KEY.sign(ts.encode() + b"|" + raw)).decode()
    async with httpx.AsyncClient() as client:
        return await client.post(
            server.url + "/telnyx/texml",
            content=raw,
            headers={
                "content-type": "application/x-www-form-urlencoded",
                "telnyx-signature-ed25519": sig,
                "telnyx-timestamp": ts,
            },
        )


def texml_stream(xml: str) -> tuple[str, dict[str, str]]:
    stream = ElementTree.fromstring(xml).find("./Connect/Stream")
    assert stream is not None, xml
    assert stream.attrib["bidirectionalMode"] == "rtp"
    return stream.attrib["url"], {p.attrib["name"]: p.attrib["value"] for p in stream}


async def test_telnyx_texml_signed_token_call_and_refusals(
    server: RunningServer, app: Parley
) -> None:
    async with httpx.AsyncClient() as client:
        unsigned = await client.post(server.url + "/telnyx/texml", data={"CallSid": "v3:1"})
    assert unsigned.status_code == 403

    answers = []
    for call in ("v3:call-1", "v3:call-2"):  # the suite's call and its malformed-frame call
        r = await telnyx_answer(server, {"CallSid": call, "From": CALLER})
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
        url, params = texml_stream(r.text)
        assert url == server.ws_url("/telnyx/stream")
        assert params["from"] == CALLER and params["token"]
        answers.append((call, params))
    calls = list(answers)

    def phone() -> ConformancePhone:
        call, params = calls.pop(0)
        p = TelnyxTestPhone(parameters=params)
        p.caller.call_control_id = call
        return p

    report = await run_conformance(f"ws://127.0.0.1:{server.port}", phone, app=app)
    record = report.record
    assert record is not None
    assert record.kind == "telnyx" and record.user_id == CALLER
    assert record.call_sid == "v3:call-1" and "token" not in record.metadata

    call, params = answers[0]
    replay = TelnyxTestPhone(parameters=params)
    replay.caller.call_control_id = call
    close = await close_of(url, list(replay.opening()))
    assert close.code == 1008 and "already used" in close.reason
    moved = TelnyxTestPhone(parameters=params)  # the token, on another call
    close = await close_of(url, list(moved.opening()))
    assert close.code == 1008 and "unknown token" in close.reason
    missing = TelnyxTestPhone(path="/phone/stream", parameters={"from": CALLER})
    close = await close_of(server.ws_url("/phone/stream"), list(missing.opening()))
    assert close.code == 1008 and "missing token" in close.reason
    assert not app.calls.active()


# ----------------------------------------------------------------------- Vonage


def vonage_jwt(body: bytes = b"") -> str:
    claims: dict[str, object] = {"iat": int(time.time()), "jti": "x", "iss": "Vonage"}
    if body:
        claims["payload_hash"] = hashlib.sha256(body).hexdigest()
    return jwt.encode(claims, VONAGE_SECRET, algorithm="HS256")


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_vonage_ncco_signed_and_the_token_in_the_headers(
    server: RunningServer, app: Parley, method: str
) -> None:
    query = {"uuid": "63f61863-4a51-4f6b-86e1-46edebcf9356", "from": "447700900000"}
    async with httpx.AsyncClient() as client:
        url = server.url + "/vonage/answer"
        unsigned = await client.get(url, params=query)
        assert unsigned.status_code == 403
        if method == "GET":
            r = await client.get(
                url, params=query, headers={"Authorization": f"Bearer {vonage_jwt()}"}
            )
        else:
            body = json.dumps(query).encode()
            r = await client.post(
                url,
                content=body,
                headers={
                    "Authorization": f"Bearer {vonage_jwt(body)}",
                    "content-type": "application/json",
                },
            )
    assert r.status_code == 200, r.text
    (action,) = r.json()
    (endpoint,) = action["endpoint"]
    assert action["action"] == "connect" and endpoint["type"] == "websocket"
    assert endpoint["uri"] == server.ws_url("/vonage/stream")
    assert endpoint["content-type"] == "audio/l16;rate=16000"
    headers = endpoint["headers"]
    assert headers["call_uuid"] == query["uuid"] and headers["token"]
    calls = [headers, headers]

    def phone() -> ConformancePhone:
        return VonageTestPhone(headers=calls.pop(0))

    # The malformed-frame call reuses the token: refused at its start, before the frame.
    report = ConformanceReport(kind="")
    with pytest.raises(AssertionError, match="malformed frame"):
        await run_conformance(f"ws://127.0.0.1:{server.port}", phone, app=app, report=report)
    record = report.record
    assert record is not None
    assert record.kind == "vonage" and record.call_sid == query["uuid"]
    assert record.user_id == query["from"]


# ------------------------------------------------------------------------ Plivo


async def test_plivo_xml_signed_by_the_sdk_and_the_token_in_extra_headers(
    server: RunningServer, app: Parley
) -> None:
    form = {"CallUUID": "c7b3c1ce-0000-4000-8000-000000000001", "From": "14155550100"}
    url = server.url + "/plivo/answer"
    nonce = "05429567804466091622"
    sig = get_signature_v3(PLIVO_TOKEN.encode(), construct_post_url(url, form), nonce.encode())
    async with httpx.AsyncClient() as client:
        forged = await client.post(
            url,
            data=form,
            headers={"X-Plivo-Signature-V3": "bm9wZQ==", "X-Plivo-Signature-V3-Nonce": nonce},
        )
        assert forged.status_code == 403
        r = await client.post(
            url,
            data=form,
            headers={"X-Plivo-Signature-V3": sig.decode(), "X-Plivo-Signature-V3-Nonce": nonce},
        )
    assert r.status_code == 200, r.text
    stream = ElementTree.fromstring(r.text).find("./Stream")
    assert stream is not None and stream.attrib["bidirectional"] == "true"
    assert stream.text == server.ws_url("/plivo/stream")
    extra = stream.attrib["extraHeaders"]
    assert parse_extra_headers(extra)["from"] == form["From"]

    def phone() -> ConformancePhone:
        p = PlivoTestPhone(extra_headers=extra)
        p.caller.call_id = form["CallUUID"]
        return p

    report = ConformanceReport(kind="")
    with pytest.raises(AssertionError, match="malformed frame"):
        await run_conformance(f"ws://127.0.0.1:{server.port}", phone, app=app, report=report)
    record = report.record
    assert record is not None
    assert record.kind == "plivo" and record.call_sid == form["CallUUID"]


async def test_webhooks_refuse_while_draining(server: RunningServer, app: Parley) -> None:
    app.draining = True
    async with httpx.AsyncClient() as client:
        r = await client.get(
            server.url + "/vonage/answer",
            params={"uuid": "u"},
            headers={"Authorization": f"Bearer {vonage_jwt()}"},
        )
    assert r.status_code == 503 and r.headers["retry-after"] == "5"


# ------------------------------------------------------------- the shared endpoint


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        (['{"event":"connected","version":"1.0.0"}', '{"event":"media"}'], "unknown_provider"),
        ([b"\x00\x01"], "unknown_provider"),
        (['{"event":"start","start":{"foo":1}}'], "unknown_provider"),
        (["not json"], "bad_json"),
    ],
)
async def test_shared_endpoint_refuses_what_no_provider_sends(
    frames: list[str | bytes], reason: str
) -> None:
    async with serve_app(conformance_app()) as server:
        close = await close_of(server.ws_url("/phone/stream"), frames)
    assert close.code in (1007, 1008) and close.reason.startswith(reason)


# -------------------------------------------------------------------------- DTMF


@pytest.mark.parametrize("provider", ["twilio", "telnyx", "vonage", "plivo"])
@pytest.mark.parametrize("path", ["own", "/phone/stream"])
async def test_dtmf_arrives_as_the_typed_event(provider: str, path: str) -> None:
    app = conformance_app()
    digits: list[str] = []
    pressed = asyncio.Event()

    @app.on_event(DTMFReceived)
    async def on_dtmf(session_id: str, event: DTMFReceived) -> None:
        digits.append(event.digit)
        if len(digits) == 2:
            pressed.set()

    kw = {} if path == "own" else {"path": path}
    phone: TwilioTestPhone | TelnyxTestPhone | VonageTestPhone | PlivoTestPhone
    press: list[str | bytes]
    if provider == "twilio":
        phone = TwilioTestPhone(**kw)
        opening = list(phone.opening())
        press = [phone.caller.dtmf("5").decode(), phone.caller.dtmf("#").decode()]
    elif provider == "telnyx":
        phone = TelnyxTestPhone(**kw)
        opening = list(phone.opening())
        press = [phone.caller.dtmf("5").decode(), phone.caller.dtmf("#").decode()]
    elif provider == "vonage":
        phone = VonageTestPhone(**kw)
        opening = list(phone.opening())
        press = [phone.caller.dtmf("5"), phone.caller.dtmf("#")]
    else:
        phone = PlivoTestPhone(**kw)
        opening = list(phone.opening())
        press = [phone.caller.dtmf("5").decode(), phone.caller.dtmf("#").decode()]
    async with serve_app(app) as server, websockets.connect(server.ws_url(phone.path)) as ws:
        for frame in [*opening, *press]:
            await ws.send(frame)
        await asyncio.wait_for(pressed.wait(), 5)
        assert [r.kind for r in app.calls.records()] == [provider]  # while it is live
    assert digits == ["5", "#"]

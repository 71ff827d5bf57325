"""``POST /calls`` (the twilio SDK's request, recorded by a loopback Twilio API, then the
answered call's signed webhook and its stream claiming the conversation made ahead)
and a guided flow branching on DTMF sent over a real Twilio socket."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from parley.app import Parley
from parley.config import EngineKind, ParleySettings
from parley.errors import ConfigError
from parley.events import PhaseChanged
from parley.flows import FlowConfig
from parley.server.calls import CallStatus
from parley.testing.phones import TwilioTestPhone
from servers import serve_app
from test_outbound_call import ACCOUNT, TOKEN, FakeTwilioAPI, twilio_api

TO, FROM = "+14155550100", "+14155550199"


def outbound_app(api_base: str, **kw: object) -> Parley:
    settings = ParleySettings(
        engine=EngineKind.LOOPBACK,
        twilio_account_sid=ACCOUNT,
        twilio_auth_token=TOKEN,
        twilio_api_base=api_base,
        **kw,  # type: ignore[arg-type]
    )
    return Parley(settings=settings)


async def test_post_calls_places_the_call_and_the_answered_stream_claims_it() -> None:
    api = FakeTwilioAPI()
    async with twilio_api(api) as base:
        app = outbound_app(base)
        async with serve_app(app) as server, httpx.AsyncClient() as client:
            r = await client.post(
                server.url + "/calls",
                json={"to": TO, "from": FROM, "system_prompt": "You call to confirm a booking."},
            )
            assert r.status_code == 201, r.text
            placed = r.json()
            cid, call_sid = placed["id"], placed["call_sid"]

            # The exact REST request the SDK made.
            (req,) = api.requests
            assert (req.method, req.path) == ("POST", f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json")
            assert req.headers["user-agent"].startswith("twilio-python/")
            voice_url = f"{server.url}/twilio/voice?conversation_id={cid}"
            assert req.form == {"To": [TO], "From": [FROM], "Url": [voice_url]}

            record = app.calls.get(cid)
            assert record is not None and record.status is CallStatus.PENDING
            assert record.call_sid == call_sid and record.kind == "twilio"
            assert record.system_prompt == "You call to confirm a booking."

            # The callee answers: Twilio POSTs the Url, signed.
            form = {"CallSid": call_sid, "From": FROM, "To": TO, "Direction": "outbound-api"}
            sig = RequestValidator(TOKEN).compute_signature(voice_url, form)
            twiml = await client.post(voice_url, data=form, headers={"X-Twilio-Signature": sig})
            assert twiml.status_code == 200, twiml.text
            stream = ET.fromstring(twiml.text).find("./Connect/Stream")
            assert stream is not None
            url = stream.attrib["url"]
            assert url == server.ws_url(f"/twilio/stream/{cid}")
            params = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
            assert params["token"] and params["from"] == FROM

            phone = TwilioTestPhone(path=urlsplit(url).path, parameters=params)
            phone.caller.call_sid = call_sid
            async with websockets.connect(url) as ws:
                for frame in phone.opening():
                    await ws.send(frame)
                for frame in phone.speak(bytes(320)):
                    await ws.send(frame)
                heard = phone.hear(await asyncio.wait_for(ws.recv(), 5))  # the echo
                assert len(heard.audio) == 320
                assert record.status is CallStatus.LIVE
                assert app.calls.records() == [record]  # claimed, not a new call
                # A second stream for the same conversation is refused.
                async with websockets.connect(url) as second:
                    with pytest.raises(websockets.ConnectionClosed) as info:
                        await asyncio.wait_for(second.recv(), 5)
                    assert info.value.rcvd is not None and info.value.rcvd.code == 1008
                    assert info.value.rcvd.reason.startswith("conversation_taken")
                for frame in phone.hangup():
                    await ws.send(frame)
            await asyncio.wait_for(record.finished.wait(), 5)
            assert record.status is CallStatus.ENDED and record.user_id == TO


async def test_post_calls_says_what_twilio_refused_and_ends_the_conversation() -> None:
    api = FakeTwilioAPI(
        status=400,
        error={
            "code": 21211,
            "message": "The 'To' number is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211",
            "status": 400,
        },
    )
    async with twilio_api(api) as base:
        app = outbound_app(base)
        async with serve_app(app) as server, httpx.AsyncClient() as client:
            r = await client.post(server.url + "/calls", json={"to": "+1000", "from": FROM})
            assert r.status_code == 422 and "21211" in r.json()["detail"]
            assert not app.calls.records()  # ended: it left memory for the store
            (listed,) = (await client.get(server.url + "/conversations")).json()["conversations"]
            assert listed["status"] == "ended" and listed["end_reason"] == "dial_failed"


async def test_post_calls_needs_the_account() -> None:
    app = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK))
    async with serve_app(app) as server, httpx.AsyncClient() as client:
        r = await client.post(server.url + "/calls", json={"to": TO, "from": FROM})
        bad = await client.post(server.url + "/calls", json={"to": "not a number", "from": FROM})
    assert r.status_code == 503 and "TWILIO_ACCOUNT_SID" in r.json()["detail"]
    assert bad.status_code == 422
    assert not app.calls.records()


# --------------------------------------------------------------------- DTMF flows

MENU = {
    "name": "ivr",
    "goal": "Route the caller.",
    "initial": "menu",
    "phases": [
        {
            "name": "menu",
            "instructions": "Say: press 1 for sales, 2 for support.",
            "criteria": ["chose"],  # unmet: only the keypad leaves this phase
            "next": ["sales", "support"],
            "on_digit": {"1": "sales", "2": "support"},
        },
        {"name": "sales", "instructions": "Sell."},
        {"name": "support", "instructions": "Help."},
    ],
}


async def test_a_flow_phase_branches_on_dtmf_over_twilio() -> None:
    app = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK), flow=MENU)
    changes: list[PhaseChanged] = []
    changed = asyncio.Event()

    @app.on_event(PhaseChanged)
    async def on_change(session_id: str, event: PhaseChanged) -> None:
        changes.append(event)
        changed.set()

    phone = TwilioTestPhone()
    async with serve_app(app) as server, websockets.connect(server.ws_url(phone.path)) as ws:
        for frame in phone.opening():
            await ws.send(frame)
        await ws.send(phone.caller.dtmf("9").decode())  # not on the menu: nothing happens
        await ws.send(phone.caller.dtmf("2").decode())
        await ws.send(phone.caller.dtmf("1").decode())  # support has no on_digit: ignored
        for frame in phone.speak(bytes(320)):  # an engine event carries the change out
            await ws.send(frame)
        await asyncio.wait_for(changed.wait(), 5)
        (record,) = app.calls.records()
        async with httpx.AsyncClient() as client:
            progress = await client.get(f"{server.url}/conversations/{record.id}/progress")
        assert progress.json()["phase"] == "support", progress.json()
        for frame in phone.hangup():
            await ws.send(frame)
    assert changes == [PhaseChanged("menu", "support")]


@pytest.mark.parametrize(
    ("on_digit", "error"),
    [({"x": "sales"}, "not a DTMF key"), ({"1": "nowhere"}, "not one of its next")],
)
def test_on_digit_is_checked_at_load(on_digit: dict[str, str], error: str) -> None:
    flow = {**MENU, "phases": [{**MENU["phases"][0], "on_digit": on_digit}, *MENU["phases"][1:]]}
    with pytest.raises(ConfigError, match=error):
        FlowConfig.from_dict(flow)

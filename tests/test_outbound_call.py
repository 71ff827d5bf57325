"""Outbound calls through the official ``twilio`` SDK, against a loopback Twilio API.

The server is a small Starlette app on 127.0.0.1 that records the exact request the
SDK sends and answers as Twilio's ``Calls.json`` does (201 with the call resource,
or Twilio's error document); no part of the SDK is replaced.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from parley.client.outbound import place_twilio_call, place_twilio_call_async
from parley.errors import ConfigError, ProviderError
from parley.server.twilio import twiml_connect
from servers import free_port, serve_asgi

ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "auth-token-123"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]


@dataclass
class FakeTwilioAPI:
    """Answers ``POST /2010-04-01/Accounts/{sid}/Calls.json`` like Twilio; records requests."""

    requests: list[Recorded] = field(default_factory=list)
    status: int = 201
    error: dict[str, Any] | None = None

    async def calls(self, request: Request) -> JSONResponse:
        body = (await request.body()).decode()
        self.requests.append(
            Recorded(request.method, request.url.path, dict(request.headers), parse_qs(body))
        )
        sid = request.path_params["sid"]
        expected = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse(
                {
                    "code": 20003,
                    "message": "Authenticate",
                    "more_info": "https://www.twilio.com/docs/errors/20003",
                    "status": 401,
                },
                status_code=401,
            )
        if self.error is not None:
            return JSONResponse(self.error, status_code=self.status)
        form = parse_qs(body)
        call_sid = "CA" + secrets.token_hex(16)
        return JSONResponse(
            {
                "account_sid": sid,
                "sid": call_sid,
                "status": "queued",
                "to": form["To"][0],
                "from": form["From"][0],
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{sid}/Calls/{call_sid}.json",
            },
            status_code=201,
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/2010-04-01/Accounts/{sid}/Calls.json", self.calls, methods=["POST"])]
        )


@contextlib.asynccontextmanager
async def twilio_api(api: FakeTwilioAPI) -> AsyncIterator[str]:
    async with serve_asgi(api.app()) as port:
        yield f"http://127.0.0.1:{port}"


TWIML = twiml_connect("wss://example.com/twilio/stream", {"token": "one-time"})


async def test_async_call_with_inline_twiml() -> None:
    api = FakeTwilioAPI()
    async with twilio_api(api) as base:
        sid = await place_twilio_call_async(
            ACCOUNT,
            TOKEN,
            to="+14155550100",
            from_="+14155550199",
            twiml=TWIML,
            status_callback="https://example.com/twilio/status",
            api_base=base,
        )
    assert sid.startswith("CA") and len(sid) == 34
    (req,) = api.requests
    assert (req.method, req.path) == ("POST", f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json")
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    assert req.headers["accept"] == "application/json"
    assert (
        req.headers["authorization"]
        == "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    )
    assert req.headers["user-agent"].startswith("twilio-python/")
    assert req.form == {
        "To": ["+14155550100"],
        "From": ["+14155550199"],
        "Twiml": [TWIML],
        "StatusCallback": ["https://example.com/twilio/status"],
    }
    assert '<Connect><Stream url="wss://example.com/twilio/stream">' in req.form["Twiml"][0]


async def test_sync_call_with_a_twiml_url() -> None:
    api = FakeTwilioAPI()
    async with twilio_api(api) as base:
        sid = await asyncio.to_thread(
            place_twilio_call,
            ACCOUNT,
            TOKEN,
            to="+14155550100",
            from_="+14155550199",
            url="https://example.com/twilio/voice",
            api_base=base,
        )
    assert sid.startswith("CA")
    (req,) = api.requests
    assert req.path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
    assert req.form == {
        "To": ["+14155550100"],
        "From": ["+14155550199"],
        "Url": ["https://example.com/twilio/voice"],
    }


async def test_twilio_refusals_say_why() -> None:
    api = FakeTwilioAPI(
        status=400,
        error={
            "code": 21211,
            "message": "The 'To' number 123 is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211",
            "status": 400,
        },
    )
    async with twilio_api(api) as base:
        with pytest.raises(ProviderError) as info:
            await place_twilio_call_async(
                ACCOUNT, TOKEN, to="123", from_="+14155550199", twiml=TWIML, api_base=base
            )
        assert info.value.provider == "twilio" and not info.value.retryable
        assert "21211" in str(info.value) and "not a valid phone number" in str(info.value)
        with pytest.raises(ProviderError) as info:
            await place_twilio_call_async(
                ACCOUNT, "wrong", to="+1", from_="+2", twiml=TWIML, api_base=base
            )
        assert "20003" in str(info.value) and not info.value.retryable
        api.status, api.error = (
            503,
            {"code": 20503, "message": "Service Unavailable", "status": 503},
        )
        with pytest.raises(ProviderError) as info:
            await asyncio.to_thread(
                place_twilio_call,
                ACCOUNT,
                TOKEN,
                to="+1",
                from_="+2",
                twiml=TWIML,
                api_base=base,
            )
        assert info.value.retryable


async def test_an_unreachable_api_is_a_retryable_provider_error() -> None:
    base = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ProviderError) as info:
        await place_twilio_call_async(
            ACCOUNT, TOKEN, to="+1", from_="+2", twiml=TWIML, api_base=base
        )
    assert info.value.retryable
    with pytest.raises(ProviderError) as info:
        await asyncio.to_thread(
            place_twilio_call, ACCOUNT, TOKEN, to="+1", from_="+2", twiml=TWIML, api_base=base
        )
    assert info.value.retryable


@pytest.mark.parametrize(
    "kwargs",
    [
        {"to": "", "from_": "+2", "twiml": TWIML},
        {"to": "+1", "from_": "", "twiml": TWIML},
        {"to": "+1", "from_": "+2"},
        {"to": "+1", "from_": "+2", "twiml": TWIML, "url": "https://x"},
    ],
)
async def test_bad_arguments_are_config_errors(kwargs: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        await place_twilio_call_async(ACCOUNT, TOKEN, **kwargs)
    with pytest.raises(ConfigError):
        place_twilio_call(ACCOUNT, TOKEN, **kwargs)

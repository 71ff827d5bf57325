"""Each attack issue 10 measured, tried again over a real server: each now fails safe.
(The authorization cases — anonymous reads, injects, ends, claims — are the matrix of
tests/test_server_authorization.py; Twilio tokens across nodes and restarts, and
SIGKILL mid-call, are in tests/test_server_cluster.py and test_server_durability.py.)"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from parley.app import Parley
from parley.config import ConversationConfig, EngineKind, ParleySettings
from parley.protocols.browser import (
    ErrorMessage,
    ReadyMessage,
    StartMessage,
    encode_client_message,
    parse_server_frame,
)
from servers import RunningServer, TwilioPhone, serve_app

KEY = "pk_attack-test-key-0123456789abcdef"


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    settings = ParleySettings(engine=EngineKind.LOOPBACK, max_pending_per_user=20)
    async with serve_app(Parley(settings=settings)) as running:
        yield running


async def test_healthz_lists_no_call_ids_without_admin() -> None:
    settings = ParleySettings(
        engine=EngineKind.LOOPBACK,
        auth={
            "api_keys": [{"key": KEY, "user_id": "u1", "permissions": ["conversation", "audio"]}]
        },
    )
    app = Parley(ConversationConfig(enable_auth=True), settings=settings)
    async with (
        serve_app(app) as srv,
        httpx.AsyncClient(base_url=srv.url) as http,
        websockets.connect(srv.ws_url("/ws/audio")) as ws,
    ):
        await ws.send(encode_client_message(StartMessage(metadata={"token": KEY})))
        assert isinstance(parse_server_frame(await ws.recv()), ReadyMessage)
        for headers in ({}, {"Authorization": f"Bearer {KEY}"}):
            health = (await http.get("/healthz", headers=headers)).json()
            assert health["active_audio_handlers"] == 1 and health["calls"] == []
        r = await http.get("/conversations")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")


async def test_a_flood_of_conversations_counts_against_its_creator(
    server: RunningServer,
) -> None:
    """1,000 POSTs cannot lock phone and browser callers out: pending conversations
    count against their creator (20 here), not ``max_calls``."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        codes = [(await http.post("/conversations", json={})).status_code for _ in range(40)]
        assert codes.count(201) == 20 and codes.count(429) == 20
        refused = await http.post("/conversations", json={})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["code"] == "rate_limited"
    async with websockets.connect(server.ws_url("/ws/audio")) as ws:
        await ws.send(encode_client_message(StartMessage()))
        assert isinstance(parse_server_frame(await ws.recv()), ReadyMessage)
    async with websockets.connect(server.ws_url("/twilio/stream")) as ws:
        phone = TwilioPhone(ws)
        await phone.start({"from": "+15550100"})
        await phone.send_media(b"\xff" * 160)
        assert (await phone.receive())[0] == "media"


async def test_rest_rate_limit_answers_429_with_retry_after() -> None:
    app = Parley(
        ConversationConfig(rate_limit_per_minute=5),
        settings=ParleySettings(engine=EngineKind.LOOPBACK),
    )
    async with serve_app(app) as srv, httpx.AsyncClient(base_url=srv.url) as http:
        codes = [(await http.get("/conversations")).status_code for _ in range(8)]
        assert codes == [200] * 5 + [429] * 3
        last = await http.get("/conversations")
        assert last.status_code == 429 and int(last.headers["retry-after"]) >= 1
        assert (await http.get("/healthz")).status_code == 200  # liveness is not limited


async def test_pending_conversations_expire() -> None:
    settings = ParleySettings(engine=EngineKind.LOOPBACK, pending_ttl_seconds=0.5)
    async with (
        serve_app(Parley(settings=settings)) as srv,
        httpx.AsyncClient(base_url=srv.url) as http,
    ):
        cid = (await http.post("/conversations", json={})).json()["id"]
        await asyncio.sleep(0.7)  # the TTL is wall-clock time: nothing to wait on
        async with websockets.connect(srv.ws_url(f"/ws/audio/{cid}")) as ws:
            err = parse_server_frame(await ws.recv())
            assert isinstance(err, ErrorMessage) and err.code == "conversation_expired"
        await http.post("/conversations", json={})  # sweeps the expired one
        info = (await http.get(f"/conversations/{cid}")).json()
        assert info["status"] == "ended" and info["end_reason"] == "expired"


async def test_a_call_ends_at_its_maximum_duration() -> None:
    settings = ParleySettings(
        engine=EngineKind.LOOPBACK, limits={"default": {"max_call_seconds": 0.5}}
    )
    async with serve_app(Parley(settings=settings)) as srv:
        async with websockets.connect(srv.ws_url("/ws/audio")) as ws:
            await ws.send(encode_client_message(StartMessage()))
            ready = parse_server_frame(await ws.recv())
            assert isinstance(ready, ReadyMessage)
            await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 1008 and (ws.close_reason or "").startswith("max_duration")
        stored = await srv.app.session(ready.session_id)  # type: ignore[union-attr]
        assert stored is not None and stored.record.end_reason == "max_duration"


async def test_bodies_are_bounded_and_422s_do_not_echo(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        big = {"metadata": {"k": "x" * 10_000_000}}
        for _ in range(30):
            r = await http.post("/conversations", json=big)
            assert r.status_code == 413
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert grown_mb < 150, grown_mb  # the client's own 10 MB bodies, not 30 kept

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: streamed
            yield b'{"metadata": {"k": "'
            for _ in range(40):
                yield b"y" * 65536
            yield b'"}}'

        r = await http.post(
            "/conversations", content=chunks(), headers={"content-type": "application/json"}
        )
        assert r.status_code == 413

        prompt = "z" * 500_000
        r = await http.post("/conversations", json={"system_prompt": prompt})
        assert r.status_code == 422 and len(r.content) < 2000 and "zzzz" not in r.text
        r = await http.post("/conversations", json={"metadata": {f"k{i}": "v" for i in range(80)}})
        assert r.status_code == 422 and "metadata" in r.text
        r = await http.post(
            "/conversations/x/context", json={"key": "k", "data": {"blob": "b" * 100_000}}
        )
        assert r.status_code == 422 and "bbbb" not in r.text


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"user_id":"\\ud800"}', "application/json"),
        (b'{"metadata":{"\\udfff":"v"}}', "application/json"),
        (b'{"user_id": "a"', "application/json"),
        (b"\xff\xfe\xfa not utf-8", "text/plain"),
        (b"\xff\xfe\xfa not utf-8", "application/json"),
        (b"[" * 5000, "application/json"),
    ],
)
async def test_no_byte_sequence_gets_a_500(
    server: RunningServer, body: bytes, content_type: str
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post("/conversations", content=body, headers={"content-type": content_type})
        assert r.status_code in (400, 422), (r.status_code, r.text)
        assert b"\xff" not in r.content
        # the same keep-alive connection goes on
        assert (await http.get("/healthz")).status_code == 200


@pytest.mark.parametrize("path", ["/ws/audio", "/twilio/stream", "/v1/realtime"])
async def test_invalid_utf8_in_a_text_frame_gets_the_typed_close(
    server: RunningServer, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with websockets.connect(server.ws_url(path)) as ws:
        await ws.send(b'{"type": "\xff\xfe"}', text=True)
        await asyncio.wait_for(ws.wait_closed(), 5)
    assert ws.close_code == 1007 and (ws.close_reason or "").startswith("bad_json")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_urls_come_from_the_public_url_never_the_host_header() -> None:
    token = "twilio-auth-token-for-tests"
    settings = ParleySettings(
        engine=EngineKind.LOOPBACK,
        public_url="https://voice.example.com",
        twilio_auth_token=token,  # type: ignore[arg-type]
    )
    async with (
        serve_app(Parley(settings=settings)) as srv,
        httpx.AsyncClient(base_url=srv.url) as http,
    ):
        evil = {"host": "evil.example"}
        created = (await http.post("/conversations", json={}, headers=evil)).json()
        assert created["websocket_url"].startswith("wss://voice.example.com/ws/audio/")
        form = {"CallSid": "CA9", "From": "+15550100"}
        url = "https://voice.example.com/twilio/voice"
        signature = RequestValidator(token).compute_signature(url, form)
        r = await http.post(
            "/twilio/voice", data=form, headers={**evil, "x-twilio-signature": signature}
        )
        assert r.status_code == 200 and 'url="wss://voice.example.com/twilio/stream"' in r.text
        assert "evil" not in r.text
        # the same signed webhook again: no second token for the call
        again = await http.post(
            "/twilio/voice", data=form, headers={"x-twilio-signature": signature}
        )
        assert "<Reject" in again.text and "token" not in again.text


async def test_without_a_public_url_the_socket_address_is_used(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        created = (
            await http.post("/conversations", json={}, headers={"host": "evil.example"})
        ).json()
    assert created["websocket_url"].startswith(f"ws://127.0.0.1:{server.port}/")


async def test_a_client_chooses_only_the_brains_and_engines_allowed(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post("/conversations", json={"brain": "template"})
        assert r.status_code == 422 and "brain" in r.text
        r = await http.post("/conversations", json={"engine": "realtime"})
        assert r.status_code == 422 and "engine" in r.text
    settings = ParleySettings(engine=EngineKind.LOOPBACK, allowed_brains=["template"])
    async with (
        serve_app(Parley(settings=settings)) as srv,
        httpx.AsyncClient(base_url=srv.url) as http,
    ):
        r = await http.post("/conversations", json={"brain": "template"})
        assert r.status_code == 201 and r.json()["brain"] == "template"


async def test_a_phone_call_over_its_limit_hears_a_refusal() -> None:
    token = "twilio-auth-token-for-tests"
    settings = ParleySettings(
        engine=EngineKind.LOOPBACK,
        twilio_auth_token=token,  # type: ignore[arg-type]
        limits={"phone": {"new_calls": {"capacity": 1, "period_seconds": 3600}}},
    )
    async with (
        serve_app(Parley(settings=settings)) as srv,
        httpx.AsyncClient(base_url=srv.url) as http,
    ):
        url = f"{srv.url}/twilio/voice"
        answers = []
        for sid in ("CA1", "CA2"):
            form = {"CallSid": sid, "From": "+15550199"}
            signature = RequestValidator(token).compute_signature(url, form)
            r = await http.post(
                "/twilio/voice", data=form, headers={"x-twilio-signature": signature}
            )
            answers.append(r.text)
        assert "<Stream" in answers[0]
        assert "<Say>" in answers[1] and "<Hangup" in answers[1] and "<Stream" not in answers[1]


async def test_unauthenticated_sockets_are_capped_per_address() -> None:
    settings = ParleySettings(
        engine=EngineKind.LOOPBACK,
        auth={"api_keys": [{"key": KEY, "user_id": "u1"}]},
    )
    app = Parley(ConversationConfig(enable_auth=True), settings=settings)
    async with serve_app(app) as srv:
        held = [await websockets.connect(srv.ws_url("/ws/audio")) for _ in range(8)]
        try:
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(srv.ws_url("/ws/audio"))
            assert refused.value.response.status_code == 429
            body = json.loads(refused.value.response.body)
            assert body["error"]["code"] == "rate_limited"
        finally:
            for ws in held:
                await ws.close()


def test_with_auth_off_it_will_not_listen_beyond_loopback_unless_told() -> None:
    from parley.errors import ConfigError

    app = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK))
    with pytest.raises(ConfigError, match="authentication off"):
        app.run(host="0.0.0.0")  # refused before anything listens
    for host in ("127.0.0.1", "::1", "localhost"):
        app.switchboard.security.check_exposure(host)
    told = ParleySettings(engine=EngineKind.LOOPBACK, allow_unauthenticated_public=True)
    Parley(settings=told).switchboard.security.check_exposure("0.0.0.0")
    keyed = ParleySettings(
        engine=EngineKind.LOOPBACK, auth={"api_keys": [{"key": KEY, "user_id": "u"}]}
    )
    Parley(
        ConversationConfig(enable_auth=True), settings=keyed
    ).switchboard.security.check_exposure("0.0.0.0")
    banner = [m for _, m in app.switchboard.startup_messages()]
    assert any("authentication is OFF" in m for m in banner)

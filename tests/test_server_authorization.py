"""The authorization matrix over every REST route and every socket of a real server
(uvicorn on loopback, authentication on): no token, a wrong token, an expired one,
the owner with and without the permission, another user, another tenant, an admin
of the tenant and of another — each answered as ``parley.security.tenancy``'s table
(written independently of ``authorize``) says, with 0 wrongly accepted and 0 wrongly
refused."""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
import websockets

from parley.app import Parley
from parley.config import ConversationConfig, EngineKind, ParleySettings
from parley.conversation.triggers import TriggerType
from parley.protocols.browser import (
    ErrorMessage,
    ReadyMessage,
    StartMessage,
    encode_client_message,
    parse_server_frame,
)
from parley.security.principal import Permission
from parley.security.tenancy import Action, MatrixCase, Relation, authorization_matrix
from servers import RunningServer, TwilioPhone, serve_app

SECRET = "matrix-test-secret-0123456789abcdef"
FLOW = Path(__file__).resolve().parent.parent / "examples" / "restaurant_ordering.yaml"
OWNER, TENANT = "alice", "t1"


def token(case: MatrixCase) -> str | None:
    """The credential of a case, for a principal standing in ``case.relation`` to a
    conversation alice@t1 owns."""
    if case.credential == "none":
        return None
    if case.credential == "wrong":
        return "pk_" + secrets.token_urlsafe(32)
    user, tenant = OWNER, TENANT
    if case.relation is Relation.SAME_TENANT:
        user = "bob"
    elif case.relation is Relation.OTHER_TENANT:
        tenant = "t2"  # the same user id in another tenant
    exp = time.time() + (-3600 if case.credential == "expired" else 600)
    claims = {
        "sub": user,
        "tenant": tenant,
        "permissions": sorted(p.value for p in case.permissions),
        "exp": int(exp),
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def bearer(tok: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"} if tok else {}


OWNER_TOKEN = jwt.encode(
    {
        "sub": OWNER,
        "tenant": TENANT,
        "permissions": [p.value for p in Permission if p is not Permission.ADMIN],
        "exp": int(time.time()) + 3600,
    },
    SECRET,
    algorithm="HS256",
)


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    settings = ParleySettings(
        engine=EngineKind.LOOPBACK,
        auth={"jwt": {"secret": SECRET, "algorithms": ["HS256"]}},
        max_pending_per_user=10_000,
    )
    app = Parley(ConversationConfig(enable_auth=True), settings=settings, flow=FLOW)

    @app.context_trigger(TriggerType.EVENT, event="ping")
    async def on_ping(session_id: str, data: dict[str, object]) -> dict[str, object]:
        return {"pong": True}

    async with serve_app(app) as running:
        yield running


async def new_conversation(http: httpx.AsyncClient) -> str:
    r = await http.post("/conversations", json={}, headers=bearer(OWNER_TOKEN))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


#: What a route answers: "accepted" (it did what was asked, or got as far as the
#: conversation's state allows: 409 "not live" for a pending one), else the status.
Outcome = int


@dataclass(frozen=True)
class Surface:
    name: str
    action: Action
    run: Callable[[RunningServer, httpx.AsyncClient, str | None], Awaitable[Outcome]]


def rest(method: str, path: str, body: object | None = None) -> Callable[..., Awaitable[int]]:
    async def run(srv: RunningServer, http: httpx.AsyncClient, tok: str | None) -> int:
        url = path
        if "{id}" in path:
            url = path.replace("{id}", await new_conversation(http))
        r = await http.request(method, url, json=body, headers=bearer(tok))
        return 200 if r.status_code in (200, 201, 202, 409) else r.status_code

    return run


async def healthz(srv: RunningServer, http: httpx.AsyncClient, tok: str | None) -> int:
    cid = await new_conversation(http)
    async with websockets.connect(srv.ws_url(f"/ws/audio/{cid}")) as ws:  # a live call
        await ws.send(encode_client_message(StartMessage(metadata={"token": OWNER_TOKEN})))
        assert isinstance(parse_server_frame(await ws.recv()), ReadyMessage)
        r = await http.get("/healthz", headers=bearer(tok))
        assert r.status_code == 200  # liveness is public
        calls = r.json()["calls"]
    return 200 if any(c["id"] == cid for c in calls) else 403


async def browser_result(ws: websockets.ClientConnection) -> int:
    frame = parse_server_frame(await ws.recv())
    if isinstance(frame, ReadyMessage):
        return 200
    assert isinstance(frame, ErrorMessage) and frame.fatal
    await ws.wait_closed()
    assert ws.close_code == 1008, (ws.close_code, ws.close_reason)
    return {"auth_error": 401, "forbidden": 403, "unknown_conversation": 404}[frame.code]


def browser(claim: bool, *, subprotocol: bool = False) -> Callable[..., Awaitable[int]]:
    """The page's socket: the token in the first ``start`` frame (or a subprotocol)."""

    async def run(srv: RunningServer, http: httpx.AsyncClient, tok: str | None) -> int:
        path = f"/ws/audio/{await new_conversation(http)}" if claim else "/ws/audio"
        offered = [f"openai-insecure-api-key.{tok}"] if subprotocol and tok else None
        try:
            async with websockets.connect(srv.ws_url(path), subprotocols=offered) as ws:
                assert ws.subprotocol is None  # the key is never echoed back
                meta = {"token": tok} if tok and not subprotocol else {}
                # A principal known at the handshake is refused before any frame.
                with contextlib.suppress(websockets.ConnectionClosed):
                    await ws.send(encode_client_message(StartMessage(metadata=meta)))
                return await browser_result(ws)
        except websockets.InvalidStatus as refused:  # a bad subprotocol key: HTTP 401
            return refused.response.status_code

    return run


async def realtime(srv: RunningServer, http: httpx.AsyncClient, tok: str | None) -> int:
    try:
        async with websockets.connect(
            srv.ws_url("/v1/realtime"), additional_headers=bearer(tok)
        ) as ws:
            try:
                first = await ws.recv()
            except websockets.ConnectionClosed:
                return 403 if (ws.close_reason or "").startswith("forbidden") else 500
            assert json.loads(first)["type"] == "session.created"
            return 200
    except websockets.InvalidStatus as refused:
        return refused.response.status_code


async def twilio(srv: RunningServer, http: httpx.AsyncClient, tok: str | None) -> int:
    """A Media Streams socket without Twilio tokens configured: only credentials let
    it in (here the Authorization header a test harness can send)."""
    try:
        async with websockets.connect(
            srv.ws_url("/twilio/stream"), additional_headers=bearer(tok)
        ) as ws:
            phone = TwilioPhone(ws)
            await phone.start({"from": "+15550100"})
            await phone.send_media(b"\xff" * 160)
            try:
                await phone.receive(5.0)
                return 200
            except websockets.ConnectionClosed:
                reason = ws.close_reason or ""
                return 401 if reason.startswith("auth_error") else 403
    except websockets.InvalidStatus as refused:
        return refused.response.status_code


SURFACES = [
    Surface("POST /conversations", Action.CREATE, rest("POST", "/conversations", {})),
    Surface("GET /conversations", Action.LIST, rest("GET", "/conversations")),
    Surface("GET /conversations/{id}", Action.READ, rest("GET", "/conversations/{id}")),
    Surface("GET transcript", Action.READ, rest("GET", "/conversations/{id}/transcript")),
    Surface("GET progress", Action.READ, rest("GET", "/conversations/{id}/progress")),
    Surface(
        "POST context",
        Action.INJECT,
        rest("POST", "/conversations/{id}/context", {"key": "k", "data": "v"}),
    ),
    Surface(
        "POST events", Action.INJECT, rest("POST", "/conversations/{id}/events", {"event": "ping"})
    ),
    Surface("DELETE /conversations/{id}", Action.END, rest("DELETE", "/conversations/{id}")),
    Surface("GET /audit", Action.AUDIT, rest("GET", "/audit")),
    Surface("GET /analytics/summary", Action.ANALYTICS, rest("GET", "/analytics/summary")),
    Surface("GET /analytics/costs", Action.ANALYTICS, rest("GET", "/analytics/costs")),
    Surface("GET /metrics", Action.ANALYTICS, rest("GET", "/metrics")),
    Surface("GET /dashboard/api/summary", Action.ANALYTICS, rest("GET", "/dashboard/api/summary")),
    Surface("GET /healthz call ids", Action.CALL_IDS, healthz),
    Surface("ws /ws/audio/{id}", Action.TALK, browser(True)),
    Surface("ws /ws/audio/{id} subprotocol", Action.TALK, browser(True, subprotocol=True)),
    Surface("ws /ws/audio", Action.CREATE, browser(False)),
    Surface("ws /v1/realtime", Action.CREATE, realtime),
    Surface("ws /twilio/stream", Action.CREATE, twilio),
]


def needs_audio(surface: Surface, case: MatrixCase) -> bool:
    """A new call on a socket needs ``audio`` besides ``conversation``."""
    return (
        surface.name.startswith("ws ")
        and surface.action is Action.CREATE
        and not ({Permission.AUDIO, Permission.ADMIN} & case.permissions)
    )


async def test_authorization_matrix(server: RunningServer) -> None:
    wrong: list[str] = []
    checked = 0
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        for surface in SURFACES:
            for case in authorization_matrix(surface.action):
                expected = case.expected
                if expected == 200 and needs_audio(surface, case):
                    expected = 403
                got = await surface.run(server, http, token(case))
                checked += 1
                if (got == 200) != (expected == 200) or (
                    surface.name[:2] != "ws" and "healthz" not in surface.name and got != expected
                ):
                    wrong.append(f"{surface.name} / {case.name}: {got}, expected {expected}")
    assert checked >= 120
    assert not wrong, "\n".join(wrong)


async def test_another_tenants_conversation_looks_unknown(server: RunningServer) -> None:
    """404 with exactly the body of an id that does not exist: ids cannot be probed."""
    other = MatrixCase("x", "valid", frozenset(Permission), Relation.OTHER_TENANT, 404)
    async with httpx.AsyncClient(base_url=server.url) as http:
        cid = await new_conversation(http)
        theirs = await http.get(f"/conversations/{cid}", headers=bearer(token(other)))
        none = await http.get("/conversations/conv_0000000000000000", headers=bearer(token(other)))
    assert theirs.status_code == none.status_code == 404
    assert theirs.json()["detail"].replace(cid, "ID") == none.json()["detail"].replace(
        "conv_0000000000000000", "ID"
    )

"""REST over a real server: create, inspect, transcript, end; 404 and 422; OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import websockets

from parley.app import Parley
from parley.config import EngineKind, ParleySettings
from parley.protocols.browser import StartMessage, encode_client_message
from servers import serve_app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK))
    async with serve_app(app) as server, httpx.AsyncClient(base_url=server.url) as c:
        yield c


async def test_create_get_transcript_delete(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/conversations",
        json={"system_prompt": "Be brief.", "engine": "loopback", "metadata": {"k": "v"}},
    )
    assert r.status_code == 201
    body = r.json()
    cid = body["id"]
    assert body["websocket_url"] == f"ws://{client.base_url.netloc.decode()}/ws/audio/{cid}"
    assert r.headers["location"] == f"/conversations/{cid}"
    info = (await client.get(f"/conversations/{cid}")).json()
    assert info["status"] == "pending" and info["turns"] == [] and info["metadata"] == {"k": "v"}
    assert set(info["metrics"]) == set()
    transcript = (await client.get(f"/conversations/{cid}/transcript")).json()
    assert transcript == {"id": cid, "turns": [], "text": ""}
    assert (await client.delete(f"/conversations/{cid}")).json() == {"id": cid, "status": "ended"}
    assert (await client.get(f"/conversations/{cid}")).json()["status"] == "ended"


async def test_delete_ends_a_live_call(client: httpx.AsyncClient) -> None:
    created = (await client.post("/conversations", json={})).json()
    async with websockets.connect(created["websocket_url"]) as ws:
        await ws.send(encode_client_message(StartMessage()))
        await ws.recv()  # ready
        info = (await client.get(f"/conversations/{created['id']}")).json()
        assert info["status"] == "live" and info["state"] == "listening"
        r = await client.delete(f"/conversations/{created['id']}")
        assert r.json() == {"id": created["id"], "status": "ended"}
        with pytest.raises(websockets.ConnectionClosedOK):
            await ws.recv()
    info = (await client.get(f"/conversations/{created['id']}")).json()
    assert info["state"] == "ended" and info["ended_at"] is not None


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("GET", "/transcript"), ("DELETE", "")]
)
async def test_unknown_ids_are_404(client: httpx.AsyncClient, method: str, suffix: str) -> None:
    r = await client.request(method, f"/conversations/conv_unknown{suffix}")
    assert r.status_code == 404
    assert "conv_unknown" in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"system_prompt": 5}, "system_prompt"),
        ({"engine": "warp"}, "engine"),
        ({"colour": "blue"}, "colour"),
        ({"brain": "oracle"}, "brain"),
        ({"brain": "openai:"}, "brain"),
        ({"engine": "local", "voice": "nobody"}, "voice"),
        ({"metadata": {"k": 1}}, "metadata"),
    ],
)
async def test_bad_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    r = await client.post("/conversations", json=body)
    assert r.status_code == 422, r.text
    assert field in str(r.json()["detail"])


async def test_not_json_is_422(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/conversations", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422


async def test_openapi_health_and_readiness(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path in ("/conversations", "/conversations/{conversation_id}", "/twilio/voice"):
        assert path in schema["paths"]
    assert "ConversationCreate" in schema["components"]["schemas"]
    assert (await client.get("/docs")).status_code == 200
    health = (await client.get("/healthz")).json()
    assert health["status"] == "ok" and health["active_connections"] == 0
    assert (await client.get("/readyz")).json() == {"ready": True}


async def test_capacity_refuses_new_conversations() -> None:
    """max_calls counts calls that hold a socket; pending conversations count against
    their creator (its limits), not the server: they cannot lock callers out."""
    app = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK, max_calls=1))
    async with serve_app(app) as server, httpx.AsyncClient(base_url=server.url) as c:
        created = [(await c.post("/conversations", json={})) for _ in range(3)]
        assert [r.status_code for r in created] == [201] * 3
        async with websockets.connect(created[0].json()["websocket_url"]) as live:
            await live.send(encode_client_message(StartMessage()))
            await live.recv()  # ready: one live call, the server is full
            full = await c.post("/conversations", json={})
            assert full.status_code == 503 and "capacity" in full.json()["detail"]
            assert (await c.get("/readyz")).status_code == 503
            async with websockets.connect(server.ws_url("/twilio/stream")) as ws:
                with pytest.raises(websockets.ConnectionClosed) as info:
                    await ws.recv()
                assert info.value.rcvd is not None and info.value.rcvd.code == 1013

"""Scale-out against real processes: 2–3 ``parley serve`` nodes sharing a real
``redis-server`` (started on a free port). A REST command landing on any node reaches
the node holding the call's socket; a conversation made on one node is taken by a
socket on another; rate limits count once for all nodes, exactly; Twilio one-time
tokens are single-use across nodes and restarts; a node that dies has its calls
marked ended by its lease."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from parley.protocols.browser import ReadyMessage, StartMessage, encode_client_message
from parley.protocols.browser import parse_server_frame as parse
from parley.testing.redis_server import RedisServer
from servers import ServerProcess, TwilioPhone

TWILIO_TOKEN = "cluster-test-twilio-auth-token"


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def node_env(redis: RedisServer, **extra: str) -> dict[str, str]:
    return {
        "PARLEY_ENGINE": "loopback",
        "PARLEY_REDIS_URL": redis.url,
        "PARLEY_PERSIST_CONVERSATIONS": "true",
        "PARLEY_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        **extra,
    }


async def test_rest_commands_reach_the_node_holding_the_call(redis: RedisServer) -> None:
    with ServerProcess(node_env(redis)) as a, ServerProcess(node_env(redis)) as b:
        async with httpx.AsyncClient(base_url=a.url) as on_a:
            cid = (await on_a.post("/conversations", json={"metadata": {"k": "v"}})).json()["id"]
            # made on A, taken by a socket on B (any node may get it from the load balancer)
            async with websockets.connect(b.ws_url(f"/ws/audio/{cid}")) as ws:
                await ws.send(encode_client_message(StartMessage()))
                assert isinstance(parse(await ws.recv()), ReadyMessage)
                live = (await on_a.get(f"/conversations/{cid}")).json()
                assert live["status"] == "live" and live["kind"] == "browser"
                assert live["metadata"] == {"k": "v"}
                injected = await on_a.post(
                    f"/conversations/{cid}/context", json={"key": "order", "data": {"n": 1}}
                )
                assert injected.status_code == 202, injected.text
                assert injected.json()["key"] == "order" and injected.json()["tokens"] > 0
                # a second socket for the same conversation, on A, is refused
                async with websockets.connect(a.ws_url(f"/ws/audio/{cid}")) as twice:
                    err = parse(await twice.recv())
                    assert getattr(err, "code", "") == "conversation_taken"
                ended = await on_a.delete(f"/conversations/{cid}")
                assert ended.status_code == 200
                await asyncio.wait_for(ws.wait_closed(), 5)
            for _ in range(100):
                info = (await on_a.get(f"/conversations/{cid}")).json()
                if info["status"] == "ended":
                    break
                await asyncio.sleep(0.05)  # node B ends it in its own process: ask A again
            assert info["status"] == "ended" and info["end_reason"] == "requested"


async def test_rate_limits_are_exact_across_two_nodes(redis: RedisServer) -> None:
    """40 requests per 10 hours for the one (anonymous) user: 200 requests spread over
    two processes at once get exactly 40 through."""
    limits = json.dumps({"default": {"requests": {"capacity": 40, "period_seconds": 36000}}})
    env = node_env(redis, PARLEY_LIMITS=limits)
    with ServerProcess(env) as a, ServerProcess(env) as b:
        async with httpx.AsyncClient() as http:
            urls = [f"{(a, b)[i % 2].url}/conversations" for i in range(200)]
            answers = await asyncio.gather(*(http.get(u) for u in urls))
    codes = [r.status_code for r in answers]
    assert codes.count(200) == 40 and codes.count(429) == 160
    assert all(int(r.headers["retry-after"]) >= 1 for r in answers if r.status_code == 429)


def signed_webhook(node: ServerProcess, call_sid: str) -> tuple[dict[str, str], dict[str, str]]:
    form = {"CallSid": call_sid, "From": "+15550123"}
    url = f"{node.url}/twilio/voice"
    return form, {"x-twilio-signature": RequestValidator(TWILIO_TOKEN).compute_signature(url, form)}


async def stream_with(node: ServerProcess, call_sid: str, params: dict[str, str]) -> str:
    """'media' if the stream was served, else the close reason."""
    async with websockets.connect(node.ws_url("/twilio/stream")) as ws:
        phone = TwilioPhone(ws, call_sid=call_sid)
        await phone.start(params)
        await phone.send_media(b"\xff" * 160)
        try:
            kind, _ = await phone.receive()
            return kind
        except websockets.ConnectionClosed:
            return ws.close_reason or ""


async def test_twilio_tokens_are_single_use_across_nodes_and_restarts(
    redis: RedisServer,
) -> None:
    with ServerProcess(node_env(redis)) as a, ServerProcess(node_env(redis)) as b:
        form, headers = signed_webhook(a, "CA77")
        async with httpx.AsyncClient() as http:
            twiml = (await http.post(f"{a.url}/twilio/voice", data=form, headers=headers)).text
            params = dict(
                (name, value)
                for name, value in (
                    part.split('" value="') for part in twiml.split('<Parameter name="')[1:]
                )
            )
            params = {k: v.split('"')[0] for k, v in params.items()}
            assert params["from"] == "+15550123" and params["token"]
            assert await stream_with(b, "CA77", params) == "media"  # minted on A, used on B
            again = await stream_with(a, "CA77", params)
            assert "already used" in again
            # the same signed webhook replayed, on the other node: no fresh token
            form_b, headers_b = signed_webhook(b, "CA77")
            replay = await http.post(f"{b.url}/twilio/voice", data=form_b, headers=headers_b)
            assert "<Reject" in replay.text and "token" not in replay.text
    # every node restarted: the token is still spent
    with ServerProcess(node_env(redis)) as c:
        assert "already used" in await stream_with(c, "CA77", params)


async def test_a_dead_nodes_calls_are_marked_ended_by_its_lease(redis: RedisServer) -> None:
    env = node_env(redis, PARLEY_NODE_LEASE_SECONDS="1")
    with ServerProcess(env) as a:
        b = ServerProcess(env).start()
        try:
            async with websockets.connect(b.ws_url("/ws/audio")) as ws:
                await ws.send(encode_client_message(StartMessage()))
                ready = parse(await ws.recv())
                assert isinstance(ready, ReadyMessage)
                b.kill()  # SIGKILL: the lease lapses, nobody ends the call
                b.wait(10)
        except websockets.ConnectionClosed:
            pass
        finally:
            b.stop()
        async with httpx.AsyncClient(base_url=a.url) as http:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                info = (await http.get(f"/conversations/{ready.session_id}")).json()
                if info["status"] == "ended":
                    break
                await asyncio.sleep(0.1)  # the lease lapses on the clock, seen by another process
        assert info["status"] == "ended" and info["end_reason"] == "node_lost"

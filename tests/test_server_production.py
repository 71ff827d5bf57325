"""The seed's production switches, accepted and working end to end:
``ConversationConfig(enable_auth=True, rate_limit_per_minute=60, enable_caching=True)``,
``ParleyBackend(session_store=RedisSessionStore(url=…), persist_conversations=True)``
and ``compliance_mode="HIPAA"`` (redaction and encryption at rest, redacted logs, the
audit log for admins)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from parley.app import Parley, ParleyBackend
from parley.config import ConversationConfig, EngineKind, ParleySettings
from parley.protocols.browser import (
    PlaybackMessage,
    ReadyMessage,
    ResponseDoneMessage,
    StartMessage,
    UserTextMessage,
    encode_client_message,
    parse_server_frame,
)
from parley.store.compliance import generate_key
from parley.store.redis_sessions import RedisSessionStore
from parley.testing.redis_server import RedisServer
from servers import RunningServer, serve_app

ADMIN = "pk_production-admin-key-0123456789abcdef"
USER = "pk_production-user-key-0123456789abcdefg"
KEYS = {
    "api_keys": [
        {"key": ADMIN, "user_id": "root", "permissions": ["admin"]},
        {"key": USER, "user_id": "u1", "permissions": ["conversation", "audio"]},
    ]
}
CARD = "4111 1111 1111 1111"


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def local(**extra: object) -> ParleySettings:
    return ParleySettings(engine=EngineKind.LOCAL, brain="echo", vad="energy", **extra)  # type: ignore[arg-type]


async def talk(srv: RunningServer, texts: list[str], *, token: str = "", user: str = "") -> str:
    """A browser call that types ``texts`` (the echo answers each); its session id."""
    async with websockets.connect(srv.ws_url("/ws/audio"), max_size=None) as ws:
        meta = {"token": token} if token else {}
        await ws.send(encode_client_message(StartMessage(metadata=meta, user_id=user or None)))
        ready = parse_server_frame(await ws.recv())
        assert isinstance(ready, ReadyMessage), ready
        for text in texts:
            await ws.send(encode_client_message(UserTextMessage(text=text)))
            while True:
                frame = await ws.recv()
                msg = parse_server_frame(frame) if isinstance(frame, str) else None
                if isinstance(msg, ResponseDoneMessage):
                    done = PlaybackMessage(response_id=msg.response_id, played_ms=9e4, done=True)
                    await ws.send(encode_client_message(done))
                    break
        await ws.send('{"type":"stop"}')
        await ws.wait_closed()
    return ready.session_id


def _database_bytes(folder: Path) -> bytes:
    """The SQLite file and its WAL, as they lie on disk."""
    return b"".join(p.read_bytes() for p in sorted(folder.glob("parley.db*")))


async def test_the_seed_config_is_accepted_and_works() -> None:
    config = ConversationConfig(enable_auth=True, rate_limit_per_minute=60, enable_caching=True)
    app = Parley(config, settings=local(auth=KEYS))
    fetched: list[str | None] = []

    @app.context_provider
    async def profile(user_id: str | None) -> dict[str, str]:
        fetched.append(user_id)
        return {"plan": "gold"}

    async with serve_app(app) as srv, httpx.AsyncClient(base_url=srv.url) as http:
        assert (await http.get("/conversations")).status_code == 401
        await talk(srv, ["hello"], token=USER)
        await talk(srv, ["hello again"], token=USER)
        assert fetched == ["u1"]  # the second call's context came from the cache
        await app.invalidate_context("u1")
        await talk(srv, ["and again"], token=USER)
        assert fetched == ["u1", "u1"]
        codes = [
            (await http.get("/conversations", headers={"x-api-key": USER})).status_code
            for _ in range(61)
        ]
        assert codes.count(200) == 60 and codes[-1] == 429


async def test_a_redis_session_store_keeps_calls_for_every_instance(redis: RedisServer) -> None:
    first = ParleyBackend(
        settings=local(),
        session_store=RedisSessionStore(url=redis.url),
        persist_conversations=True,
    )
    async with serve_app(first) as srv:
        session = await talk(srv, ["one two three"])
    second = ParleyBackend(settings=local(), session_store=RedisSessionStore(url=redis.url))
    async with serve_app(second) as srv, httpx.AsyncClient(base_url=srv.url) as http:
        info = (await http.get(f"/conversations/{session}")).json()
    assert info["status"] == "ended"
    assert [t["text"] for t in info["turns"]] == ["one two three", "You said: one two three"]


async def test_hipaa_mode_redacts_and_encrypts_at_rest_and_in_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "parley.db"
    settings = local(
        auth=KEYS,
        persist_conversations=True,
        session_db=db,
        encryption_key=generate_key(),
        conversation=ConversationConfig(enable_auth=True),
    )
    app = Parley(settings=settings, compliance_mode="HIPAA")
    assert not app.switchboard.storage.policy.retain_audio
    async with serve_app(app) as srv, httpx.AsyncClient(base_url=srv.url) as http:
        logging.getLogger("parley.test").warning("card %s", CARD)
        session = await talk(srv, [f"my card is {CARD}"], token=USER)
        user = {"x-api-key": USER}
        info = (await http.get(f"/conversations/{session}", headers=user)).json()
        said = [t["text"] for t in info["turns"]]
        assert said[0] == "my card is [redacted card number]"  # redacted before it was kept
        assert all(CARD not in t for t in said)
        # the audit log: the admin reads it, a user may not
        assert (await http.get("/audit", headers=user)).status_code == 403
        audit = (await http.get("/audit", headers={"x-api-key": ADMIN})).json()["entries"]
        actions = {e["action"] for e in audit}
        assert "conversation.read" in actions and "audit.read" in actions
    raw = _database_bytes(tmp_path)
    assert CARD.encode() not in raw and b"my card is" not in raw  # redacted, then encrypted
    with sqlite3.connect(db) as conn:
        texts = [r[0] for r in conn.execute("SELECT text FROM turns")]
    assert texts and all(t.startswith("enc:v1:") for t in texts)
    logged = [r.getMessage() for r in caplog.records if r.name == "parley.test"]
    assert logged == ["card [redacted card number]"]  # the log boundary redacts too

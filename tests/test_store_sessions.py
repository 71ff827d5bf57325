"""Session stores: one behaviour for memory, SQLite and Redis (a real redis-server),
and SQLite's durability when the writer is SIGKILLed mid-call."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from parley.conversation.transcript import Turn
from parley.events import Role
from parley.store.memory import MemorySessionStore
from parley.store.records import SessionRecord, SessionStore, StoredTurn, UnknownSession
from parley.store.redis_sessions import RedisSessionStore
from parley.store.sqlite import SqliteSessionStore
from parley.testing.redis_server import RedisServer
from store_procs import turn_text


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with RedisServer() as server:
        yield server.url


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str
) -> AsyncIterator[SessionStore]:
    s: SessionStore
    if request.param == "memory":
        s = MemorySessionStore()
    elif request.param == "sqlite":
        s = SqliteSessionStore(tmp_path / "app" / "parley.db")
    else:
        s = RedisSessionStore(url=redis_url, prefix=f"t{os.urandom(4).hex()}")
    assert isinstance(s, SessionStore)
    yield s
    await s.aclose()


def _rec(sid: str, tenant: str = "acme", user: str = "alice", at: float = 100.0) -> SessionRecord:
    return SessionRecord(
        sid, tenant, user, at, status="live", platform="browser",
        metadata={"lang": "fr", "note": "é"}, config={"system_prompt": "Be brief."},
    )  # fmt: skip


async def test_round_trip_turns_in_order_and_idempotent(store: SessionStore) -> None:
    await store.save_record(_rec("s1"))
    user = Turn(Role.USER, "hello there", 101.0, 102.0)
    await store.append_turn("s1", StoredTurn.from_turn(user, 0))
    await store.append_turn("s1", StoredTurn(2, "assistant", "second answer", 105.0, 106.0))
    await store.append_turn("s1", StoredTurn(1, "assistant", "hi", 103.0, 104.0, interrupted=True))
    await store.append_turn("s1", StoredTurn(1, "assistant", "hi!", 103.0, 104.0, interrupted=True))
    loaded = await store.load("s1")
    assert loaded is not None
    assert [t.index for t in loaded.turns] == [0, 1, 2]
    assert loaded.turns[1].text == "hi!" and loaded.turns[1].interrupted
    assert loaded.turns[0] == StoredTurn(0, "user", "hello there", 101.0, 102.0)
    assert loaded.record.metadata == {"lang": "fr", "note": "é"}
    assert loaded.record.config == {"system_prompt": "Be brief."}
    assert loaded.record.updated_at == 106.0
    with pytest.raises(UnknownSession):
        await store.append_turn("nope", StoredTurn(0, "user", "x", 1.0))
    assert await store.load("nope") is None


async def test_list_filters_by_tenant_user_status_newest_first(store: SessionStore) -> None:
    await store.save_record(_rec("a1", at=1.0))
    await store.save_record(_rec("a2", at=2.0))
    await store.save_record(_rec("b1", user="bob", at=3.0))
    await store.save_record(_rec("x1", tenant="globex", at=4.0))
    assert [r.session_id for r in await store.list(tenant="acme", user_id="alice")] == ["a2", "a1"]
    assert [r.session_id for r in await store.list(tenant="acme")] == ["b1", "a2", "a1"]
    assert [r.session_id for r in await store.list(tenant="acme", limit=1)] == ["b1"]
    assert {r.session_id for r in await store.list(tenant=None)} == {"a1", "a2", "b1", "x1"}
    assert await store.mark_ended("a1", ended_at=10.0, reason="disconnected")
    assert not await store.mark_ended("a1", ended_at=11.0, reason="again")
    assert not await store.mark_ended("zz", ended_at=11.0)
    ended = await store.list(tenant="acme", status="ended")
    assert [(r.session_id, r.ended_at, r.end_reason) for r in ended] == [
        ("a1", 10.0, "disconnected")
    ]
    assert [r.session_id for r in await store.list(tenant="acme", status="live")] == ["b1", "a2"]


async def test_resume_history_and_purge(store: SessionStore) -> None:
    await store.save_record(_rec("r1", at=50.0))
    await store.append_turn("r1", StoredTurn(0, "user", "my order is late", 51.0, 52.0))
    await store.append_turn(
        "r1", StoredTurn(1, "assistant", "Sorry, a provider failed", 53.0, 54.0, failed=True)
    )
    await store.append_turn("r1", StoredTurn(2, "assistant", "Let me check.", 55.0, 56.0))
    await store.mark_ended("r1", ended_at=60.0, reason="disconnected")
    session = await store.load("r1")
    assert session is not None
    assert session.resumable(now=100.0, within_seconds=60)
    assert not session.resumable(now=200.0, within_seconds=60)
    assert [(m.role, m.content) for m in session.history()] == [
        (Role.USER, "my order is late"),
        (Role.ASSISTANT, "Let me check."),
    ]
    await store.save_record(_rec("old", at=1.0))
    await store.mark_ended("old", ended_at=5.0, reason="completed")
    await store.save_record(_rec("new", at=70.0))
    assert await store.purge_older_than(55.0) == 1
    assert await store.load("old") is None
    assert await store.load("r1") is not None
    assert [r.session_id for r in await store.list(tenant="acme")] == ["new", "r1"]
    assert await store.delete("new") and not await store.delete("new")


async def test_redis_keys_expire_and_listing_forgets_expired(redis_url: str) -> None:
    store = RedisSessionStore(url=redis_url, prefix="ttl", ttl_seconds=100)
    try:
        await store.save_record(_rec("e1"))
        await store.append_turn("e1", StoredTurn(0, "user", "hi", 1.0))
        assert 0 < await store.client.ttl("ttl:session:e1") <= 100
        assert 0 < await store.client.ttl("ttl:session:e1:turns") <= 100
        await store.client.delete("ttl:session:e1")  # as if it had expired
        assert await store.list(tenant="acme") == []
        assert await store.client.zcard("ttl:sessions:t:acme") == 0
    finally:
        await store.aclose()


async def test_sqlite_two_connections_see_each_others_commits(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    a, b = SqliteSessionStore(path), SqliteSessionStore(path)
    try:
        await a.save_record(_rec("w1"))
        await a.append_turn("w1", StoredTurn(0, "user", "from a", 1.0))
        loaded = await b.load("w1")
        assert loaded is not None and loaded.turns[0].text == "from a"
        mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    finally:
        await a.aclose()
        await b.aclose()


def _kill_writer_mid_call(path: Path, after: int, synchronous: str) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    code = f"import store_procs; store_procs.write({str(path)!r}, {synchronous!r})"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    acked = -1
    try:
        for line in proc.stdout:
            acked = int(line)
            if acked >= after:
                os.kill(proc.pid, signal.SIGKILL)  # while it writes the next turn
                break
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return acked


@pytest.mark.parametrize(("after", "synchronous"), [(40, "NORMAL"), (97, "NORMAL"), (60, "FULL")])
async def test_sigkill_mid_call_loses_no_finished_turn(
    tmp_path: Path, after: int, synchronous: str
) -> None:
    path = tmp_path / "parley.db"
    acked = await asyncio.to_thread(_kill_writer_mid_call, path, after, synchronous)
    assert acked == after
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    reader = SqliteSessionStore(path)
    try:
        session = await reader.load("call-1")
    finally:
        await reader.aclose()
    assert session is not None
    indexes = [t.index for t in session.turns]
    # every acknowledged turn is there, in order, intact; at most the one in flight more
    assert indexes == list(range(len(indexes))) and acked + 1 <= len(indexes) <= acked + 2
    assert all(t.text == turn_text(t.index) for t in session.turns)

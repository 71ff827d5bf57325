"""Compliance: the append-only audit log (SQLite, Redis stream, memory) readable by
admins only; PII redaction at the store and log boundaries; AES-GCM encryption of
transcript fields at rest; HIPAA policy and retention purge."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from parley.errors import AuthError, ConfigError
from parley.security import Permission, Principal
from parley.security.auditing import entry_for, read_audit
from parley.store.audit import AuditEntry, AuditLog, MemoryAuditLog, SqliteAuditLog
from parley.store.compliance import (
    CompliancePolicy,
    FieldCipher,
    ProtectedSessionStore,
    RedactingFilter,
    RetentionJob,
    generate_key,
)
from parley.store.memory import MemorySessionStore
from parley.store.records import SessionRecord, StoredTurn
from parley.store.redis_audit import RedisAuditLog
from parley.store.redis_sessions import RedisSessionStore
from parley.store.sqlite import SqliteSessionStore
from parley.testing.redis_server import RedisServer

CARD = "4111 1111 1111 1111"
SSN = "123-45-6789"
ADMIN = Principal("root", tenant="acme", permissions=frozenset({Permission.ADMIN}))
USER = Principal("alice", tenant="acme", permissions=frozenset({Permission.CONVERSATION}))


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with RedisServer() as server:
        yield server.url


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def audit(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str
) -> AsyncIterator[AuditLog]:
    log: AuditLog
    if request.param == "memory":
        log = MemoryAuditLog()
    elif request.param == "sqlite":
        log = SqliteAuditLog(tmp_path / "audit.db")
    else:
        log = RedisAuditLog(url=redis_url, prefix=f"t{os.urandom(3).hex()}")
    yield log
    await log.aclose()


async def test_audit_log_who_what_when_outcome_admin_only(audit: AuditLog) -> None:
    await audit.append(
        entry_for(
            None,
            "auth.failure",
            "denied",
            target="/conversations",
            client="127.0.0.9",
            detail={"reason": "expired token"},
        )
    )
    await audit.append(entry_for(USER, "conversation.create", "ok", target="c1"))
    await audit.append(
        entry_for(Principal("mallory", tenant="globex"), "conversation.end", "ok", target="g1")
    )
    with pytest.raises(AuthError, match="admin"):
        await read_audit(audit, USER)
    got = await read_audit(audit, ADMIN)
    # the tenant's entries, newest first; the refused read of alice is itself recorded
    assert [(e.actor, e.action, e.outcome) for e in got] == [
        ("alice", "audit.read", "denied"),
        ("alice", "conversation.create", "ok"),
    ]
    assert got[1].target == "c1" and got[1].method == "api_key" and got[1].at > 0
    again = await read_audit(audit, ADMIN, action="audit.read")
    assert [e.outcome for e in again] == ["ok", "denied"]
    everyone = await audit.read(tenant=None)
    assert {e.tenant for e in everyone} == {"", "acme", "globex"}
    failure = next(e for e in everyone if e.action == "auth.failure")
    assert failure.detail == {"reason": "expired token"} and failure.client == "127.0.0.9"
    assert [e.action for e in await audit.read(tenant=None, limit=1)] == ["audit.read"]


async def test_sqlite_audit_table_refuses_update_and_delete(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "a.db")
    await log.append(AuditEntry("x", "ok", actor="a", tenant="t"))
    await log.aclose()
    conn = sqlite3.connect(tmp_path / "a.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit SET outcome = 'denied'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit")
    assert conn.execute("SELECT count(*) FROM audit").fetchone()[0] == 1


def test_cipher_round_trip_binds_row_and_rotates() -> None:
    k_old, k_new = generate_key(), generate_key()
    old = FieldCipher.from_setting(f"old:{k_old}")
    token = old.encrypt("my card is " + CARD, "s1:0")
    assert CARD not in token and token.startswith("enc:v1:old:")
    assert old.decrypt(token, "s1:0") == "my card is " + CARD
    with pytest.raises(ConfigError, match="altered or moved"):
        old.decrypt(token, "s1:1")  # copied into another row
    # rotation: the new key encrypts, the old one still decrypts old rows
    both = FieldCipher.from_setting(f"new:{k_new},old:{k_old}")
    assert both.decrypt(token, "s1:0").endswith(CARD)
    assert both.encrypt("x", "a").startswith("enc:v1:new:")
    with pytest.raises(ConfigError, match="no key 'old'"):
        FieldCipher.from_setting(f"new:{k_new}").decrypt(token, "s1:0")
    assert old.decrypt("plain text from before", "x") == "plain text from before"
    with pytest.raises(ConfigError):
        FieldCipher.from_setting("k1:c2hvcnQ=")


async def _protected_round_trip(inner_path: Path) -> None:
    key = generate_key()
    policy = CompliancePolicy.from_settings("HIPAA", encryption_key=key, retention_days=7)
    assert (policy.retain_audio, policy.redact_at_rest, policy.synchronous) == (False, True, "FULL")
    raw = SqliteSessionStore(inner_path, synchronous=policy.synchronous)
    store = policy.protect(raw)
    assert isinstance(store, ProtectedSessionStore)
    await store.save_record(
        SessionRecord(
            "s1",
            "acme",
            "alice",
            1.0,
            metadata={"email": "a@example.com", "n": 3},
            config={"system_prompt": "You help Dr. Who"},
        )
    )
    await store.append_turn(
        "s1", StoredTurn(0, "user", f"my card is {CARD} and ssn {SSN}", 2.0, 3.0)
    )
    loaded = await store.load("s1")
    assert loaded is not None
    assert (
        loaded.turns[0].text
        == "my card is [redacted card number] and ssn [redacted social security number]"
    )
    assert loaded.record.metadata == {"email": "[redacted email address]", "n": 3}
    assert loaded.record.config == {"system_prompt": "You help Dr. Who"}
    listed = await store.list(tenant="acme")
    assert listed[0].metadata["n"] == 3
    await store.aclose()
    # at rest: neither the PII nor even the redacted text is readable
    dump = "\n".join(sqlite3.connect(inner_path).iterdump())
    for clear in (CARD, SSN, "a@example.com", "redacted card", "Dr. Who"):
        assert clear not in dump
    assert "enc:v1:k1:" in dump
    # another key cannot read it
    wrong = FieldCipher.from_setting(generate_key())
    other = ProtectedSessionStore(SqliteSessionStore(inner_path), cipher=wrong)
    with pytest.raises(ConfigError):
        await other.load("s1")
    await other.aclose()


async def test_hipaa_store_redacts_and_encrypts_at_rest(tmp_path: Path) -> None:
    await _protected_round_trip(tmp_path / "hipaa.db")


async def test_redaction_only_on_redis_store(redis_url: str) -> None:
    inner = RedisSessionStore(url=redis_url, prefix="red")
    store = CompliancePolicy.from_settings(redact_at_rest=True).protect(inner)
    await store.save_record(SessionRecord("r1", "acme", "alice", 1.0))
    await store.append_turn("r1", StoredTurn(0, "user", f"call me at 415-555-2671 ({SSN})", 2.0))
    raw = await inner.client.hgetall("red:session:r1:turns")
    stored = next(iter(raw.values())).decode()
    assert (
        "415-555-2671" not in stored and SSN not in stored and "[redacted phone number]" in stored
    )
    await store.aclose()
    assert CompliancePolicy.from_settings().protect(inner) is inner  # nothing to apply


def test_policy_settings_errors() -> None:
    with pytest.raises(ConfigError, match="encryption key"):
        CompliancePolicy.from_settings("HIPAA")
    with pytest.raises(ConfigError, match="compliance_mode"):
        CompliancePolicy.from_settings("SOX", encryption_key=generate_key())


def test_log_filter_redacts_messages_and_args(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("parley.test.redaction")
    handler = logging.Handler()
    seen: list[str] = []
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    try:
        logger.warning("caller said %s, email %s", CARD, "bob@example.org")
        logger.warning("nothing to hide here: %d turns", 3)
    finally:
        logger.removeHandler(handler)
    assert seen == [
        "caller said [redacted card number], email [redacted email address]",
        "nothing to hide here: 3 turns",
    ]


async def test_retention_job_purges_old_sessions() -> None:
    now = [100 * 86400.0]
    store = MemorySessionStore()
    await store.save_record(SessionRecord("old", "acme", "a", now[0] - 10 * 86400))
    await store.mark_ended("old", ended_at=now[0] - 9 * 86400)
    await store.save_record(SessionRecord("recent", "acme", "a", now[0] - 86400))
    job = RetentionJob(store, retention_days=7, clock=lambda: now[0])
    assert await job.run_once() == 1
    assert await store.load("old") is None and await store.load("recent") is not None
    job.start()  # the background loop runs its first purge at once, then every hour
    await job.aclose()
    with pytest.raises(ConfigError):
        RetentionJob(store, retention_days=0)

"""Sessions, transcripts, audit and caches at rest: memory, SQLite (the default) and
Redis; and the cluster primitives (per-node channels, the call directory) on Redis.

The Redis implementations (``redis_sessions.RedisSessionStore``, ``redis_kv``,
``redis_audit``, ``cluster``) live in their own modules so this package imports
without the ``redis`` extra."""

from __future__ import annotations

from parley.store.audit import AuditEntry, AuditLog, MemoryAuditLog, SqliteAuditLog
from parley.store.cache import CachedProvider, ContextCache, MemoryContextCache
from parley.store.kv import MemoryKV, OnceStore, SecretStore
from parley.store.memory import MemorySessionStore
from parley.store.records import SessionRecord, SessionStore, StoredSession, StoredTurn
from parley.store.sqlite import SqliteSessionStore

__all__ = [
    "AuditEntry",
    "AuditLog",
    "CachedProvider",
    "ContextCache",
    "MemoryAuditLog",
    "MemoryContextCache",
    "MemoryKV",
    "MemorySessionStore",
    "OnceStore",
    "SecretStore",
    "SessionRecord",
    "SessionStore",
    "SqliteAuditLog",
    "SqliteSessionStore",
    "StoredSession",
    "StoredTurn",
]

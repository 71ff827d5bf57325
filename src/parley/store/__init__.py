"""Sessions, transcripts, audit and caches at rest: memory, SQLite (the default) and
Redis; and the cluster primitives (per-node channels, the call directory) on Redis.
Redis implementations live in their own modules so the package imports without redis."""

from __future__ import annotations

from parley.store.kv import MemoryKV, OnceStore, SecretStore

__all__ = ["MemoryKV", "OnceStore", "SecretStore"]

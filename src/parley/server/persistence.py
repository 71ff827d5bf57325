"""The switchboard's storage side: what is kept, where, and how a call reaches it.

:class:`Storage` builds from the settings (or from what the app passed:
``Parley(session_store=RedisSessionStore(url=…), persist_conversations=True)``) every
store the server keeps state in, all on one backend:

==================  ==============================  ==============================
                    one node                        many nodes (``redis_url``)
==================  ==============================  ==============================
sessions            SQLite file (``session_db``) or  ``RedisSessionStore``
                    memory (not persisted)
limits              ``MemoryLimiter`` (per process)  ``RedisLimiter`` (atomic Lua)
one-time tokens,    ``SqliteKV`` (the same file:     ``RedisKV``
client secrets      workers, restarts) or memory
audit log           SQLite (the same file) / memory  a Redis stream
context cache       ``MemoryContextCache``           ``RedisContextCache``
==================  ==============================  ==============================

The session store is wrapped by the compliance policy (redaction and encryption at
rest, ``parley.store.compliance``). :class:`Persistence` is what the switchboard
calls: a session record saved when a conversation is created, when its call goes
live and when it ends (with a summary: metrics, errors, the engine that served), and
each finished turn committed from :class:`TurnWriter` before the next event of the
call is handled. Ended calls then live only here (the switchboard forgets them), so
REST reads them from the store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis

from parley.config import ConversationConfig, ParleySettings
from parley.conversation.context import ContextProvider
from parley.conversation.transcript import Turn
from parley.engines.seams import HistorySeedable
from parley.engines.spec import EngineKind
from parley.events import Event, Interrupted, ResponseDone, Role, TranscriptFinal
from parley.security.limits import Limiter, MemoryLimiter
from parley.store.audit import AuditLog, MemoryAuditLog, SqliteAuditLog
from parley.store.cache import CachedProvider, ContextCache, MemoryContextCache, cache_scope
from parley.store.compliance import CompliancePolicy, RedactingFilter, RetentionJob
from parley.store.kv import MemoryKV
from parley.store.memory import MemorySessionStore
from parley.store.records import SessionRecord, SessionStore, StoredSession, StoredTurn
from parley.store.redis_kv import RedisKV
from parley.store.sqlite import SqliteSessionStore
from parley.store.sqlite_kv import SqliteKV

__all__ = ["ContextCaching", "Persistence", "Storage", "TurnWriter", "resume", "stored_info"]

log = logging.getLogger("parley.server")

#: An ended call's figures by call id (None when there are none).
Figures = Callable[[str], dict[str, Any] | None]

_TURN_EVENTS: Final = frozenset({TranscriptFinal, ResponseDone, Interrupted})


@dataclass(slots=True)
class Storage:
    """Every store of one server (see the module docstring)."""

    sessions: SessionStore
    kv: MemoryKV | RedisKV | SqliteKV
    limiter: Limiter
    audit: AuditLog
    cache: ContextCache
    policy: CompliancePolicy
    redis: Redis | None = None
    #: Sessions survive a restart of the process (SQLite or Redis).
    durable: bool = False
    _retention: RetentionJob | None = None
    _log_filter: RedactingFilter | None = None

    @classmethod
    def from_settings(
        cls,
        settings: ParleySettings,
        *,
        session_store: SessionStore | None = None,
        persist: bool | None = None,
        compliance_mode: str | None = None,
    ) -> Storage:
        from parley.store.redis_sessions import RedisSessionStore

        key = settings.encryption_key
        policy = CompliancePolicy.from_settings(
            compliance_mode or settings.compliance_mode,
            encryption_key=key.get_secret_value() if key is not None else None,
            retention_days=settings.retention_days,
        )
        redis: Redis | None = None
        if settings.redis_url:
            redis = Redis.from_url(settings.redis_url)
        elif isinstance(session_store, RedisSessionStore):
            redis = session_store.client  # the app's Redis carries the rest too
        persisting = settings.persist_conversations if persist is None else persist
        kind = settings.session_store
        if kind is None:
            kind = ("redis" if redis is not None else "sqlite") if persisting else "memory"
        store: SessionStore
        durable = True
        if session_store is not None:
            store = session_store
        elif kind == "redis":
            if redis is None:
                from parley.errors import ConfigError

                raise ConfigError("session_store redis needs redis_url", field="redis_url")
            store = RedisSessionStore(client=redis)
        elif kind == "sqlite":
            store = SqliteSessionStore(settings.session_db, synchronous=policy.synchronous)
        else:
            store, durable = MemorySessionStore(), False
        audit: AuditLog
        if redis is not None:
            from parley.security.redis_limiter import RedisLimiter
            from parley.store.redis_audit import RedisAuditLog
            from parley.store.redis_kv import RedisContextCache

            kv: MemoryKV | RedisKV | SqliteKV = RedisKV(client=redis)
            limiter: Limiter = RedisLimiter(client=redis)
            audit = RedisAuditLog(client=redis)
            cache: ContextCache = RedisContextCache(client=redis)
        else:
            limiter, cache = MemoryLimiter(), MemoryContextCache()
            if kind == "sqlite" and session_store is None:
                # The workers of one machine share claims and secrets, across restarts.
                kv = SqliteKV(settings.session_db, synchronous=policy.synchronous)
                audit = SqliteAuditLog(settings.session_db, synchronous=policy.synchronous)
            else:
                kv, audit = MemoryKV(), MemoryAuditLog()
        return cls(policy.protect(store), kv, limiter, audit, cache, policy, redis, durable)

    def describe(self, node_id: str = "") -> str:
        """The start banner's line about what is kept where."""
        where = repr(self.sessions) if self.durable else "in memory (not persisted)"
        cluster = f"; cluster node {node_id} on Redis" if node_id else ""
        return f"sessions: {where}; compliance: {self.policy.mode}{cluster}"

    def start(self, *, redact_logs: bool = False) -> None:
        """Start the retention purge (if set) and the log redactor (if asked, or HIPAA)."""
        days = self.policy.retention_days
        if days is not None and self._retention is None:
            self._retention = RetentionJob(self.sessions, days)
            self._retention.start()
        if (redact_logs or self.policy.mode == "HIPAA") and self._log_filter is None:
            self._log_filter = RedactingFilter.install()

    async def aclose(self) -> None:
        if self._log_filter is not None:  # the handlers are the process's: leave them clean
            for handler in logging.getLogger().handlers:
                handler.removeFilter(self._log_filter)
            self._log_filter = None
        if self._retention is not None:
            await self._retention.aclose()
            self._retention = None
        await self.sessions.aclose()
        await self.audit.aclose()
        if isinstance(self.kv, SqliteKV):
            await self.kv.aclose()
        if self.redis is not None:
            await self.redis.aclose()


def _config(record: Any) -> dict[str, Any]:
    return {
        "engine": record.engine.value,
        "brain": record.brain,
        "voice": record.voice,
        "system_prompt": record.system_prompt,
        "user_id": record.user_id,
        "call_sid": record.call_sid,
        "flow": record.flow.as_dict() if record.flow is not None else None,
        "max_seconds": record.max_seconds,
    }


def _summary(record: Any, figures: Figures | None) -> dict[str, Any]:
    journal = record.journal
    out: dict[str, Any] = {"serving": record.serving, "started_at": record.started_at}
    if figures is not None and (found := figures(record.id)) is not None:
        out["figures"] = found  # metrics, per-turn latency, cost, engagement, analytics
    if journal is not None:
        out["errors"] = [
            {"code": e.code, "message": e.message, "fatal": e.fatal} for e in journal.errors
        ]
    return out


def stored_info(stored: StoredSession) -> dict[str, Any]:
    """A stored session as the fields of REST's ``ConversationInfo``."""
    r = stored.record
    cfg, summary = r.config, r.config.get("summary") or {}
    errors = list(summary.get("errors") or [])
    return {
        "id": r.session_id,
        "kind": r.platform or None,
        "status": r.status,
        "state": "ended" if r.status == "ended" else None,
        "engine": cfg.get("engine", EngineKind.LOCAL.value),
        "serving": summary.get("serving") or cfg.get("engine", EngineKind.LOCAL.value),
        "brain": cfg.get("brain", ""),
        "voice": cfg.get("voice", ""),
        "user_id": cfg.get("user_id"),
        "metadata": {str(k): str(v) for k, v in r.metadata.items()},
        "created_at": r.created_at,
        "started_at": summary.get("started_at"),
        "ended_at": r.ended_at,
        "turns": [
            {
                "role": t.role,
                "text": t.text,
                "started_at": t.started_at,
                "ended_at": t.ended_at,
                "interrupted": t.interrupted,
                "response_id": t.response_id,
                "failed": t.failed,
            }
            for t in stored.turns
        ],
        **(summary.get("figures") or {}),
        "error": errors[-1] if errors else None,
        "errors": errors,
        "end_reason": r.end_reason,
    }


class TurnWriter:
    """``LiveCall``'s after-event hook: commits each finished turn, in order.

    A turn is finished once it has an end and its text (a user turn gets its text from
    its final transcript, after its end). Turns are numbered as they are written, in
    transcript order: a finished turn waits for an unfinished one before it. A written
    reply that a barge-in later cuts (``Interrupted``: its text becomes what the caller
    heard) is written again under its number; the store keeps it even when the
    transcript drops it for having been heard not at all.
    """

    __slots__ = ("_adopt", "_failed", "_store", "_written", "next_index", "record")

    def __init__(self, store: SessionStore, record: Any, *, start: int = 0) -> None:
        """``start``: the transcript begins with that many turns already stored (a
        resumed session's, put there before its first event)."""
        self._store = store
        self.record = record
        self.next_index = start
        self._adopt = start
        self._written: dict[int, tuple[Turn, int]] = {}  # id(turn) -> (turn, index)
        self._failed = False

    async def __call__(self, event: Event) -> None:
        if type(event) not in _TURN_EVENTS:
            return
        journal = self.record.journal
        if journal is None:
            return
        if self._adopt:
            for index, turn in enumerate(journal.transcript.turns[: self._adopt]):
                self._written[id(turn)] = (turn, index)
            self._adopt = 0
        if isinstance(event, Interrupted):
            for turn, index in self._written.values():
                if turn.response_id == event.response_id:
                    await self._write(turn, index)
        for turn in journal.transcript:
            if id(turn) in self._written:
                continue
            if turn.ended_at is None or not turn.text:
                return
            index = self.next_index
            if not await self._write(turn, index):
                return
            self._written[id(turn)] = (turn, index)
            self.next_index += 1

    async def _write(self, turn: Turn, index: int) -> bool:
        try:
            await self._store.append_turn(self.record.id, StoredTurn.from_turn(turn, index))
        except Exception as exc:  # the store's failure must not drop the call
            if not self._failed:
                log.error("call %s: a turn was not stored: %s", self.record.id, exc)
            self._failed = True
            return False
        return True


class Persistence:
    """What the switchboard tells the session store about each call."""

    def __init__(
        self,
        storage: Storage,
        *,
        node_id: str,
        resume_seconds: float,
        figures: Figures | None = None,
    ) -> None:
        """``figures(call_id)``: the call's final metrics (the analytics hub's view,
        JSON-able), stored with the ended session."""
        self.storage = storage
        self._figures = figures
        self.store = storage.sessions
        self.node_id = node_id
        self.resume_seconds = resume_seconds

    def _record(self, record: Any, status: str, *, with_summary: bool = False) -> SessionRecord:
        config = _config(record)
        if with_summary:
            config["summary"] = _summary(record, self._figures)
        return SessionRecord(
            record.id,
            record.tenant,
            record.owner_id,
            record.created_at,
            status,  # type: ignore[arg-type]
            platform=record.kind or "",
            node_id=self.node_id if status == "live" else "",
            updated_at=time.time(),
            ended_at=record.ended_at if status == "ended" else None,
            end_reason=record.end_reason if status == "ended" else "",
            metadata=dict(record.metadata),
            config=config,
        )

    async def _save(self, record: Any, status: str, *, with_summary: bool = False) -> None:
        try:
            await self.store.save_record(self._record(record, status, with_summary=with_summary))
        except Exception as exc:  # the store's failure must not drop the call
            log.error("call %s: its session was not stored (%s): %s", record.id, status, exc)

    async def created(self, record: Any) -> None:
        await self._save(record, "pending")

    async def live(self, record: Any) -> None:
        await self._save(record, "live")

    async def ended(self, record: Any) -> None:
        await self._save(record, "ended", with_summary=True)

    async def recover(self) -> int:
        """At the start of a lone node: the sessions still "live" in its store were
        cut by its own death (kill -9, power loss). End them as ``node_lost``: their
        finished turns stay, and a browser may resume them."""
        now, n = time.time(), 0
        for r in await self.store.list(tenant=None, status="live", limit=100_000):
            n += await self.store.mark_ended(r.session_id, ended_at=now, reason="node_lost")
        if n:
            log.warning("%d call(s) cut by the last stop marked ended (node_lost)", n)
        return n

    async def end_pending(self, session_id: str) -> bool:
        """End a stored conversation that is not live anywhere (DELETE on a node that
        does not hold it)."""
        return await self.store.mark_ended(session_id, ended_at=time.time(), reason="requested")

    def writer(self, record: Any) -> TurnWriter:
        """The call's turn writer; a resumed call's stored turns (its transcript's head,
        see :func:`resume`) are not written again."""
        return TurnWriter(self.store, record, start=record.resumed_turns)

    async def load(self, session_id: str) -> StoredSession | None:
        return await self.store.load(session_id)

    async def get_record(self, session_id: str) -> SessionRecord | None:
        return await self.store.get_record(session_id)

    async def list(
        self, *, tenant: str, user_id: str | None, status: str | None = None, limit: int = 100
    ) -> Sequence[SessionRecord]:
        return await self.store.list(
            tenant=tenant,
            user_id=user_id,
            status=status,  # type: ignore[arg-type]
            limit=limit,
        )

    def resumable(self, stored: StoredSession) -> bool:
        return stored.resumable(time.time(), self.resume_seconds)


def resume(record: Any, engine: HistorySeedable) -> None:
    """A reconnect within the resume window: the stored turns head the new transcript
    (REST shows them, new turns number on) and the engine hears them as history."""
    stored: StoredSession | None = record.resume_from
    if stored is None or record.journal is None:
        return
    record.resume_from = None
    for t in stored.turns:
        turn = record.journal.transcript.open(Role(t.role), t.started_at, response_id=t.response_id)
        turn.text, turn.ended_at = t.text, t.ended_at
        turn.interrupted, turn.failed = t.interrupted, t.failed
    engine.seed_history(stored.history())
    log.info("call %s resumed with %d turn(s)", record.id, len(stored.turns))


class ContextCaching:
    """``enable_caching``: the app's context providers answered from a cache shared by
    every call (and, on Redis, every node), per tenant and user; ``invalidate`` drops
    a user's entries when their data changes."""

    def __init__(self, cache: ContextCache, config: ConversationConfig) -> None:
        self.cache = cache
        self.enabled = config.enable_caching
        self._cached: dict[int, CachedProvider] = {}

    def providers(
        self, providers: Sequence[ContextProvider], tenant: str
    ) -> tuple[ContextProvider, ...]:
        """The providers of one call (the app's own when caching is off)."""
        if not self.enabled:
            return tuple(providers)
        return tuple(self._per_call(p, tenant) for p in providers)

    def _per_call(self, provider: ContextProvider, tenant: str) -> ContextProvider:
        cached = self._cached.get(id(provider))
        if cached is None:
            fn = provider.fn

            async def fetch(user_id: str) -> Mapping[str, Any]:
                return dict(await fn(user_id) or {})

            cached = self._cached[id(provider)] = CachedProvider(
                fetch, self.cache, ttl_seconds=provider.ttl_seconds, name=provider.key
            )
        shared = cached

        async def lookup(user_id: str | None) -> Mapping[str, Any] | None:
            if user_id is None:  # nobody to cache for
                return await provider.fn(user_id)
            return (await shared(user_id, tenant=tenant)) or None

        return ContextProvider(lookup, ttl_seconds=provider.ttl_seconds, key=provider.key)

    async def invalidate(
        self, user_id: str, *, tenant: str = "default", provider: str | None = None
    ) -> None:
        await self.cache.invalidate(cache_scope(tenant, user_id), provider)

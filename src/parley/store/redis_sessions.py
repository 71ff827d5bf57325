"""``RedisSessionStore(url=…)`` — the seed's name — for several nodes sharing sessions.

Keys (``{p}`` is the prefix, ``parley`` by default; every session key expires
``ttl_seconds`` after the session's last write, so Redis holds no session forever):

- ``{p}:session:{id}`` — hash: the record's fields (metadata and config as JSON);
- ``{p}:session:{id}:turns`` — hash: turn index → the turn as JSON (a replayed append
  replaces, never duplicates);
- ``{p}:sessions:all``, ``{p}:sessions:t:{tenant}``, ``{p}:sessions:u:{tenant}:{user}``
  — sorted sets of session ids by ``created_at``, for listing and purging; entries
  whose session has expired are dropped when a listing meets them.

``append_turn`` and ``mark_ended`` are Lua scripts (the existence check and the write
are one atomic step); ``save_record`` is a MULTI transaction. A turn is acknowledged by
Redis when ``append_turn`` returns; how durable that is depends on the server's own
persistence (``appendonly yes`` with ``appendfsync everysec`` loses at most a second).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from parley.store.records import (
    SessionRecord,
    SessionStatus,
    StoredSession,
    StoredTurn,
    UnknownSession,
)

__all__ = ["RedisSessionStore"]

_APPEND: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local updated = tonumber(redis.call('HGET', KEYS[1], 'updated_at') or '0')
if tonumber(ARGV[3]) > updated then redis.call('HSET', KEYS[1], 'updated_at', ARGV[3]) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""

_END: Final = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'ended' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'ended', 'ended_at', ARGV[1], 'end_reason', ARGV[2])
local updated = tonumber(redis.call('HGET', KEYS[1], 'updated_at') or '0')
if tonumber(ARGV[1]) > updated then redis.call('HSET', KEYS[1], 'updated_at', ARGV[1]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisSessionStore:
    """Sessions in Redis; give ``url`` or an existing ``client``."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Redis | None = None,
        prefix: str = "parley",
        ttl_seconds: int = 30 * 24 * 3600,
    ) -> None:
        if client is None:
            if url is None:
                raise ValueError("RedisSessionStore needs url= or client=")
            client = Redis.from_url(url)
        self._owned = url is not None
        self.client = client
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        self._append = client.register_script(_APPEND)
        self._end = client.register_script(_END)

    def _rec(self, sid: str) -> str:
        return f"{self.prefix}:session:{sid}"

    def _turns(self, sid: str) -> str:
        return f"{self.prefix}:session:{sid}:turns"

    def _indexes(self, tenant: str, user_id: str) -> tuple[str, str, str]:
        p = self.prefix
        return (
            f"{p}:sessions:all",
            f"{p}:sessions:t:{tenant}",
            f"{p}:sessions:u:{tenant}:{user_id}",
        )

    async def save_record(self, record: SessionRecord) -> None:
        row = record.to_row()
        row["updated_at"] = row["updated_at"] or record.created_at
        fields: dict[FieldT, EncodableT] = {
            k: ("" if v is None else v if isinstance(v, int | float) else str(v))
            for k, v in row.items()
        }
        key = self._rec(record.session_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self.ttl_seconds)
            for index in self._indexes(record.tenant, record.user_id):
                pipe.zadd(index, {record.session_id: record.created_at})
            await pipe.execute()

    async def append_turn(self, session_id: str, turn: StoredTurn) -> None:
        ok = await self._append(
            keys=[self._rec(session_id), self._turns(session_id)],
            args=[turn.index, turn.to_json(), turn.ended_at or turn.started_at, self.ttl_seconds],
        )
        if not int(ok):
            raise UnknownSession(f"no session {session_id!r}")

    @staticmethod
    def _record(raw: dict[Any, Any]) -> SessionRecord:
        return SessionRecord.from_row({_text(k): _text(v) for k, v in raw.items()})

    async def load(self, session_id: str) -> StoredSession | None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(self._rec(session_id))
            pipe.hgetall(self._turns(session_id))
            raw, turns = await pipe.execute()
        if not raw:
            return None
        stored = sorted((StoredTurn.from_json(v) for v in turns.values()), key=lambda t: t.index)
        return StoredSession(self._record(raw), tuple(stored))

    async def get_record(self, session_id: str) -> SessionRecord | None:
        raw = await self.client.hgetall(self._rec(session_id))
        return self._record(raw) if raw else None

    async def list(
        self,
        *,
        tenant: str | None,
        user_id: str | None = None,
        status: SessionStatus | None = None,
        limit: int = 100,
    ) -> Sequence[SessionRecord]:
        p = self.prefix
        if tenant is None:
            index = f"{p}:sessions:all"
        elif user_id is None:
            index = f"{p}:sessions:t:{tenant}"
        else:
            index = f"{p}:sessions:u:{tenant}:{user_id}"
        out: list[SessionRecord] = []
        start, page = 0, max(limit, 50)
        while len(out) < limit:
            ids = await self.client.zrevrange(index, start, start + page - 1)
            if not ids:
                break
            start += page
            async with self.client.pipeline(transaction=False) as pipe:
                for sid in ids:
                    pipe.hgetall(self._rec(_text(sid)))
                rows = await pipe.execute()
            gone: list[str] = []
            for sid, raw in zip(ids, rows, strict=True):
                if not raw:
                    gone.append(_text(sid))
                    continue
                rec = self._record(raw)
                if (user_id is None or rec.user_id == user_id) and (
                    status is None or rec.status == status
                ):
                    out.append(rec)
            if gone:  # expired sessions leave their index entries behind: drop them now
                await self.client.zrem(index, *gone)
                start -= len(gone)
        return out[:limit]

    async def mark_ended(self, session_id: str, *, ended_at: float, reason: str = "") -> bool:
        done = await self._end(
            keys=[self._rec(session_id), self._turns(session_id)],
            args=[repr(ended_at), reason, self.ttl_seconds],
        )
        return bool(int(done))

    async def purge_older_than(self, cutoff: float) -> int:
        index = f"{self.prefix}:sessions:all"
        purged = 0
        # Sessions are in created_at order and activity comes after creation, so only
        # those created before the cutoff can be due.
        ids = await self.client.zrangebyscore(index, "-inf", f"({cutoff!r}")
        for chunk in (ids[i : i + 200] for i in range(0, len(ids), 200)):
            async with self.client.pipeline(transaction=False) as pipe:
                for sid in chunk:
                    pipe.hmget(self._rec(_text(sid)), ["ended_at", "updated_at"])
                rows = await pipe.execute()
            for sid, (ended, updated) in zip(chunk, rows, strict=True):
                if updated is None:  # already expired
                    await self.client.zrem(index, _text(sid))
                    continue
                activity = float(ended) if ended not in (None, b"") else float(updated)
                if activity < cutoff and await self.delete(_text(sid)):
                    purged += 1
        return purged

    async def delete(self, session_id: str) -> bool:
        owner = await self.client.hmget(self._rec(session_id), ["tenant", "user_id"])
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self._rec(session_id), self._turns(session_id))
            if owner[0] is not None:
                for index in self._indexes(_text(owner[0]), _text(owner[1])):
                    pipe.zrem(index, session_id)
            else:
                pipe.zrem(f"{self.prefix}:sessions:all", session_id)
            deleted, *_ = await pipe.execute()
        return bool(deleted)

    async def aclose(self) -> None:
        if self._owned:
            await self.client.aclose()

    def __repr__(self) -> str:
        return f"RedisSessionStore(prefix={self.prefix!r}, ttl_seconds={self.ttl_seconds})"

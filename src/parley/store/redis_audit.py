"""The audit log as a Redis stream, ``{p}:audit``: ``XADD`` only (never trimmed by
Parley), read newest first with ``XREVRANGE``. Every node appends to the same stream."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from parley.store.audit import AuditEntry, matches

__all__ = ["RedisAuditLog"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisAuditLog:
    def __init__(
        self, url: str | None = None, *, client: Redis | None = None, prefix: str = "parley"
    ) -> None:
        if client is None:
            if url is None:
                raise ValueError("RedisAuditLog needs url= or client=")
            client = Redis.from_url(url)
        self._owned = url is not None
        self.client = client
        self.stream = f"{prefix}:audit"

    async def append(self, entry: AuditEntry) -> None:
        fields: dict[Any, Any] = entry.to_fields()
        await self.client.xadd(self.stream, fields)

    async def read(
        self,
        *,
        tenant: str | None,
        actor: str | None = None,
        action: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> Sequence[AuditEntry]:
        out: list[AuditEntry] = []
        end = "+"
        while len(out) < limit:
            batch = await self.client.xrevrange(self.stream, max=end, min="-", count=500)
            if not batch:
                break
            for _, raw in batch:
                if not raw:
                    continue
                e = AuditEntry.from_fields({_text(k): _text(v) for k, v in raw.items()})
                if since is not None and e.at < since:
                    return out[:limit]
                if matches(e, tenant=tenant, actor=actor, action=action):
                    out.append(e)
            end = "(" + _text(batch[-1][0])
        return out[:limit]

    async def aclose(self) -> None:
        if self._owned:
            await self.client.aclose()

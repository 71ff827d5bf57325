"""Admission of a call: who it belongs to, whether it may start, and what holds while
it runs — the part of the switchboard that talks to security, the session store and
the cluster.

For every call, whatever its platform or host (the switchboard calls these in order):

1. :meth:`CallAdmission.claim` — a socket for ``/ws/audio/{id}`` takes the pending
   conversation ``id`` (from this node's memory or, made on another node, from the
   shared store; the claim is atomic across nodes) if the principal may talk in it
   (another user's or tenant's is answered as unknown). An ended session is resumed
   instead when it dropped less than ``resume_seconds`` ago.
2. :meth:`CallAdmission.start` — the limits (new calls, concurrent calls), the call
   directory (which node holds it), the session record marked live; the call's
   maximum duration comes back.
3. :meth:`CallAdmission.hold` — while it runs: the concurrent-call lease refreshed,
   the maximum duration enforced.
4. :meth:`CallAdmission.finish` — the session record ended with its summary, the
   slot and the directory entry released. The switchboard then forgets the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from parley.engines.spec import EngineKind
from parley.errors import RateLimited
from parley.flows import FlowConfig
from parley.security.principal import Permission, Principal
from parley.security.tenancy import Action, Deny, Owner, authorize
from parley.server.calls import CallRecord, CallRegistry, CallStatus
from parley.server.cluster import ClusterNode
from parley.server.persistence import Persistence
from parley.server.security import ADMISSION, Admission, Security
from parley.store.records import StoredSession
from parley.tasks import cancel_and_wait
from parley.transports.platform import Accept, Connection, Refusal

__all__ = ["CLAIM_SECONDS", "CallAdmission", "ClaimRefusal", "owner"]

log = logging.getLogger("parley.server")

#: How long a claim across nodes lasts without the call going live.
CLAIM_SECONDS: Final = 30.0

#: (code, message) a claim is refused with.
ClaimRefusal = tuple[str, str]


def owner(record: CallRecord) -> Owner:
    return Owner(record.tenant, record.owner_id)


class CallAdmission:
    def __init__(
        self,
        calls: CallRegistry,
        security: Security,
        persistence: Persistence,
        cluster: ClusterNode | None,
        *,
        starting: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``starting``: awaited before the first admission (the switchboard's start,
        for hosts that did not call it)."""
        self._starting = starting
        self.calls = calls
        self.security = security
        self.persistence = persistence
        self.cluster = cluster
        self._next_sweep = 0.0

    async def admit(
        self, what: str, connection: Connection, verdict: Accept, *, deferred: bool
    ) -> Accept | Refusal:
        """Before a socket is accepted: ``verdict`` (the platform's), with the
        :class:`Admission` left on the connection's ``state`` for ``serve``, or the
        refusal. ``deferred``: its credentials may come in its first frame."""
        if self._starting is not None:
            await self._starting()
        admitted = await self.security.admit(connection, deferred=deferred, kind=what)
        if isinstance(admitted, Refusal):
            log.info("refused %s socket %s: %s", what, connection.path, admitted.reason)
            return admitted
        connection.state[ADMISSION] = admitted
        return verdict

    async def of(self, what: str, connection: Connection, *, deferred: bool) -> Admission | Refusal:
        """What ``admit`` decided for this connection (decided now if the host did not
        ask it: then a refusal closes the accepted socket)."""
        found = connection.state.pop(ADMISSION, None)
        if not isinstance(found, Admission):
            refused = await self.admit(what, connection, Accept(), deferred=deferred)
            if isinstance(refused, Refusal):
                return refused
            found = connection.state.pop(ADMISSION)
        assert isinstance(found, Admission)
        return found

    async def forget(self, connection: Connection) -> None:
        """A socket refused after its admission (draining, full): free its slot."""
        found = connection.state.pop(ADMISSION, None)
        if isinstance(found, Admission):
            await self.security.release(found)

    # -- pending conversations -----------------------------------------------------------

    async def sweep(self) -> None:
        """End pending conversations older than their TTL (at most once a second)."""
        now = time.time()
        if now < self._next_sweep:
            return
        self._next_sweep = now + 1.0
        ttl = self.security.settings.pending_ttl_seconds
        for record in self.calls.pending():
            if now - record.created_at > ttl:
                record.end_reason = "expired"
                self.calls.ended(record)
                stored = await self.persistence.get_record(record.id)
                if stored is not None and stored.status == "pending":  # not taken elsewhere
                    await self.persistence.ended(record)

    async def created(self, record: CallRecord, principal: Principal) -> None:
        """A conversation made over REST: it counts against its creator until its call
        starts or it expires (``RateLimited`` when the creator has too many)."""
        await self.security.limits.hold_pending(principal, record.id)
        await self.persistence.created(record)

    async def local(self, conversation_id: str) -> CallRecord | None:
        """This node's record of a conversation, or None. On a cluster a pending one
        may have been taken by a socket on another node (or deleted there): then the
        shared store is right and this node forgets its copy."""
        record = self.calls.get(conversation_id)
        if record is None or record.status is not CallStatus.PENDING or self.cluster is None:
            return record
        stored = await self.persistence.get_record(conversation_id)
        if stored is not None and stored.status != "pending":
            self.calls.ended(record)
            return None
        return record

    async def drop_pending(self, record: CallRecord) -> None:
        """A pending conversation deleted before its call: ended, and no longer
        counted against its creator."""
        self.calls.ended(record)
        await self.persistence.ended(record)
        creator = Principal(record.owner_id, tenant=record.tenant)
        await self.security.limits.release_pending(creator, record.id)

    def may_open(self, principal: Principal) -> Deny | None:
        """Whether ``principal`` may start a new call on a socket (``conversation`` and
        ``audio``), or why not."""
        decision = authorize(principal, Action.CREATE)
        if isinstance(decision, Deny):
            return decision
        if not principal.has(Permission.AUDIO):
            return Deny(403, "missing permission 'audio'")
        return None

    # -- 1. claim --------------------------------------------------------------------------

    async def claim(
        self, conversation_id: str, principal: Principal, *, resume_only: bool = False
    ) -> CallRecord | ClaimRefusal:
        """The record a socket takes over (CONNECTING), or why not."""
        unknown: ClaimRefusal = ("unknown_conversation", f"no conversation {conversation_id!r}")
        record = self.calls.get(conversation_id)
        stored: StoredSession | None = None
        if record is None:
            stored = await self.persistence.load(conversation_id)
            if stored is None:
                return unknown
            record = _record_of(stored)
        if isinstance(authorize(principal, Action.TALK, owner(record)), Deny):
            return unknown  # another's: exactly as if it did not exist
        if record.status is CallStatus.PENDING and not resume_only:
            if time.time() - record.created_at > self.security.settings.pending_ttl_seconds:
                if self.calls.get(record.id) is record:
                    record.end_reason = "expired"
                    self.calls.ended(record)
                    await self.persistence.ended(record)
                return ("conversation_expired", f"conversation {conversation_id!r} expired")
            if stored is not None or self.cluster is not None:
                # Made on another node, or a node may take it from the shared store.
                current = await self.persistence.get_record(conversation_id)
                if current is None or current.status != "pending":
                    return _taken(conversation_id, current.status if current else "ended")
                if not await self.security.kv.claim(f"claim:{conversation_id}", CLAIM_SECONDS):
                    return _taken(conversation_id, "connecting")
            if self.calls.get(record.id) is None:
                self.calls.add(record)
            record.move(CallStatus.CONNECTING)
            return record
        if stored is None and record.status is not CallStatus.ENDED:
            return _taken(conversation_id, record.status.value)
        stored = stored or await self.persistence.load(conversation_id)
        if stored is None or not self.persistence.resumable(stored):
            return _taken(conversation_id, "ended")
        if not await self.security.kv.claim(f"claim:{conversation_id}", CLAIM_SECONDS):
            return _taken(conversation_id, "connecting")
        resumed = _record_of(stored)
        resumed.status = CallStatus.CONNECTING
        resumed.resumed_turns = len(stored.turns)
        resumed.resume_from = stored
        self.calls.add(resumed)
        return resumed

    async def unclaim(self, record: CallRecord) -> None:
        """The peer left (or was refused) before its call started: it may come back."""
        if record.resumed_turns or record.status is not CallStatus.CONNECTING:
            if record.status is not CallStatus.ENDED:
                self.calls.ended(record)
        else:
            record.move(CallStatus.PENDING)
        await self.security.kv.release(f"claim:{record.id}")

    # -- 2. start --------------------------------------------------------------------------

    async def start(
        self, record: CallRecord, principal: Principal, *, pending: bool
    ) -> float | None:
        """Limits, directory, record; the call's maximum seconds (raises ``RateLimited``)."""
        if principal.method == "internal" and record.call_sid:
            # A phone call's new-call token was taken by its (signed) webhook.
            await self.security.limits.release_pending(principal, record.call_sid)
            pending = True
        try:
            max_s = await self.security.limits.admit_call(
                principal, record.id, from_pending=pending
            )
        except RateLimited:
            if record.status is CallStatus.CONNECTING and (pending or record.resumed_turns):
                await self.unclaim(record)  # still the creator's to start later
            elif record.status is not CallStatus.ENDED:
                self.calls.ended(record)  # made for this socket: gone with it
            raise
        if record.max_seconds is not None:  # its own limit, never beyond the tier's
            max_s = record.max_seconds if max_s is None else min(max_s, record.max_seconds)
        if self.cluster is not None:
            await self.cluster.register(record.id)
        await self.persistence.live(record)  # durable before the peer hears it is ready
        return max_s

    # -- 3. hold ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def hold(
        self,
        record: CallRecord,
        principal: Principal,
        max_seconds: float | None,
        stop: Callable[[str], Awaitable[None]],
    ) -> AsyncIterator[None]:
        """While the call runs: refresh its concurrent-call lease; at ``max_seconds``
        end it with ``stop(reason)``."""
        policy = self.security.limits

        async def keep() -> None:
            started = time.monotonic()
            every = policy.call_lease_seconds / 3
            while True:
                left = None if max_seconds is None else max_seconds - (time.monotonic() - started)
                if left is not None and left <= 0:
                    record.end_reason = "max_duration"
                    log.info("call %s: maximum duration of %g s reached", record.id, max_seconds)
                    await stop(f"max_duration: the call reached its limit of {max_seconds:g} s")
                    return
                await asyncio.sleep(every if left is None else min(every, left))
                if left is None or left > every:
                    await policy.refresh_call(principal, record.id)

        task = asyncio.create_task(keep(), name=f"parley-keep-{record.id}")
        try:
            yield
        finally:
            await cancel_and_wait(task)

    # -- 4. finish -------------------------------------------------------------------------

    async def finish(self, record: CallRecord, principal: Principal | None) -> None:
        if not record.end_reason:
            record.end_reason = "requested" if record.end_requested else "disconnected"
        await self.persistence.ended(record)
        if principal is not None:
            try:
                await self.security.limits.end_call(principal, record.id)
            except Exception as exc:  # the limiter's backend: the lease lapses by itself
                log.warning("call %s: its call slot was not released: %s", record.id, exc)
        if self.cluster is not None:
            await self.cluster.unregister(record.id)
        await self.security.kv.release(f"claim:{record.id}")


def _taken(conversation_id: str, status: str) -> ClaimRefusal:
    return ("conversation_taken", f"conversation {conversation_id!r} is {status}")


def _record_of(stored: StoredSession) -> CallRecord:
    """A call record rebuilt from the session store (made on another node, or ended)."""
    r, cfg = stored.record, stored.record.config
    record = CallRecord(
        id=r.session_id,
        engine=EngineKind(cfg.get("engine", EngineKind.LOCAL.value)),
        brain=str(cfg.get("brain", "echo")),
        voice=str(cfg.get("voice", "")),
        system_prompt=str(cfg.get("system_prompt", "")),
        kind=r.platform or None,
        user_id=cfg.get("user_id"),
        tenant=r.tenant,
        owner_id=r.user_id,
        metadata={str(k): str(v) for k, v in r.metadata.items()},
        created_at=r.created_at,
        flow=FlowConfig.from_dict(cfg["flow"]) if cfg.get("flow") else None,
        max_seconds=cfg.get("max_seconds"),
    )
    record.status = CallStatus.PENDING if r.status == "pending" else CallStatus.ENDED
    return record

"""Reading and writing the audit log through the tenancy rules.

:func:`read_audit` is the only way REST should read the log: it needs ``admin``,
confines the reader to its own tenant, and records the read itself. :func:`entry_for`
builds the entry for an action by a principal (or by nobody: a failed login).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from parley.errors import AuthError
from parley.security.principal import Principal
from parley.security.tenancy import Action, Deny, authorize
from parley.store.audit import AuditEntry, AuditLog, AuditOutcome

__all__ = ["entry_for", "read_audit"]


def entry_for(
    principal: Principal | None,
    action: str,
    outcome: AuditOutcome,
    *,
    target: str = "",
    client: str = "",
    detail: Mapping[str, Any] | None = None,
) -> AuditEntry:
    return AuditEntry(
        action,
        outcome,
        actor="" if principal is None else principal.user_id,
        tenant="" if principal is None else principal.tenant,
        target=target,
        method="" if principal is None else principal.method,
        client=client,
        detail=dict(detail or {}),
    )


async def read_audit(
    log: AuditLog,
    principal: Principal,
    *,
    actor: str | None = None,
    action: str | None = None,
    since: float | None = None,
    limit: int = 100,
) -> Sequence[AuditEntry]:
    """The principal's tenant's entries, newest first; ``AuthError`` unless admin.
    Refused and granted reads are both recorded."""
    decision = authorize(principal, Action.AUDIT)
    if isinstance(decision, Deny):
        await log.append(
            entry_for(principal, "audit.read", "denied", detail={"reason": decision.reason})
        )
        raise AuthError(decision.reason)
    found = await log.read(
        tenant=principal.tenant, actor=actor, action=action, since=since, limit=limit
    )
    await log.append(entry_for(principal, "audit.read", "ok", detail={"returned": len(found)}))
    return found

"""Who may see and touch which conversation: pure functions, no I/O.

The rules (issue 10, "Tenancy"):

- a conversation is bound to the principal who created it (:func:`owner_of`);
- a principal sees only its own tenant's conversations; another tenant's look like
  they do not exist (404, never 403, so ids cannot be probed across tenants);
- within a tenant a principal sees only its own user's, unless it has ``admin``
  (another user's conversation is a 404 too);
- each action needs a permission (:data:`REQUIRED`), checked after ownership;
- live call ids (``/healthz``) and the audit log are for ``admin`` only.

:func:`authorize` answers one question; :func:`list_scope` turns a principal into the
filter a listing must use; :func:`authorization_matrix` is the table of cases, with
their expected outcome written out independently of :func:`authorize`, that the
server's authorization-matrix test enumerates over every route and socket.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal

from parley.security.principal import Permission, Principal

__all__ = [
    "REQUIRED",
    "Action",
    "Allow",
    "Decision",
    "Deny",
    "ListScope",
    "MatrixCase",
    "Owner",
    "Relation",
    "authorization_matrix",
    "authorize",
    "list_scope",
    "owner_of",
    "relation",
    "shows_call_ids",
]


class Action(enum.StrEnum):
    CREATE = "create"  # POST /conversations, a new call on any route
    READ = "read"  # a conversation's record, transcript, metrics, flow progress
    LIST = "list"  # GET /conversations
    TALK = "talk"  # open the audio socket of a (pending) conversation, reconnect
    INJECT = "inject"  # inject context, fire an event
    END = "end"  # end a live call, delete a conversation
    ANALYTICS = "analytics"  # aggregate analytics and metrics
    CALL_IDS = "call_ids"  # live call ids in /healthz
    AUDIT = "audit"  # read the audit log


#: The permission each action needs (``admin`` has them all).
REQUIRED: Final[dict[Action, Permission]] = {
    Action.CREATE: Permission.CONVERSATION,
    Action.READ: Permission.CONVERSATION,
    Action.LIST: Permission.CONVERSATION,
    Action.TALK: Permission.AUDIO,
    Action.INJECT: Permission.CONTEXT_WRITE,
    Action.END: Permission.CONVERSATION,
    Action.ANALYTICS: Permission.ANALYTICS_READ,
    Action.CALL_IDS: Permission.ADMIN,
    Action.AUDIT: Permission.ADMIN,
}

#: Actions on one conversation (the others have no resource).
_ON_CONVERSATION: Final = frozenset({Action.READ, Action.TALK, Action.INJECT, Action.END})


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose a conversation is: stored with it at creation, never taken from a client."""

    tenant: str
    user_id: str


@dataclass(frozen=True, slots=True)
class Allow:
    allowed: Literal[True] = True


@dataclass(frozen=True, slots=True)
class Deny:
    """``status`` is the HTTP status to answer with (403 or 404); ``reason`` is safe to
    show the client (it names no other tenant or user)."""

    status: Literal[403, 404]
    reason: str
    allowed: Literal[False] = False


Decision = Allow | Deny
_ALLOW: Final = Allow()


class Relation(enum.StrEnum):
    """How a principal stands to a conversation."""

    OWN = "own"
    SAME_TENANT = "same_tenant"  # another user of the principal's tenant
    OTHER_TENANT = "other_tenant"


def owner_of(principal: Principal) -> Owner:
    return Owner(principal.tenant, principal.user_id)


def relation(principal: Principal, owner: Owner) -> Relation:
    if owner.tenant != principal.tenant:
        return Relation.OTHER_TENANT
    return Relation.OWN if owner.user_id == principal.user_id else Relation.SAME_TENANT


def authorize(principal: Principal, action: Action, owner: Owner | None = None) -> Decision:
    """May ``principal`` do ``action`` (to the conversation owned by ``owner``)?"""
    if action in _ON_CONVERSATION:
        if owner is None:
            raise ValueError(f"{action} needs the conversation's owner")
        rel = relation(principal, owner)
        if rel is Relation.OTHER_TENANT or (rel is Relation.SAME_TENANT and not principal.is_admin):
            return Deny(404, "no such conversation")
    needed = REQUIRED[action]
    if not principal.has(needed):
        return Deny(403, f"missing permission {needed.value!r}")
    return _ALLOW


@dataclass(frozen=True, slots=True)
class ListScope:
    """The filter a listing must apply: ``user_id`` None means every user of ``tenant``."""

    tenant: str
    user_id: str | None


def list_scope(principal: Principal) -> ListScope:
    return ListScope(principal.tenant, None if principal.is_admin else principal.user_id)


def shows_call_ids(principal: Principal | None) -> bool:
    """Whether ``/healthz`` may list live call ids to this caller (admins only)."""
    return principal is not None and principal.authenticated and principal.is_admin


# -- the matrix ---------------------------------------------------------------------------

Credential = Literal["none", "wrong", "expired", "valid"]
Outcome = Literal[200, 401, 403, 404]


@dataclass(frozen=True, slots=True)
class MatrixCase:
    """One row of the authorization matrix: a caller, its permissions, its relation to
    the conversation (None for actions without one), and the answer expected."""

    name: str
    credential: Credential
    permissions: frozenset[Permission]
    relation: Relation | None
    expected: Outcome


def authorization_matrix(action: Action) -> list[MatrixCase]:
    """Every case for ``action``: no token, wrong token, expired token, the owner with
    and without the needed permission, another user, another tenant, an admin of the
    tenant and an admin of another tenant. A server passes when each answers
    ``expected`` (401 for bad credentials, whatever the route)."""
    needed = REQUIRED[action]
    on_conv = action in _ON_CONVERSATION
    own: Relation | None = Relation.OWN if on_conv else None
    everything = frozenset(Permission) - {Permission.ADMIN}
    without = everything - {needed}
    admin = frozenset({Permission.ADMIN})
    user_ok: Outcome = 403 if needed is Permission.ADMIN else 200
    cases = [
        MatrixCase("no token", "none", everything, own, 401),
        MatrixCase("wrong token", "wrong", everything, own, 401),
        MatrixCase("expired token", "expired", everything, own, 401),
        MatrixCase("owner", "valid", everything, own, user_ok),
        MatrixCase("missing permission", "valid", without, own, 403),
        MatrixCase("admin", "valid", admin, own, 200),
    ]
    if on_conv:
        cases += [
            MatrixCase("other user", "valid", everything, Relation.SAME_TENANT, 404),
            MatrixCase("other tenant", "valid", everything, Relation.OTHER_TENANT, 404),
            MatrixCase("tenant admin, other user", "valid", admin, Relation.SAME_TENANT, 200),
            MatrixCase("admin of another tenant", "valid", admin, Relation.OTHER_TENANT, 404),
        ]
    return cases

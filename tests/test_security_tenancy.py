"""Tenancy rules: the pure authorization functions agree with the written-out matrix."""

from __future__ import annotations

import pytest

from parley.security import ANONYMOUS, Permission, Principal
from parley.security.tenancy import (
    Action,
    Allow,
    Deny,
    Owner,
    Relation,
    authorization_matrix,
    authorize,
    list_scope,
    owner_of,
    shows_call_ids,
)

ME = Owner("acme", "alice")


def _owner_for(rel: Relation | None) -> Owner | None:
    return {
        None: None,
        Relation.OWN: ME,
        Relation.SAME_TENANT: Owner("acme", "bob"),
        Relation.OTHER_TENANT: Owner("globex", "alice"),
    }[rel]


@pytest.mark.parametrize("action", list(Action))
def test_authorize_agrees_with_the_matrix(action: Action) -> None:
    cases = authorization_matrix(action)
    assert {c.credential for c in cases} == {"none", "wrong", "expired", "valid"}
    for case in cases:
        if case.credential != "valid":
            assert case.expected == 401
            continue
        p = Principal("alice", tenant="acme", permissions=case.permissions)
        decision = authorize(p, action, _owner_for(case.relation))
        got = 200 if isinstance(decision, Allow) else decision.status
        assert got == case.expected, (action, case)


def test_other_tenants_conversations_do_not_exist() -> None:
    admin = Principal("root", tenant="acme", permissions=frozenset({Permission.ADMIN}))
    assert authorize(admin, Action.READ, Owner("acme", "bob")).allowed
    d = authorize(admin, Action.END, Owner("globex", "bob"))
    assert isinstance(d, Deny) and d.status == 404 and "globex" not in d.reason
    user = Principal("alice", tenant="acme", permissions=frozenset({Permission.CONVERSATION}))
    assert isinstance(authorize(user, Action.TALK, ME), Deny)  # no 'audio'
    assert authorize(user, Action.READ, owner_of(user)).allowed
    d = authorize(user, Action.INJECT, ME)
    assert isinstance(d, Deny) and d.status == 403 and "context:write" in d.reason
    with pytest.raises(ValueError):
        authorize(user, Action.READ)


def test_list_scope_and_call_ids() -> None:
    user = Principal("alice", tenant="acme", permissions=frozenset({Permission.CONVERSATION}))
    admin = Principal("root", tenant="acme", permissions=frozenset({Permission.ADMIN}))
    assert (list_scope(user).tenant, list_scope(user).user_id) == ("acme", "alice")
    assert list_scope(admin).user_id is None
    assert not shows_call_ids(None)
    assert not shows_call_ids(user)
    assert shows_call_ids(admin)
    assert not shows_call_ids(ANONYMOUS)  # auth off: nobody is an admin on the network


def test_refusals_map_to_http_websocket_and_phone() -> None:
    from parley.errors import AuthError, RateLimited
    from parley.security.refusals import refusal_for

    r = refusal_for(RateLimited("too many new calls", retry_after=2.2))
    assert (r.status, r.close_code, r.headers, r.spoken) == (429, 1013, {"retry-after": "3"}, True)
    assert r.body["error"]["retry_after"] == 3
    a = refusal_for(AuthError("token expired"))
    assert (a.status, a.close_code, a.reason) == (401, 1008, "auth_error: token expired")
    assert a.headers["www-authenticate"].startswith("Bearer")
    d = refusal_for(Deny(404, "no such conversation"))
    assert (d.status, d.body["error"]["code"]) == (404, "not_found")
    long = refusal_for(AuthError("é" * 200))
    assert len(long.reason.encode()) <= 123

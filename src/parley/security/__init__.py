"""Authentication, tenancy and limits: the pieces the switchboard and REST routes
call before a request or a call goes on (see each module)."""

from __future__ import annotations

from parley.security.apikeys import ApiKeys, hash_api_key
from parley.security.authenticator import Authenticator
from parley.security.client_secrets import ClientSecret, ClientSecrets
from parley.security.jwt_auth import JWTConfig, JWTVerifier
from parley.security.limits import Limiter, LimitPolicy, MemoryLimiter, Rate, TierLimits, Verdict
from parley.security.principal import (
    ANONYMOUS,
    ConnectionInfo,
    Credentials,
    Permission,
    Principal,
    extract_credentials,
)
from parley.security.tenancy import Action, Allow, Deny, Owner, authorize, list_scope

__all__ = [
    "ANONYMOUS",
    "Action",
    "Allow",
    "ApiKeys",
    "Authenticator",
    "ClientSecret",
    "ClientSecrets",
    "ConnectionInfo",
    "Credentials",
    "Deny",
    "JWTConfig",
    "JWTVerifier",
    "LimitPolicy",
    "Limiter",
    "MemoryLimiter",
    "Owner",
    "Permission",
    "Principal",
    "Rate",
    "TierLimits",
    "Verdict",
    "authorize",
    "extract_credentials",
    "hash_api_key",
    "list_scope",
]

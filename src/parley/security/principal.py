"""Who is calling: the :class:`Principal`, and the credentials a connection presents.

A principal is what every authentication path yields (API key, JWT, a short-lived
client secret) and what every authorization rule reads (``parley.security.tenancy``).
:func:`extract_credentials` finds the credentials of a request or WebSocket in the
places a client can put them: ``Authorization: Bearer`` (servers, SDKs), an
``openai-insecure-api-key.<KEY>`` subprotocol (browsers cannot set headers on a
WebSocket; OpenAI's own browser clients do this, reference/protocols.md §1.2) and,
for Parley's browser protocol, ``metadata["token"]`` of the first ``start`` frame. A
``?token=`` query parameter is read last and only when the caller allows it: query
strings end up in proxy and access logs.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from parley.errors import ConfigError

__all__ = [
    "ANONYMOUS",
    "INSECURE_KEY_SUBPROTOCOL",
    "ConnectionInfo",
    "ConnectionLike",
    "CredentialSource",
    "Credentials",
    "Permission",
    "Principal",
    "extract_credentials",
    "parse_permissions",
]


class Permission(enum.StrEnum):
    """What a principal may do; ``admin`` implies every other permission."""

    CONVERSATION = "conversation"  # create conversations, talk in one's own
    AUDIO = "audio"  # open an audio socket (browser, /v1/realtime)
    CONTEXT_WRITE = "context:write"  # inject context, fire events into a live call
    ANALYTICS_READ = "analytics:read"  # metrics, analytics, dashboards
    ADMIN = "admin"  # every conversation of the tenant, live call ids, the audit log


_ALL: Final = frozenset(Permission)


def parse_permissions(values: Iterable[str] | str) -> frozenset[Permission]:
    """Permissions from names (a list, or a space-separated OAuth ``scope`` string).

    Unknown names are ignored, not errors: identity providers put other scopes in the
    same claim (``openid``, ``profile``) and they grant nothing here.
    """
    names = values.split() if isinstance(values, str) else values
    out: set[Permission] = set()
    for name in names:
        if isinstance(name, str) and name in Permission._value2member_map_:
            out.add(Permission(name))
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. ``method`` says how it was proven (for the audit log)."""

    user_id: str
    tenant: str = "default"
    tier: str = "default"
    permissions: frozenset[Permission] = frozenset()
    method: Literal["api_key", "jwt", "client_secret", "anonymous", "internal"] = "api_key"
    key_id: str = ""  # which API key, JWT ``kid``/``jti`` or client secret id

    def __post_init__(self) -> None:
        if not self.user_id or not self.tenant:
            raise ConfigError("a principal needs a user id and a tenant", field="principal")

    @property
    def is_admin(self) -> bool:
        return Permission.ADMIN in self.permissions

    @property
    def authenticated(self) -> bool:
        return self.method != "anonymous"

    def has(self, permission: Permission) -> bool:
        return permission in self.permissions or self.is_admin

    def effective_permissions(self) -> frozenset[Permission]:
        return _ALL if self.is_admin else self.permissions


#: The principal of a server with authentication off (the offline default): a single
#: local user with every permission. Never used when authentication is on.
ANONYMOUS: Final = Principal(
    "anonymous", tenant="default", tier="default", permissions=_ALL, method="anonymous"
)

#: The subprotocol prefix OpenAI's browser clients carry their key in.
INSECURE_KEY_SUBPROTOCOL: Final = "openai-insecure-api-key."

CredentialSource = Literal["authorization", "subprotocol", "start_frame", "query", "api_key_header"]


@dataclass(frozen=True, slots=True)
class Credentials:
    """A secret a client presented, and where it was found (never logged)."""

    secret: str = field(repr=False)
    source: CredentialSource

    def __post_init__(self) -> None:
        if not self.secret:
            raise ConfigError("empty credentials", field="secret")


class ConnectionLike(Protocol):
    """What credential extraction reads from a request or handshake: the switchboard's
    ``Connection`` fits as it is (lower-case header names, offered subprotocols)."""

    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def subprotocols(self) -> Sequence[str]: ...
    @property
    def query(self) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """A :class:`ConnectionLike` of its own, until the switchboard's ``Connection``
    (and for tests). ``headers`` have lower-case names (as ASGI gives them);
    ``subprotocols`` are the ones the client offered, in order."""

    headers: Mapping[str, str] = field(default_factory=dict)
    subprotocols: Sequence[str] = ()
    query: Mapping[str, str] = field(default_factory=dict)


def _bearer(value: str) -> str | None:
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def extract_credentials(
    conn: ConnectionLike,
    *,
    start_metadata: Mapping[str, str] | None = None,
    allow_query: bool = False,
) -> Credentials | None:
    """The credentials ``conn`` carries, or None. The first found wins, in this order:
    ``Authorization: Bearer``, ``X-API-Key``, an ``openai-insecure-api-key.`` subprotocol,
    the browser ``start`` frame's ``metadata["token"]``, and (``allow_query``) ``?token=``.

    A malformed ``Authorization`` header (another scheme, no token) yields None rather
    than falling through to a weaker place: the client meant to authenticate there.
    """
    auth = conn.headers.get("authorization")
    if auth is not None:
        token = _bearer(auth)
        return Credentials(token, "authorization") if token else None
    api_key = conn.headers.get("x-api-key", "").strip()
    if api_key:
        return Credentials(api_key, "api_key_header")
    for proto in conn.subprotocols:
        if proto.startswith(INSECURE_KEY_SUBPROTOCOL):
            secret = proto[len(INSECURE_KEY_SUBPROTOCOL) :]
            if secret:
                return Credentials(secret, "subprotocol")
    if start_metadata is not None:
        token = start_metadata.get("token", "").strip()
        if token:
            return Credentials(token, "start_frame")
    if allow_query:
        token = conn.query.get("token", "").strip()
        if token:
            return Credentials(token, "query")
    return None

"""Short-lived client secrets, minted as OpenAI's ``POST /v1/realtime/client_secrets``
mints them, so a browser can open ``/v1/realtime`` without holding a real key.

Request (OpenAI's shape): ``{"expires_after": {"anchor": "created_at", "seconds": N},
"session": {...}}``, both optional; ``seconds`` is 10–7200 and defaults to 600.
Response: ``{"value": "ek_…", "expires_at": <unix seconds>, "session": {...}}``.

A secret is opaque (``ek_`` + 192 random bits); the server keeps, under the secret's
SHA-256, who minted it and the session it was minted for, in a
:class:`~parley.store.kv.SecretStore` (memory, or Redis so any node can check it).
The principal a secret yields keeps the minter's user, tenant and tier but at most the
``conversation`` and ``audio`` permissions: a secret that leaks from a page cannot
read analytics or act as an admin. OpenAI's secrets can open several sessions until
they expire; ``single_use=True`` makes one good for exactly one connection.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from parley.errors import AuthError, ConfigError, RemoteProtocolError
from parley.security.principal import Permission, Principal, parse_permissions
from parley.store.kv import SecretStore

__all__ = [
    "CLIENT_SECRET_PREFIX",
    "DEFAULT_TTL_SECONDS",
    "MAX_TTL_SECONDS",
    "MIN_TTL_SECONDS",
    "ClientSecret",
    "ClientSecrets",
    "parse_client_secret_request",
]

CLIENT_SECRET_PREFIX: Final = "ek_"
DEFAULT_TTL_SECONDS: Final = 600
MIN_TTL_SECONDS: Final = 10
MAX_TTL_SECONDS: Final = 7200
_GRANTABLE: Final = frozenset({Permission.CONVERSATION, Permission.AUDIO})


@dataclass(frozen=True, slots=True)
class ClientSecret:
    """A minted secret: ``value`` is shown to the client once."""

    value: str = field(repr=False)
    expires_at: int
    session: dict[str, Any]
    principal: Principal
    single_use: bool = False

    def response(self) -> dict[str, Any]:
        """The body of ``POST /v1/realtime/client_secrets`` (OpenAI's shape)."""
        return {"value": self.value, "expires_at": self.expires_at, "session": self.session}


def parse_client_secret_request(body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """``(seconds, session)`` from a request body, validated as OpenAI validates it;
    ``RemoteProtocolError(code="invalid_request")`` says what is wrong."""
    expires = body.get("expires_after")
    if expires is None:
        expires = {}
    if not isinstance(expires, Mapping):
        raise RemoteProtocolError("expires_after must be an object", code="invalid_request")
    anchor = expires.get("anchor", "created_at")
    if anchor != "created_at":
        raise RemoteProtocolError(
            "expires_after.anchor: only 'created_at' is supported", code="invalid_request"
        )
    seconds = expires.get("seconds", DEFAULT_TTL_SECONDS)
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise RemoteProtocolError(
            "expires_after.seconds must be an integer", code="invalid_request"
        )
    if not MIN_TTL_SECONDS <= seconds <= MAX_TTL_SECONDS:
        raise RemoteProtocolError(
            f"expires_after.seconds must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}",
            code="invalid_request",
        )
    session = body.get("session")
    if session is None:
        session = {}
    if not isinstance(session, Mapping):
        raise RemoteProtocolError("session must be an object", code="invalid_request")
    out = dict(session)
    out.setdefault("type", "realtime")
    return seconds, out


def _store_key(value: str) -> str:
    return "client_secret:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


class ClientSecrets:
    """Mints and checks client secrets; state lives in ``store``."""

    def __init__(
        self,
        store: SecretStore,
        *,
        single_use: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.single_use = single_use
        self._clock = clock

    async def mint(
        self,
        principal: Principal,
        *,
        seconds: int = DEFAULT_TTL_SECONDS,
        session: Mapping[str, Any] | None = None,
        single_use: bool | None = None,
    ) -> ClientSecret:
        if not MIN_TTL_SECONDS <= seconds <= MAX_TTL_SECONDS:
            raise ConfigError(f"seconds must be {MIN_TTL_SECONDS}–{MAX_TTL_SECONDS}")
        if not principal.has(Permission.AUDIO):
            raise AuthError("minting a client secret needs the 'audio' permission")
        once = self.single_use if single_use is None else single_use
        value = CLIENT_SECRET_PREFIX + secrets.token_urlsafe(24)
        expires_at = math.floor(self._clock()) + seconds
        granted = principal.effective_permissions() & _GRANTABLE
        session_out = dict(session or {"type": "realtime"})
        record: dict[str, Any] = {
            "user_id": principal.user_id,
            "tenant": principal.tenant,
            "tier": principal.tier,
            "permissions": sorted(granted),
            "session": session_out,
            "expires_at": expires_at,
            "single_use": once,
            "id": _store_key(value)[-12:],
        }
        await self._store.put(_store_key(value), json.dumps(record).encode(), seconds + 1)
        return ClientSecret(value, expires_at, session_out, self._principal(record), once)

    @staticmethod
    def _principal(record: Mapping[str, Any]) -> Principal:
        return Principal(
            str(record["user_id"]),
            tenant=str(record["tenant"]),
            tier=str(record["tier"]),
            permissions=parse_permissions(record["permissions"]),
            method="client_secret",
            key_id=str(record["id"]),
        )

    async def check(self, value: str) -> ClientSecret:
        """The secret's record, or ``AuthError`` (unknown, expired, already used)."""
        if not value.startswith(CLIENT_SECRET_PREFIX) or len(value) > 256:
            raise AuthError("not a client secret")
        key = _store_key(value)
        raw = await self._store.get(key)
        if raw is None:
            raise AuthError("unknown or expired client secret")
        record = json.loads(raw)
        if self._clock() >= record["expires_at"]:
            raise AuthError("expired client secret")
        # take(): of two connections racing with a single-use secret only one wins.
        if record["single_use"] and await self._store.take(key) is None:
            raise AuthError("client secret already used")
        return ClientSecret(
            value,
            int(record["expires_at"]),
            record["session"],
            self._principal(record),
            bool(record["single_use"]),
        )

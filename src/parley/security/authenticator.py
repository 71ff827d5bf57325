"""One entry point from presented credentials to a :class:`Principal`.

The kind of a secret is told by its shape, so there is no guessing order to exploit:
``ek_…`` is a client secret, three dot-separated base64url parts a JWT, anything else
an API key. With authentication off every connection is :data:`ANONYMOUS` (the offline
default; the server says so at start).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from parley.errors import AuthError, ConfigError
from parley.security.apikeys import ApiKeys
from parley.security.client_secrets import CLIENT_SECRET_PREFIX, ClientSecrets
from parley.security.jwt_auth import JWTConfig, JWTVerifier
from parley.security.principal import (
    ANONYMOUS,
    ConnectionLike,
    Credentials,
    Principal,
    extract_credentials,
)
from parley.store.kv import SecretStore

__all__ = ["Authenticator"]

_JWT_SHAPE: Final = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


class Authenticator:
    """``await authenticate(credentials)`` → principal, or ``AuthError`` with the reason."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        api_keys: ApiKeys | None = None,
        jwt: JWTVerifier | None = None,
        client_secrets: ClientSecrets | None = None,
    ) -> None:
        if enabled and api_keys is None and jwt is None:
            raise ConfigError(
                "authentication is on (enable_auth) but no API keys or JWT are configured: "
                "set auth.api_keys or auth.jwt in the settings (docs/compliance.md; "
                'PARLEY_AUTH=\'{"api_keys": [{"key": …, "user_id": …}]}\')',
                field="auth",
            )
        self.enabled = enabled
        self.api_keys = api_keys
        self.jwt = jwt
        self.client_secrets = client_secrets

    @classmethod
    def disabled(cls) -> Authenticator:
        return cls(enabled=False)

    @classmethod
    def from_settings(
        cls, auth: Mapping[str, Any], *, secret_store: SecretStore | None = None
    ) -> Authenticator:
        """From the ``auth:`` settings block: ``enabled``, ``api_keys`` (a list, see
        :meth:`ApiKeys.from_settings`), ``jwt`` (see :class:`JWTConfig`) and
        ``client_secrets: {single_use: bool}`` (needs ``secret_store``)."""
        known = {"enabled", "api_keys", "jwt", "client_secrets"}
        unknown = set(auth) - known
        if unknown:
            raise ConfigError(f"unknown auth setting(s): {sorted(unknown)}", field="auth")
        enabled = bool(auth.get("enabled", True))
        keys = ApiKeys.from_settings(auth.get("api_keys") or [])
        jwt_cfg = auth.get("jwt")
        verifier = JWTVerifier(JWTConfig.from_mapping(jwt_cfg)) if jwt_cfg else None
        secrets_cfg = auth.get("client_secrets")
        minted: ClientSecrets | None = None
        if secrets_cfg is not None and secret_store is not None:
            minted = ClientSecrets(secret_store, single_use=bool(secrets_cfg.get("single_use")))
        return cls(
            enabled=enabled,
            api_keys=keys if len(keys) else None,
            jwt=verifier,
            client_secrets=minted,
        )

    async def authenticate(self, credentials: Credentials | None) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        if credentials is None:
            raise AuthError(
                "no credentials (send 'Authorization: Bearer <key or token>', or for a "
                "browser a subprotocol 'openai-insecure-api-key.<secret>')"
            )
        secret = credentials.secret
        if secret.startswith(CLIENT_SECRET_PREFIX):
            if self.client_secrets is None:
                raise AuthError("client secrets are not enabled on this server")
            return (await self.client_secrets.check(secret)).principal
        if self.jwt is not None and _JWT_SHAPE.match(secret):
            return self.jwt.verify(secret)
        if self.api_keys is not None:
            return self.api_keys.check(secret)
        raise AuthError("this server takes JWTs only, and that is not one")

    async def authenticate_connection(
        self,
        conn: ConnectionLike,
        *,
        start_metadata: Mapping[str, str] | None = None,
        allow_query: bool = False,
    ) -> Principal:
        """:func:`extract_credentials` then :meth:`authenticate`."""
        if not self.enabled:
            return ANONYMOUS
        creds = extract_credentials(conn, start_metadata=start_metadata, allow_query=allow_query)
        return await self.authenticate(creds)

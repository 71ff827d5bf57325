"""API keys: hashed at rest, checked in constant time, each bound to a principal.

A key is only ever held as ``sha256("parley-api-key:" + key)``. SHA-256 rather than a
slow password hash (scrypt, argon2) because API keys are long random strings: a slow
hash protects guessable passwords, and with 128+ bits of entropy there is nothing to
guess, while every request would pay the slow hash. Keys minted here have 256 bits;
keys given in settings must be at least 24 characters.

Lookup is by digest (a dict of digests: what an attacker controls is the preimage,
so the timing of the lookup says nothing about a stored key), then confirmed with
``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from parley.errors import AuthError, ConfigError
from parley.security.principal import Permission, Principal, parse_permissions

__all__ = ["MIN_KEY_LENGTH", "ApiKeyEntry", "ApiKeys", "hash_api_key"]

MIN_KEY_LENGTH: Final = 24
_PREFIX: Final = "pk_"


def hash_api_key(key: str) -> str:
    """The at-rest form of ``key`` (hex SHA-256 with a domain prefix)."""
    return hashlib.sha256(b"parley-api-key:" + key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKeyEntry:
    """One stored key: its digest and whom it authenticates. ``key_id`` is public."""

    key_id: str
    digest: str = field(repr=False)
    principal: Principal
    revoked: bool = False


class ApiKeys:
    """The server's API keys. ``check(key)`` returns the key's principal or raises."""

    def __init__(self, entries: Iterable[ApiKeyEntry] = ()) -> None:
        self._by_digest: dict[str, ApiKeyEntry] = {}
        for entry in entries:
            self._add(entry)

    def __len__(self) -> int:
        return len(self._by_digest)

    def _add(self, entry: ApiKeyEntry) -> None:
        if len(entry.digest) != 64:
            raise ConfigError("an API key digest is 64 hex characters", field="api_keys")
        self._by_digest[entry.digest.lower()] = entry

    def add(
        self,
        key: str,
        *,
        user_id: str,
        tenant: str = "default",
        tier: str = "default",
        permissions: Iterable[Permission | str] = (Permission.CONVERSATION, Permission.AUDIO),
        key_id: str = "",
    ) -> ApiKeyEntry:
        """Register a raw key (hashed at once; the raw key is not kept)."""
        if len(key) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"an API key must be at least {MIN_KEY_LENGTH} characters", field="api_keys"
            )
        digest = hash_api_key(key)
        kid = key_id or digest[:12]
        principal = Principal(
            user_id,
            tenant=tenant,
            tier=tier,
            permissions=parse_permissions([str(p) for p in permissions]),
            method="api_key",
            key_id=kid,
        )
        entry = ApiKeyEntry(kid, digest, principal)
        self._add(entry)
        return entry

    def mint(self, **principal: Any) -> tuple[str, ApiKeyEntry]:
        """A new random key for ``principal`` (``user_id=``, ``tenant=``, …); the raw key
        is returned once and never stored."""
        key = _PREFIX + secrets.token_urlsafe(32)
        return key, self.add(key, **principal)

    def revoke(self, key_id: str) -> bool:
        for digest, entry in self._by_digest.items():
            if entry.key_id == key_id:
                self._by_digest[digest] = replace(entry, revoked=True)
                return True
        return False

    def check(self, key: str) -> Principal:
        digest = hash_api_key(key)
        entry = self._by_digest.get(digest)
        # compare_digest even on a hit: the dict lookup compared digests with ==.
        if entry is None or not hmac.compare_digest(entry.digest, digest):
            raise AuthError("unknown API key")
        if entry.revoked:
            raise AuthError(f"API key {entry.key_id} is revoked")
        return entry.principal

    @classmethod
    def from_settings(cls, items: Iterable[Mapping[str, Any]]) -> ApiKeys:
        """Keys from settings: each item has ``user_id`` and either ``key_sha256`` (the
        digest, from ``hash_api_key`` — what belongs in a settings file) or ``key``
        (raw, e.g. from an environment variable), and optionally ``tenant``, ``tier``,
        ``permissions``, ``key_id``."""
        keys = cls()
        for i, item in enumerate(items):
            user_id = item.get("user_id")
            if not isinstance(user_id, str) or not user_id:
                raise ConfigError(f"api_keys[{i}] needs a user_id", field="api_keys")
            perms = item.get("permissions", ["conversation", "audio"])
            extra = {
                "tenant": str(item.get("tenant", "default")),
                "tier": str(item.get("tier", "default")),
            }
            if "key_sha256" in item:
                digest = str(item["key_sha256"]).lower()
                principal = Principal(
                    user_id,
                    permissions=parse_permissions(perms),
                    method="api_key",
                    key_id=str(item.get("key_id") or digest[:12]),
                    **extra,
                )
                keys._add(ApiKeyEntry(principal.key_id, digest, principal))
            elif "key" in item:
                keys.add(
                    str(item["key"]),
                    user_id=user_id,
                    permissions=perms,
                    key_id=str(item.get("key_id", "")),
                    **extra,
                )
            else:
                raise ConfigError(f"api_keys[{i}] needs key or key_sha256", field="api_keys")
        return keys

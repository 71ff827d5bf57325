"""JWT bearer tokens (PyJWT): HS256 with a shared secret, RS256 (and the other RSA/EC
algorithms) with a public key from settings or from a JWKS file on disk.

Nothing is fetched over the network: an identity provider's JWKS is saved to a file
(and :meth:`JWTVerifier.reload` re-reads it when keys rotate). Every token must carry
``exp``; ``aud`` and ``iss`` are checked when configured; ``leeway`` allows for clock
skew. The algorithm list is fixed by configuration, never taken from the token, and
an HMAC algorithm is never combined with a public key (the classic confusion attack;
PyJWT refuses it too).

Claims → :class:`~parley.security.principal.Principal`: ``sub`` is the user,
``tenant``/``tier`` (configurable names) and ``permissions`` (a list) or ``scope``
(space-separated, the OAuth form).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import jwt

from parley.errors import AuthError, ConfigError
from parley.security.principal import Principal, parse_permissions

__all__ = ["MAX_TOKEN_BYTES", "JWTConfig", "JWTVerifier"]

#: Longer bearer tokens are refused before parsing (a JWT of a few claims is < 1 KiB).
MAX_TOKEN_BYTES: Final = 8192

_HMAC: Final = frozenset({"HS256", "HS384", "HS512"})
_ASYMMETRIC: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}
)


@dataclass(frozen=True, slots=True)
class JWTConfig:
    """How JWTs are checked. Give ``secret`` (HMAC), ``public_key`` (PEM) or
    ``jwks_file`` (a JWKS document saved on disk; keys chosen by the token's ``kid``)."""

    algorithms: tuple[str, ...] = ("HS256",)
    secret: str | None = field(default=None, repr=False)
    public_key: str | None = None
    jwks_file: Path | None = None
    audience: str | None = None
    issuer: str | None = None
    leeway_seconds: float = 30.0
    user_claim: str = "sub"
    tenant_claim: str = "tenant"
    tier_claim: str = "tier"
    permissions_claim: str = "permissions"
    default_tenant: str = "default"
    default_tier: str = "default"
    required_claims: tuple[str, ...] = ("exp",)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> JWTConfig:
        """From settings (``auth.jwt``); unknown keys are a ConfigError."""
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown JWT setting(s): {sorted(unknown)}", field="auth.jwt")
        kw = dict(values)
        if "algorithms" in kw:
            algs = kw["algorithms"]
            kw["algorithms"] = (algs,) if isinstance(algs, str) else tuple(algs)
        if kw.get("jwks_file") is not None:
            kw["jwks_file"] = Path(kw["jwks_file"])
        if "required_claims" in kw:
            kw["required_claims"] = tuple(kw["required_claims"])
        return cls(**kw)


class JWTVerifier:
    """``verify(token)`` → the token's principal, or ``AuthError`` saying why not."""

    def __init__(self, config: JWTConfig) -> None:
        algs = set(config.algorithms)
        if not algs:
            raise ConfigError("at least one JWT algorithm", field="auth.jwt.algorithms")
        bad = algs - _HMAC - _ASYMMETRIC
        if bad:
            raise ConfigError(f"unsupported JWT algorithm(s) {sorted(bad)}", field="algorithms")
        if algs & _HMAC and algs & _ASYMMETRIC:
            raise ConfigError(
                "mixing HMAC and public-key JWT algorithms invites key confusion; "
                "use two verifiers",
                field="auth.jwt.algorithms",
            )
        self.config = config
        self._hmac = bool(algs & _HMAC)
        sources = [config.secret, config.public_key, config.jwks_file]
        if sum(s is not None for s in sources) != 1:
            raise ConfigError("give exactly one of secret, public_key, jwks_file", field="auth.jwt")
        if self._hmac and config.secret is None:
            raise ConfigError("HMAC algorithms need a secret", field="auth.jwt.secret")
        if not self._hmac and config.secret is not None:
            raise ConfigError("public-key algorithms need public_key or jwks_file")
        if config.secret is not None and len(config.secret.encode()) < 32:
            # RFC 7518 §3.2: an HS256 key must have at least 256 bits.
            raise ConfigError("an HS256 secret must be at least 32 bytes", field="secret")
        self._jwks: jwt.PyJWKSet | None = None
        if config.jwks_file is not None:
            self.reload()

    def reload(self) -> None:
        """Re-read the JWKS file (after the identity provider rotated its keys)."""
        path = self.config.jwks_file
        if path is None:
            return
        try:
            self._jwks = jwt.PyJWKSet.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, jwt.PyJWKError, jwt.PyJWKSetError) as exc:
            raise ConfigError(
                f"cannot load JWKS {path}: {exc}", field="auth.jwt.jwks_file"
            ) from exc

    def _key(self, token: str) -> Any:
        if self.config.secret is not None:
            return self.config.secret
        if self.config.public_key is not None:
            return self.config.public_key
        assert self._jwks is not None
        kid = jwt.get_unverified_header(token).get("kid")
        keys = self._jwks.keys
        if kid is None:
            if len(keys) == 1:
                return keys[0]
            raise AuthError("token has no 'kid' and the JWKS holds several keys")
        for key in keys:
            if key.key_id == kid:
                return key
        raise AuthError(f"token signed with an unknown key id {kid!r}")

    def decode(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``."""
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthError(f"token longer than {MAX_TOKEN_BYTES} bytes")
        c = self.config
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key(token),
                algorithms=list(c.algorithms),
                audience=c.audience,
                issuer=c.issuer,
                leeway=c.leeway_seconds,
                options={
                    "require": list(c.required_claims),
                    "verify_aud": c.audience is not None,
                    "verify_iss": c.issuer is not None,
                },
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("token not valid yet (nbf/iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise AuthError(f"token audience is not {c.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise AuthError(f"token issuer is not {c.issuer!r}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidAlgorithmError:
            raise AuthError(f"token algorithm not allowed (only {list(c.algorithms)})") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature does not verify") from None
        except jwt.DecodeError as exc:
            raise AuthError(f"malformed token: {exc}") from None
        except (jwt.InvalidTokenError, jwt.PyJWKError) as exc:
            raise AuthError(f"invalid token: {exc}") from None
        return claims

    def verify(self, token: str) -> Principal:
        claims = self.decode(token)
        c = self.config
        user = claims.get(c.user_claim)
        if not isinstance(user, str) or not user:
            raise AuthError(f"token has no {c.user_claim!r} (user) claim")
        raw_perms: Sequence[str] | str = claims.get(c.permissions_claim) or claims.get("scope", "")
        if not isinstance(raw_perms, str | list | tuple):
            raise AuthError(f"token claim {c.permissions_claim!r} is not a list or string")
        tenant = claims.get(c.tenant_claim, c.default_tenant)
        tier = claims.get(c.tier_claim, c.default_tier)
        if not isinstance(tenant, str) or not tenant or not isinstance(tier, str):
            raise AuthError("token tenant/tier claims must be non-empty strings")
        return Principal(
            user,
            tenant=tenant,
            tier=tier or c.default_tier,
            permissions=parse_permissions(raw_perms),
            method="jwt",
            key_id=str(claims.get("jti", "")),
        )

"""Authentication primitives: API keys, JWT (HS256/RS256, JWKS on disk), client secrets,
credential extraction, and the Authenticator that joins them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from parley.errors import AuthError, ConfigError, RemoteProtocolError
from parley.security import (
    ANONYMOUS,
    ApiKeys,
    Authenticator,
    ClientSecrets,
    ConnectionInfo,
    JWTConfig,
    JWTVerifier,
    Permission,
    Principal,
    extract_credentials,
    hash_api_key,
)
from parley.security.client_secrets import parse_client_secret_request
from parley.store.kv import MemoryKV

SECRET = "s" * 40


def _hs(claims: dict[str, Any], key: str = SECRET, **headers: Any) -> str:
    return jwt.encode(claims, key, algorithm="HS256", headers=headers or None)


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "alice", "tenant": "acme", "tier": "pro", "exp": now + 60, "iat": now}
    base.update(extra)
    return base


# -- API keys -----------------------------------------------------------------------------


def test_api_key_is_hashed_at_rest_and_yields_its_principal() -> None:
    keys = ApiKeys()
    raw, entry = keys.mint(user_id="bob", tenant="acme", tier="free", permissions=["audio"])
    assert raw not in repr(entry) and raw not in entry.digest
    assert entry.digest == hash_api_key(raw)
    p = keys.check(raw)
    assert (p.user_id, p.tenant, p.tier, p.method) == ("bob", "acme", "free", "api_key")
    assert p.permissions == {Permission.AUDIO}
    with pytest.raises(AuthError, match="unknown API key"):
        keys.check(raw + "x")
    assert keys.revoke(entry.key_id)
    with pytest.raises(AuthError, match="revoked"):
        keys.check(raw)


def test_api_keys_from_settings_digest_or_raw() -> None:
    raw = "k" * 30
    keys = ApiKeys.from_settings(
        [
            {"user_id": "u1", "key_sha256": hash_api_key(raw), "permissions": ["admin"]},
            {"user_id": "u2", "key": "r" * 30, "tenant": "t2"},
        ]
    )
    assert keys.check(raw).is_admin
    assert keys.check("r" * 30).tenant == "t2"
    with pytest.raises(ConfigError):
        ApiKeys.from_settings([{"user_id": "u", "key": "short"}])
    with pytest.raises(ConfigError):
        ApiKeys.from_settings([{"key": "x" * 30}])


# -- JWT ----------------------------------------------------------------------------------


def test_hs256_claims_become_a_principal() -> None:
    v = JWTVerifier(JWTConfig(secret=SECRET, audience="parley", issuer="https://idp"))
    token = _hs(_claims(aud="parley", iss="https://idp", scope="openid conversation audio"))
    p = v.verify(token)
    assert (p.user_id, p.tenant, p.tier, p.method) == ("alice", "acme", "pro", "jwt")
    assert p.permissions == {Permission.CONVERSATION, Permission.AUDIO}


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": -120}, "expired"),  # relative to now (claims are made in the test)
        ({"aud": "other"}, "audience"),
        ({"iss": "https://evil"}, "issuer"),
        ({"exp": None}, "'exp'"),
        ({"nbf": 600}, "not valid yet"),
        ({"sub": ""}, "user"),
    ],
)
def test_jwt_refusals_say_why(overrides: dict[str, Any], reason: str) -> None:
    v = JWTVerifier(JWTConfig(secret=SECRET, audience="parley", issuer="https://idp"))
    now = int(time.time())
    claims = _claims(aud="parley", iss="https://idp")
    for name, value in overrides.items():
        if value is None:
            del claims[name]
        elif name in ("exp", "nbf"):
            claims[name] = now + value
        else:
            claims[name] = value
    with pytest.raises(AuthError, match=reason):
        v.verify(_hs(claims))


def test_jwt_leeway_accepts_small_skew_only() -> None:
    v = JWTVerifier(JWTConfig(secret=SECRET, leeway_seconds=30))
    assert v.verify(_hs(_claims(exp=int(time.time()) - 10))).user_id == "alice"
    with pytest.raises(AuthError, match="expired"):
        v.verify(_hs(_claims(exp=int(time.time()) - 60)))


def test_jwt_wrong_key_none_alg_garbage_and_size() -> None:
    v = JWTVerifier(JWTConfig(secret=SECRET))
    with pytest.raises(AuthError, match="signature"):
        v.verify(_hs(_claims(), key="x" * 40))
    unsigned = jwt.encode(_claims(), None, algorithm="none")
    with pytest.raises(AuthError, match="algorithm not allowed"):
        v.verify(unsigned)
    with pytest.raises(AuthError, match="malformed"):
        v.verify("a.b.c")
    with pytest.raises(AuthError, match="longer"):
        v.verify("a" * 9000)


def _rsa() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, pem.decode()


def test_rs256_with_public_key_and_key_confusion_refused() -> None:
    priv, pub = _rsa()
    v = JWTVerifier(JWTConfig(algorithms=("RS256",), public_key=pub))
    assert v.verify(jwt.encode(_claims(), priv, algorithm="RS256")).tenant == "acme"

    # The attack: an HS256 token "signed" with the public key as the HMAC secret.
    # (built by hand: PyJWT itself refuses to sign with a PEM as an HMAC key)
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(_claims()).encode())
    mac = hmac.new(pub.encode(), signing.encode(), hashlib.sha256).digest()
    forged_token = signing + "." + b64(mac)
    with pytest.raises(AuthError, match="algorithm not allowed"):
        v.verify(forged_token)
    with pytest.raises(ConfigError, match="confusion"):
        JWTVerifier(JWTConfig(algorithms=("RS256", "HS256"), public_key=pub))


def test_jwks_file_picks_the_key_by_kid_and_reloads(tmp_path: Path) -> None:
    (k1, _), (k2, _) = _rsa(), _rsa()

    def jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
        d: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        return {**d, "kid": kid, "use": "sig", "alg": "RS256"}

    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk(k1, "one")]}))
    v = JWTVerifier(JWTConfig.from_mapping({"algorithms": "RS256", "jwks_file": str(path)}))
    assert v.verify(jwt.encode(_claims(), k1, algorithm="RS256", headers={"kid": "one"}))
    t2 = jwt.encode(_claims(), k2, algorithm="RS256", headers={"kid": "two"})
    with pytest.raises(AuthError, match="unknown key id 'two'"):
        v.verify(t2)
    path.write_text(json.dumps({"keys": [jwk(k1, "one"), jwk(k2, "two")]}))
    v.reload()
    assert v.verify(t2).user_id == "alice"
    wrong = jwt.encode(_claims(), k1, algorithm="RS256", headers={"kid": "two"})
    with pytest.raises(AuthError, match="signature"):
        v.verify(wrong)


def test_jwt_config_errors() -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        JWTVerifier(JWTConfig(secret="short"))
    with pytest.raises(ConfigError, match="exactly one"):
        JWTVerifier(JWTConfig())
    with pytest.raises(ConfigError, match="unknown JWT"):
        JWTConfig.from_mapping({"secrett": "x"})


# -- credentials from a connection --------------------------------------------------------


def test_extract_credentials_in_order() -> None:
    both = ConnectionInfo(
        headers={"authorization": "Bearer aaa"},
        subprotocols=["realtime", "openai-insecure-api-key.bbb"],
    )
    assert extract_credentials(both) is not None
    assert extract_credentials(both).secret == "aaa"  # type: ignore[union-attr]
    sub = extract_credentials(
        ConnectionInfo(subprotocols=["realtime", "openai-insecure-api-key.bbb"])
    )
    assert sub is not None and (sub.secret, sub.source) == ("bbb", "subprotocol")
    start = extract_credentials(ConnectionInfo(), start_metadata={"token": "ccc"})
    assert start is not None and start.source == "start_frame"
    q = ConnectionInfo(query={"token": "ddd"})
    assert extract_credentials(q) is None
    assert extract_credentials(q, allow_query=True).secret == "ddd"  # type: ignore[union-attr]
    # A malformed Authorization header is not silently replaced by a weaker source.
    basic = ConnectionInfo(headers={"authorization": "Basic eA=="}, query={"token": "x"})
    assert extract_credentials(basic, allow_query=True) is None
    assert "aaa" not in repr(extract_credentials(both))


# -- client secrets -----------------------------------------------------------------------


async def test_client_secret_mint_check_expire_and_single_use() -> None:
    now = [1_000_000.0]
    store = MemoryKV(clock=lambda: now[0])
    secrets_ = ClientSecrets(store, clock=lambda: now[0])
    owner = Principal("alice", tenant="acme", tier="pro", permissions=frozenset(Permission))
    seconds, session = parse_client_secret_request(
        {"expires_after": {"anchor": "created_at", "seconds": 60}, "session": {"model": "m"}}
    )
    minted = await secrets_.mint(owner, seconds=seconds, session=session)
    body = minted.response()
    assert set(body) == {"value", "expires_at", "session"}
    assert body["value"].startswith("ek_") and body["expires_at"] == 1_000_060
    assert body["session"] == {"model": "m", "type": "realtime"}
    assert minted.value not in repr(minted)
    checked = await secrets_.check(minted.value)
    # Narrowed: a secret from a page never carries admin or analytics.
    assert checked.principal.permissions == {Permission.CONVERSATION, Permission.AUDIO}
    assert checked.principal.method == "client_secret"
    assert (await secrets_.check(minted.value)).principal.user_id == "alice"  # reusable
    now[0] += 61
    with pytest.raises(AuthError, match="expired"):
        await secrets_.check(minted.value)
    once = await secrets_.mint(owner, seconds=30, single_use=True)
    await secrets_.check(once.value)
    with pytest.raises(AuthError, match="unknown or expired"):
        await secrets_.check(once.value)
    with pytest.raises(AuthError, match="not a client secret"):
        await secrets_.check("sk-whatever")
    no_audio = Principal("eve", permissions=frozenset({Permission.CONVERSATION}))
    with pytest.raises(AuthError, match="audio"):
        await secrets_.mint(no_audio)


@pytest.mark.parametrize(
    "body",
    [
        {"expires_after": {"seconds": 5}},
        {"expires_after": {"seconds": 7201}},
        {"expires_after": {"seconds": "60"}},
        {"expires_after": {"anchor": "now", "seconds": 60}},
        {"session": []},
    ],
)
def test_client_secret_request_validation(body: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_client_secret_request(body)
    assert info.value.code == "invalid_request"


# -- the authenticator --------------------------------------------------------------------


async def test_authenticator_routes_by_shape() -> None:
    keys = ApiKeys()
    raw, _ = keys.mint(user_id="bob")
    kv = MemoryKV()
    auth = Authenticator(
        api_keys=keys,
        jwt=JWTVerifier(JWTConfig(secret=SECRET)),
        client_secrets=ClientSecrets(kv),
    )
    jwt_user = await auth.authenticate_connection(
        ConnectionInfo(headers={"authorization": f"Bearer {_hs(_claims(permissions=['admin']))}"})
    )
    assert jwt_user.method == "jwt" and jwt_user.is_admin
    key_user = await auth.authenticate_connection(ConnectionInfo(headers={"x-api-key": raw}))
    assert key_user.user_id == "bob"
    ek = await auth.client_secrets.mint(key_user)  # type: ignore[union-attr]
    browser = ConnectionInfo(subprotocols=["realtime", f"openai-insecure-api-key.{ek.value}"])
    assert (await auth.authenticate_connection(browser)).method == "client_secret"
    with pytest.raises(AuthError, match="no credentials"):
        await auth.authenticate_connection(ConnectionInfo())
    with pytest.raises(AuthError, match="unknown API key"):
        await auth.authenticate_connection(ConnectionInfo(headers={"x-api-key": "z" * 30}))
    assert await Authenticator.disabled().authenticate(None) is ANONYMOUS
    with pytest.raises(ConfigError):
        Authenticator()


async def test_authenticator_from_settings() -> None:
    raw = "k" * 32
    auth = Authenticator.from_settings(
        {
            "api_keys": [{"user_id": "u", "key_sha256": hash_api_key(raw)}],
            "jwt": {"secret": SECRET, "audience": "parley"},
            "client_secrets": {"single_use": True},
        },
        secret_store=MemoryKV(),
    )
    assert auth.client_secrets is not None and auth.client_secrets.single_use
    assert (await auth.authenticate_connection(ConnectionInfo(headers={"x-api-key": raw}))).user_id
    with pytest.raises(AuthError, match="lacks the 'aud' claim"):
        await auth.authenticate_connection(
            ConnectionInfo(headers={"authorization": f"Bearer {_hs(_claims())}"})
        )
    with pytest.raises(ConfigError):
        Authenticator.from_settings({"api_key": []})

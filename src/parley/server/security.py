"""The server's security: who may call, how often, and the record of what they did.

:class:`Security` joins the library pieces (``parley.security``: the authenticator,
tenancy, limits, refusals; ``parley.store``: the audit log, one-time claims) to the
server's two ways in:

- **REST**: :meth:`Security.gate` is a FastAPI dependency of the whole app, so every
  route — those added later too — authenticates (401), is rate limited (429 with
  ``Retry-After``) and, when tagged ``analytics``, needs ``analytics:read``; only
  ``PUBLIC_PATHS`` (health, readiness, the Twilio webhook, which Twilio signs) are
  open. Handlers read the principal with :meth:`Security.principal` and check each
  conversation with :meth:`Security.authorize`.
- **WebSockets**: :meth:`Security.admit` runs in every endpoint's ``admit``, before
  the socket is accepted (HTTP 401/429 where the host can): credentials from
  ``Authorization``/``X-API-Key`` or an ``openai-insecure-api-key.`` subprotocol. A
  browser may instead put its token in the first ``start`` frame; such a socket holds
  one of the few unauthenticated slots until :meth:`Security.authenticate_start`.

Authentication off (the offline default) makes every caller ``ANONYMOUS`` (the start
banner says so), and :meth:`Security.check_exposure` refuses to listen beyond
loopback that way unless ``allow_unauthenticated_public`` says it is meant.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection, Request

from parley.config import ConversationConfig, ParleySettings
from parley.errors import AuthError, ConfigError, RateLimited
from parley.protocols.twilio import Start
from parley.security.auditing import entry_for
from parley.security.authenticator import Authenticator
from parley.security.limits import LimitPolicy, TierLimits
from parley.security.principal import (
    ANONYMOUS,
    INSECURE_KEY_SUBPROTOCOL,
    ConnectionInfo,
    Permission,
    Principal,
)
from parley.security.refusals import RefusalSpec, refusal_for
from parley.security.tenancy import Action, Deny, Owner, authorize
from parley.security.twilio_once import SingleUseTokens
from parley.server.auth import TwilioTokens
from parley.server.persistence import Storage
from parley.server.tokens import StreamTokens
from parley.store.audit import AuditOutcome
from parley.transports.phone import TokenCheck
from parley.transports.platform import Caller, Connection, Refusal

__all__ = [
    "ADMISSION",
    "PUBLIC_PATHS",
    "PUBLIC_PREFIXES",
    "Admission",
    "Refused",
    "Security",
    "install_refusals",
    "is_loopback",
]

log = logging.getLogger("parley.server")

#: Where a socket's admission is kept on its ``Connection.state`` for ``serve``.
ADMISSION: Final = "parley.admission"
#: REST paths open without credentials: liveness and readiness; the phone platforms'
#: answer webhooks (each platform signs its own, checked by the route); the API's
#: schema and its two documentation pages (they show no data).
PUBLIC_PATHS: Final = frozenset(
    {
        "/healthz",
        "/readyz",
        "/twilio/voice",
        "/telnyx/answer",
        "/vonage/answer",
        "/plivo/answer",
        "/openapi.json",
        "/docs",
        "/redoc",
        "/dashboard",  # the dashboard's page and scripts (its data routes need the key)
        "/dashboard/",
    }
)
PUBLIC_PREFIXES: Final = ("/dashboard/static/",)
#: Routes tagged so need more than a valid credential (``/analytics/*``, the
#: dashboard and ``/metrics`` are tagged ``analytics``).
_TAG_ACTIONS: Final = {"analytics": Action.ANALYTICS}
_PHONE_PERMISSIONS: Final = frozenset({Permission.CONVERSATION, Permission.AUDIO})


class Refused(Exception):
    """A REST request refused by authentication, tenancy or a limit (rendered by the
    handler :func:`install_refusals` adds: the spec's status, headers and body)."""

    def __init__(self, spec: RefusalSpec) -> None:
        super().__init__(spec.reason)
        self.spec = spec


def install_refusals(api: FastAPI) -> None:
    async def refused(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Refused)
        spec = exc.spec
        return JSONResponse(spec.body, status_code=spec.status, headers=spec.headers)

    api.add_exception_handler(Refused, refused)


@dataclass(frozen=True, slots=True)
class Admission:
    """What a socket's admission decided: its principal, or None while its credentials
    are still to come in the handshake (holding the unauthenticated slot ``slot``)."""

    principal: Principal | None
    slot: str = ""
    client: str = ""


def _client_host(client: str) -> str:
    host, _, _ = client.rpartition(":")
    return host or client


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Security:
    """See the module docstring. Built by the switchboard from the settings."""

    def __init__(
        self,
        settings: ParleySettings,
        config: ConversationConfig,
        storage: Storage,
        *,
        twilio_tokens: TwilioTokens | None,
        stream_tokens: Mapping[str, StreamTokens] | None = None,
    ) -> None:
        self.settings = settings
        auth = dict(settings.auth)
        self.enabled = bool(config.enable_auth or auth.get("enabled", False))
        auth["enabled"] = self.enabled
        if self.enabled:
            auth.setdefault("client_secrets", {})
            self.authenticator = Authenticator.from_settings(auth, secret_store=storage.kv)
        else:
            self.authenticator = Authenticator.disabled()
        rate = config.rate_limit_per_minute or None
        pending = {
            "pending_conversations": settings.max_pending_per_user,
            "pending_ttl_seconds": settings.pending_ttl_seconds,
        }
        tiers = {name: {**pending, **values} for name, values in settings.limits.items()}
        base = LimitPolicy.from_settings(storage.limiter, rate_limit_per_minute=rate)
        default = tiers.pop("default", None)
        self.limits = LimitPolicy(
            storage.limiter,
            {n: TierLimits.from_mapping(v) for n, v in tiers.items()},
            default=TierLimits.from_mapping(default)
            if default is not None
            else TierLimits(
                requests=base.default.requests,
                new_calls=base.default.new_calls,
                pending_conversations=settings.max_pending_per_user,
                pending_ttl_seconds=settings.pending_ttl_seconds,
            ),
        )
        self.audit = storage.audit
        self.kv = storage.kv
        self.twilio = (
            SingleUseTokens(twilio_tokens, storage.kv) if twilio_tokens is not None else None
        )
        #: Telnyx, Vonage and Plivo's tokens (those configured), single-use like Twilio's.
        self.phones = {
            name: SingleUseTokens(t, storage.kv, platform=name)
            for name, t in (stream_tokens or {}).items()
        }

    # -- start ----------------------------------------------------------------------------

    def startup_messages(self, *, twilio: bool, realtime_key: bool) -> list[tuple[int, str]]:
        """What the start banner says about authentication (``twilio``: a Twilio auth
        token is set; ``realtime_key``: ``realtime_server_api_key`` is)."""
        msgs = self._auth_messages()
        if not twilio:
            msgs.append(
                (
                    logging.WARNING,
                    "Twilio requests are NOT authenticated: set PARLEY_TWILIO_AUTH_TOKEN to "
                    "check X-Twilio-Signature and the stream's one-time tokens",
                )
            )
        else:
            msgs.append(
                (logging.INFO, "Twilio requests are authenticated (signature + one-time token)")
            )
        open_phones = [p for p in ("telnyx", "vonage", "plivo") if p not in self.phones]
        if open_phones:
            msgs.append(
                (
                    logging.WARNING,
                    f"{', '.join(open_phones)} streams and webhooks are NOT authenticated: set "
                    "PARLEY_TELNYX_API_KEY + PARLEY_TELNYX_PUBLIC_KEY, "
                    "PARLEY_VONAGE_SIGNATURE_SECRET, PARLEY_PLIVO_AUTH_TOKEN",
                )
            )
        if not realtime_key and not self.enabled:
            msgs.append(
                (
                    logging.WARNING,
                    "/v1/realtime accepts any client: set PARLEY_REALTIME_SERVER_API_KEY "
                    "to require a key",
                )
            )
        return msgs

    def _auth_messages(self) -> list[tuple[int, str]]:
        if not self.enabled:
            return [
                (
                    logging.WARNING,
                    "authentication is OFF: anyone who reaches this server can use every "
                    "route and socket (set conversation.enable_auth and auth.api_keys or "
                    "auth.jwt); listening beyond loopback needs allow_unauthenticated_public",
                )
            ]
        ways = [
            w
            for w, on in (
                ("API keys", self.authenticator.api_keys is not None),
                ("JWT", self.authenticator.jwt is not None),
            )
            if on
        ]
        return [(logging.INFO, f"authentication is on ({' and '.join(ways)})")]

    def check_exposure(self, host: str) -> None:
        """Refuse to serve ``host`` beyond loopback with authentication off, unless the
        settings say that is intended."""
        if self.enabled or self.settings.allow_unauthenticated_public or is_loopback(host):
            return
        raise ConfigError(
            f"refusing to listen on {host!r} with authentication off: anyone reaching it "
            "could read every transcript and end every call. Turn authentication on "
            "(conversation.enable_auth with auth.api_keys or auth.jwt), listen on "
            "127.0.0.1, or set allow_unauthenticated_public=true if this is intended",
            field="host",
        )

    # -- REST -----------------------------------------------------------------------------

    async def gate(self, conn: HTTPConnection) -> None:
        """The app-wide dependency (see the module docstring)."""
        if conn.scope["type"] != "http":
            return  # WebSockets are admitted by their endpoint
        route = conn.scope.get("route")
        # The request's own path, not the route's template: a route of an included
        # router carries its path without the router's prefix.
        path, root = str(conn.scope.get("path", "")), str(conn.scope.get("root_path", ""))
        if root and path.startswith(root):
            path = path[len(root) :]
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return
        principal = await self._authenticate_request(conn)
        try:
            await self.limits.check_request(principal)
        except RateLimited as exc:
            raise Refused(refusal_for(exc)) from None
        for tag in getattr(route, "tags", None) or ():
            action = _TAG_ACTIONS.get(str(tag))
            if action is not None:
                await self.authorize(conn, principal, action)

    async def _authenticate_request(self, conn: HTTPConnection) -> Principal:
        found = conn.scope.get("state", {}).get("parley_principal")
        if isinstance(found, Principal):
            return found
        try:
            principal = await self.authenticator.authenticate_connection(
                ConnectionInfo(headers=conn.headers, query=conn.query_params)
            )
        except AuthError as exc:
            await self.record(
                None, "auth", "denied", conn, target=conn.url.path, detail={"reason": str(exc)}
            )
            raise Refused(refusal_for(exc)) from None
        conn.scope.setdefault("state", {})["parley_principal"] = principal
        return principal

    async def optional_principal(self, conn: HTTPConnection) -> Principal | None:
        """The request's principal if its credentials are good, else None (public
        routes that show more to some callers)."""
        try:
            return await self.authenticator.authenticate_connection(
                ConnectionInfo(headers=conn.headers, query=conn.query_params)
            )
        except AuthError:
            return None

    async def principal(self, request: Request) -> Principal:
        """The request's principal (a route dependency; the gate already checked it)."""
        return await self._authenticate_request(request)

    async def authorize(
        self,
        conn: HTTPConnection,
        principal: Principal,
        action: Action,
        owner: Owner | None = None,
        *,
        target: str = "",
    ) -> Deny | None:
        """None if allowed. A missing permission raises (403); a conversation that is
        not the principal's is returned as its ``Deny(404)`` so the route answers
        exactly as for an id that does not exist."""
        decision = authorize(principal, action, owner)
        if isinstance(decision, Deny):
            await self.record(
                principal,
                str(action),
                "denied",
                conn,
                target=target,
                detail={"reason": decision.reason},
            )
            if decision.status == 404:
                return decision
            raise Refused(refusal_for(decision))
        return None

    async def record(
        self,
        principal: Principal | None,
        action: str,
        outcome: AuditOutcome,
        conn: HTTPConnection | None = None,
        *,
        target: str = "",
        client: str = "",
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """One audit entry (an audit backend's failure is logged, never raised)."""
        if conn is not None and conn.client is not None and not client:
            client = conn.client.host
        try:
            await self.audit.append(
                entry_for(principal, action, outcome, target=target, client=client, detail=detail)
            )
        except Exception as exc:  # the audit backend's failure must not break the route
            log.error("audit entry %s/%s not written: %s", action, outcome, exc)

    # -- sockets --------------------------------------------------------------------------

    async def admit(
        self, connection: Connection, *, deferred: bool, kind: str = "stream"
    ) -> Admission | Refusal:
        """Before accepting a socket. ``deferred``: the protocol may carry its
        credentials in its first frame (the browser's ``start``, Twilio's token)."""
        if not self.enabled:
            return Admission(ANONYMOUS)
        try:
            principal = await self.authenticator.authenticate_connection(connection)
        except AuthError as exc:
            offered = (
                bool(connection.headers.get("authorization"))
                or any(p.startswith(INSECURE_KEY_SUBPROTOCOL) for p in connection.subprotocols)
                or bool(connection.headers.get("x-api-key"))
            )
            if offered or not deferred:
                return await self._refuse_socket(kind, connection, exc)
            slot = secrets.token_hex(8)
            try:
                await self.limits.admit_unauthenticated(slot, _client_host(connection.client))
            except RateLimited as limited:
                return await self._refuse_socket(kind, connection, limited)
            return Admission(None, slot, _client_host(connection.client))
        return Admission(principal)

    async def _refuse_socket(
        self, kind: str, connection: Connection, exc: AuthError | RateLimited
    ) -> Refusal:
        spec = refusal_for(exc)
        if isinstance(exc, AuthError):
            await self.record(
                None,
                f"{kind}.connect",
                "denied",
                target=connection.path,
                client=_client_host(connection.client),
                detail={"reason": str(exc)},
            )
        return Refusal(spec.status, spec.close_code, spec.reason, spec.body)

    async def authenticate_start(
        self, connection: Connection, admission: Admission, caller: Caller
    ) -> Principal:
        """The principal of a socket after its handshake: the admitted one, the phone
        caller the platform verified, or the token of the browser's ``start``
        (``AuthError`` if none)."""
        try:
            if admission.principal is not None and admission.principal.authenticated:
                return admission.principal
            if caller.verified:
                return self.phone_principal(caller.user_id, caller.call_sid)
            if admission.principal is not None:  # authentication off
                return admission.principal
            try:
                return await self.authenticator.authenticate_connection(
                    connection, start_metadata=caller.metadata
                )
            except AuthError as exc:
                await self.record(
                    None,
                    "socket.connect",
                    "denied",
                    target=connection.path,
                    client=admission.client,
                    detail={"reason": str(exc)},
                )
                raise
        finally:
            await self.release(admission)

    async def release(self, admission: Admission) -> None:
        if admission.slot:
            await self.limits.release_unauthenticated(admission.slot, admission.client)

    def phone_principal(self, caller: str | None, call_sid: str = "") -> Principal:
        """A phone caller, proven by the platform (Twilio's signed webhook and one-time
        token): one user per number, in the phone tenant, tier ``phone``."""
        return Principal(
            f"phone:{caller or call_sid or 'unknown'}",
            tenant=self.settings.phone_tenant,
            tier="phone",
            permissions=_PHONE_PERMISSIONS,
            method="internal",
        )

    def phone_checks(self) -> dict[str, TokenCheck]:
        """Each configured phone platform's stream-token check, by platform name."""
        return {name: tokens.check for name, tokens in self.phones.items()}

    async def check_twilio_start(self, start: Start) -> None:
        """The stream's one-time token: ours, this call's, unexpired, and never used
        before on any node (Redis) or by this process since it started (memory)."""
        assert self.twilio is not None
        params = start.custom_parameters
        await self.twilio.check(params.get("token"), start.call_sid, params.get("from", ""))

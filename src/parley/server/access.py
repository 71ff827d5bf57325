"""REST of the security layer: short-lived client secrets for browsers, and the audit
log for admins.

- ``POST /v1/realtime/client_secrets`` — OpenAI's request and response shapes
  (``parley.security.client_secrets``): a server holding a real key mints a secret
  (``ek_…``, 10 s – 2 h) that a page uses to open ``/v1/realtime`` or ``/ws/audio``
  as the minter, with at most ``conversation`` and ``audio``.
- ``GET /audit`` — the caller's tenant's audit entries, newest first (``admin``
  only; the read is itself recorded).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request
from pydantic import BaseModel

from parley.errors import AuthError, RemoteProtocolError
from parley.security.auditing import read_audit
from parley.security.client_secrets import parse_client_secret_request
from parley.security.refusals import refusal_for
from parley.security.tenancy import Deny
from parley.server.rest import Caller
from parley.server.security import Refused
from parley.server.switchboard import Switchboard

__all__ = ["AuditEntryInfo", "AuditLogInfo", "ClientSecretInfo", "access_router"]


class ClientSecretInfo(BaseModel):
    value: str
    expires_at: int
    session: dict[str, Any]


class AuditEntryInfo(BaseModel):
    at: float
    action: str
    outcome: str
    actor: str
    tenant: str
    target: str
    method: str
    client: str
    detail: dict[str, Any]


class AuditLogInfo(BaseModel):
    entries: list[AuditEntryInfo]


def _openai_error(message: str, code: str, status: int) -> HTTPException:
    return HTTPException(
        status,
        detail={"type": "invalid_request_error", "code": code, "message": message, "param": None},
    )


def access_router(app: Switchboard) -> APIRouter:
    router = APIRouter(tags=["security"])
    sec = app.security

    @router.post("/v1/realtime/client_secrets", response_model=ClientSecretInfo)
    async def mint_client_secret(
        request: Request,
        who: Caller,
        body: Annotated[dict[str, Any] | None, Body()] = None,
    ) -> ClientSecretInfo:
        """A short-lived secret for a browser (OpenAI's ``client_secrets`` API)."""
        minter = sec.authenticator.client_secrets
        if minter is None:
            raise _openai_error(
                "client secrets need authentication on (conversation.enable_auth)",
                "client_secrets_disabled",
                404,
            )
        try:
            seconds, session = parse_client_secret_request(body or {})
            secret = await minter.mint(who, seconds=seconds, session=session)
        except RemoteProtocolError as exc:
            raise _openai_error(exc.message, exc.code, 400) from None
        except AuthError as exc:
            await sec.record(
                who, "client_secret.mint", "denied", request, detail={"reason": str(exc)}
            )
            raise Refused(refusal_for(Deny(403, str(exc)))) from None
        await sec.record(who, "client_secret.mint", "ok", request, detail={"seconds": seconds})
        return ClientSecretInfo(**secret.response())

    @router.get("/audit", response_model=AuditLogInfo)
    async def get_audit(
        who: Caller,
        actor: Annotated[str | None, Query(max_length=200)] = None,
        action: Annotated[str | None, Query(max_length=200)] = None,
        since: float | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> AuditLogInfo:
        """The audit log of the caller's tenant (``admin`` only)."""
        try:
            found = await read_audit(
                sec.audit, who, actor=actor, action=action, since=since, limit=limit
            )
        except AuthError as exc:
            raise Refused(refusal_for(Deny(403, str(exc)))) from None
        return AuditLogInfo(
            entries=[
                AuditEntryInfo(
                    at=e.at,
                    action=e.action,
                    outcome=e.outcome,
                    actor=e.actor,
                    tenant=e.tenant,
                    target=e.target,
                    method=e.method,
                    client=e.client,
                    detail=e.detail,
                )
                for e in found
            ]
        )

    return router

"""Opening a conversation from a REST request: the checks every route that creates
one makes (``POST /calls`` here; ``POST /conversations`` makes the same ones).

Who may (``Action.CREATE``), whether the server takes calls now (drain, capacity),
which engine, brain and voice a client may choose (``allowed_engines``,
``allowed_brains``), whose the conversation is (the principal; a client names
another user only as an ``admin``), and the principal's limits (pending
conversations, new calls per minute). Each refusal is the HTTP answer it should be.
"""

from __future__ import annotations

from fastapi import HTTPException, Request

from parley.engines.spec import EngineKind
from parley.errors import ConfigError, RateLimited
from parley.flows import FlowConfig
from parley.security.principal import Principal
from parley.security.refusals import refusal_for
from parley.security.tenancy import Action, Deny
from parley.server.calls import CallRecord
from parley.server.security import Refused
from parley.server.switchboard import Switchboard

__all__ = ["open_conversation", "unprocessable"]


def unprocessable(field: str, message: str) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors."""
    return HTTPException(
        422, detail=[{"loc": ["body", field], "msg": message, "type": "value_error"}]
    )


async def open_conversation(
    app: Switchboard,
    request: Request,
    who: Principal,
    *,
    kind: str | None = None,
    user_id: str | None,
    system_prompt: str | None,
    voice: str | None,
    engine: EngineKind | None,
    brain: str | None,
    metadata: dict[str, str],
    flow: FlowConfig | None = None,
    max_seconds: float | None = None,
    audit: str = "conversation.create",
) -> CallRecord:
    """A new pending conversation for ``who``, or the refusal raised."""
    sec = app.security
    await sec.authorize(request, who, Action.CREATE)
    refusal = app.refusal()
    if refusal is not None:
        raise HTTPException(503, detail=refusal, headers={"Retry-After": "5"})
    settings, cfg = app.settings, app.setup.config
    chosen_engine, chosen_brain = engine or settings.engine, brain or settings.brain
    try:
        if app.setup.engine_maker is None:
            app.factory.check(chosen_engine, chosen_brain, voice or cfg.voice)
    except ConfigError as exc:
        raise unprocessable(exc.field, str(exc)) from None
    if chosen_engine is not settings.engine and chosen_engine not in settings.allowed_engines:
        raise unprocessable("engine", f"this server does not let clients choose {chosen_engine}")
    if chosen_brain != settings.brain and chosen_brain not in settings.allowed_brains:
        raise unprocessable("brain", f"this server does not let clients choose {chosen_brain!r}")
    if sec.enabled and not who.is_admin:
        if user_id not in (None, who.user_id):
            raise Refused(refusal_for(Deny(403, "user_id must be your own (or ask as an admin)")))
        user_id = who.user_id
    await app.admission.sweep()
    record = app.new_record(
        kind=kind,
        user_id=user_id,
        system_prompt=system_prompt,
        voice=voice,
        engine=engine,
        brain=brain,
        metadata=metadata,
        owner=who,
        flow=flow,
        max_seconds=max_seconds,
    )
    try:
        await app.admission.created(record, who)
    except RateLimited as exc:
        app.calls.ended(record)
        raise Refused(refusal_for(exc)) from None
    await sec.record(who, audit, "ok", request, target=record.id)
    return record

"""REST: create, list, inspect, read the transcript of, inject into and end
conversations — each route authorized against the conversation's owner
(``parley.security.tenancy``: another user's or tenant's answers exactly as an
unknown id), bounded in what it accepts, and, on a cluster, carried to the node that
holds the call (inject, fire, end, live state: :func:`command_handler` runs them on
that node)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from parley.analytics.hub import CallView, view_fields
from parley.conversation.transcript import Turn
from parley.engines.spec import EngineKind
from parley.errors import ConfigError
from parley.events import ErrorEvent
from parley.flows.guided import MAX_PHASES, ConversationPhase, GuidedConversation
from parley.security.principal import Principal
from parley.security.tenancy import Action, Deny, Owner, list_scope
from parley.server.admission import owner
from parley.server.bounds import unicode_text
from parley.server.calls import CallRecord, CallStatus
from parley.server.opening import open_conversation
from parley.server.persistence import stored_info
from parley.server.switchboard import Switchboard
from parley.server.urls import http_base, ws_base
from parley.store.cluster import CallNotFound, ClusterError, Command, CommandHandler

__all__ = [
    "ContextAccepted",
    "ContextInject",
    "ConversationCreate",
    "ConversationCreated",
    "ConversationInfo",
    "ConversationList",
    "ConversationSummary",
    "Ended",
    "ErrorInfo",
    "EventFire",
    "EventFired",
    "LatencyInfo",
    "TranscriptInfo",
    "TurnInfo",
    "command_handler",
    "read_guard",
    "rest_router",
]

#: Field limits (issue 10, input bounds): what a body may hold.
MAX_METADATA_ITEMS: Final = 50
MAX_METADATA_KEY: Final = 100
MAX_METADATA_VALUE: Final = 2_000
MAX_DATA_BYTES: Final = 64 * 1024


def _check_metadata(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_METADATA_ITEMS:
        raise ValueError(f"at most {MAX_METADATA_ITEMS} metadata entries")
    for k, v in value.items():
        if not 0 < len(k) <= MAX_METADATA_KEY or len(v) > MAX_METADATA_VALUE:
            raise ValueError(
                f"metadata keys are 1-{MAX_METADATA_KEY} characters, values at most "
                f"{MAX_METADATA_VALUE}"
            )
    return value


#: Text that any store, log and response can hold (no lone surrogates).
Text = Annotated[str, AfterValidator(unicode_text)]


def _check_size(value: Any) -> Any:
    try:
        size = len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("text with a lone surrogate (not valid Unicode)") from None
    if size > MAX_DATA_BYTES:
        raise ValueError(f"data is {size} bytes of JSON, over the {MAX_DATA_BYTES} allowed")
    return value


#: The fields that make a body seed 002's conversation config (a guided flow).
_GUIDED_FIELDS: Final = frozenset(
    {"name", "goal", "initial_phase", "phases", "completion_criteria"}
)


class ConversationCreate(BaseModel):
    """A new conversation; fields left out take the server's configuration."""

    model_config = ConfigDict(extra="forbid")

    system_prompt: Text | None = Field(default=None, max_length=20_000)
    voice: Text | None = Field(default=None, min_length=1, max_length=100)
    engine: EngineKind | None = None
    brain: Text | None = Field(
        default=None,
        max_length=200,
        description="echo | template | openai:MODEL | anthropic:MODEL",
    )
    user_id: Text | None = Field(default=None, min_length=1, max_length=200)
    metadata: dict[Text, Text] = Field(default_factory=dict)
    # Seed 002's ConversationConfig (parley.flows.guided): this conversation's own
    # guided flow, prompt and maximum length. Checked in full by GuidedConversation.
    name: Text | None = Field(default=None, min_length=1, max_length=100)
    goal: Text | None = Field(default=None, max_length=5000)
    initial_phase: Text | None = Field(default=None, max_length=100)
    system_instructions: Text | None = Field(default=None, max_length=20_000)
    phases: dict[Text, ConversationPhase] | None = Field(default=None, max_length=MAX_PHASES)
    max_duration_seconds: float | None = Field(default=None, gt=0, le=86_400)
    completion_criteria: dict[Text, Any] | None = None

    _metadata = field_validator("metadata")(_check_metadata)

    def guided(self) -> GuidedConversation | None:
        """The document's conversation config, when the body is one (``ConfigError``
        naming the field when it is incomplete)."""
        if self.system_prompt is not None and self.system_instructions is not None:
            raise ConfigError(
                "give system_prompt or system_instructions, not both", field="system_instructions"
            )
        fields = self.model_fields_set & _GUIDED_FIELDS
        if not fields:
            return None
        data = self.model_dump(
            include={*fields, "system_instructions", "max_duration_seconds", "voice"},
            exclude_none=True,
        )
        return GuidedConversation.parse(data)


class ConversationCreated(BaseModel):
    id: str
    session_id: str = Field(description="the same id (seed 002's name for it)")
    status: str
    websocket_url: str
    websocket_path: str
    realtime_url: str = Field(description="the OpenAI Realtime protocol socket for it")
    realtime_path: str
    engine: EngineKind
    brain: str
    voice: str
    url: str
    flow: str | None = Field(default=None, description="its guided flow's name")
    phase: str | None = Field(default=None, description="the flow's initial phase")
    warnings: list[str] = Field(default_factory=list)


class TurnInfo(BaseModel):
    role: str
    text: str
    started_at: float
    ended_at: float | None
    interrupted: bool
    response_id: str = ""
    failed: bool = False  # a reply that failed: its text is the apology the caller heard


class LatencyInfo(BaseModel):
    count: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None = None
    mean_ms: float | None


class ErrorInfo(BaseModel):
    code: str
    message: str
    fatal: bool = False


class ConversationInfo(BaseModel):
    id: str
    kind: str | None = Field(description="the platform: twilio, browser, realtime, …")
    status: str
    state: str | None
    engine: EngineKind = Field(description="the engine this conversation was set up with")
    serving: str = Field(description="the engine answering now (cascade after a failover)")
    brain: str
    voice: str
    user_id: str | None
    metadata: dict[str, str]
    created_at: float
    started_at: float | None
    ended_at: float | None
    turns: list[TurnInfo]
    metrics: dict[str, LatencyInfo] = Field(
        default_factory=dict, description="latency per figure over the turns"
    )
    turn_metrics: list[dict[str, Any]] = Field(default_factory=list)
    estimated_cost: float | None = Field(
        default=None, description="USD so far (track_costs), a lower bound if `cost.unpriced`"
    )
    cost: dict[str, Any] | None = None
    engagement_score: float | None = Field(default=None, description="0..1 (track_engagement)")
    analytics: dict[str, Any] | None = Field(
        default=None, description="the analytics processor's result, once the call ended"
    )
    analytics_error: str | None = None
    error: ErrorInfo | None = Field(description="the latest error of the call")
    errors: list[ErrorInfo]
    end_reason: str = Field(default="", description="requested, disconnected, node_lost, …")


class ConversationSummary(BaseModel):
    id: str
    kind: str | None
    status: str
    user_id: str
    created_at: float
    ended_at: float | None
    end_reason: str = ""


class ConversationList(BaseModel):
    conversations: list[ConversationSummary]


class TranscriptInfo(BaseModel):
    id: str
    turns: list[TurnInfo]
    text: str


class Ended(BaseModel):
    id: str
    status: str


class ContextInject(BaseModel):
    """Data for a live call's context; a newer value for ``key`` replaces the older."""

    model_config = ConfigDict(extra="forbid")

    key: Text = Field(min_length=1, max_length=200)
    data: dict[str, Any] | list[Any] | str

    _data = field_validator("data")(_check_size)


class ContextAccepted(BaseModel):
    id: str
    key: str
    tokens: int
    truncated: bool
    deferred: bool
    evicted: list[str]
    latency_ms: float


class EventFire(BaseModel):
    """Fire the EVENT context triggers registered for ``event``."""

    model_config = ConfigDict(extra="forbid")

    event: Text = Field(min_length=1, max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)

    _data = field_validator("data")(_check_size)


class EventFired(BaseModel):
    id: str
    event: str
    fired: int


def _not_live(conversation_id: str, status: str) -> HTTPException:
    return HTTPException(409, detail=f"conversation {conversation_id!r} is {status}, not live")


def _turn(t: Turn) -> TurnInfo:
    return TurnInfo(
        role=t.role.value,
        text=t.text,
        started_at=t.started_at,
        ended_at=t.ended_at,
        interrupted=t.interrupted,
        response_id=t.response_id,
        failed=t.failed,
    )


def _error(e: ErrorEvent) -> ErrorInfo:
    return ErrorInfo(code=e.code, message=e.message, fatal=e.fatal)


def _analytics_fields(view: CallView | None) -> dict[str, Any]:
    """A call's metrics, cost and engagement as ``ConversationInfo`` fields (none when
    the hub has no view of it)."""
    return view_fields(view) if view is not None else {}


def _info(record: CallRecord, view: CallView | None) -> ConversationInfo:
    journal = record.journal
    conv = record.conversation
    turns = [_turn(t) for t in journal.transcript] if journal is not None else []
    errors = [_error(e) for e in journal.errors] if journal is not None else []
    return ConversationInfo(
        id=record.id,
        kind=record.kind,
        status=record.status.value,
        state=conv.state.value if conv is not None else None,
        engine=record.engine,
        serving=record.serving,
        brain=record.brain,
        voice=record.voice,
        user_id=record.user_id,
        metadata=record.metadata,
        created_at=record.created_at,
        started_at=record.started_at,
        ended_at=record.ended_at,
        turns=turns,
        error=errors[-1] if errors else None,
        errors=errors,
        end_reason=record.end_reason,
        **_analytics_fields(view),
    )


def _not_found(conversation_id: str) -> HTTPException:
    return HTTPException(404, detail=f"no conversation {conversation_id!r}")


def _unprocessable(field: str, message: str) -> HTTPException:
    return HTTPException(
        422, detail=[{"loc": ["body", field], "msg": message, "type": "value_error"}]
    )


async def _caller(request: Request) -> Principal:
    """The request's principal (the app-wide gate checked its credentials already)."""
    board: Switchboard = request.app.state.switchboard
    return await board.security.principal(request)


#: A route parameter: who is asking.
Caller = Annotated[Principal, Depends(_caller)]


def command_handler(app: Switchboard) -> CommandHandler:
    """What REST's commands do to a call held by this node (run here, or for another
    node that received the request): ``CallNotFound`` when the call is not live here."""

    async def handle(cmd: Command) -> dict[str, Any]:
        cid, payload = cmd.call_id, cmd.payload
        record = app.calls.get(cid)
        if record is None or record.status is CallStatus.ENDED:
            raise CallNotFound(f"no live call {cid!r} here")
        if cmd.kind == "live_state":
            return _info(record, app.analytics.view(cid)).model_dump(mode="json")
        if cmd.kind == "inject_context":
            result = await app.inject_context(
                cid, str(payload["key"]), payload["data"], source="rest"
            )
            if result is None:
                raise CallNotFound(f"call {cid!r} is not live")
            return {
                "key": result.key,
                "tokens": result.tokens,
                "truncated": result.truncated,
                "deferred": result.deferred,
                "evicted": list(result.evicted),
                "latency_ms": result.latency_ms,
            }
        if cmd.kind == "fire_event":
            fired = await app.fire(cid, str(payload["event"]), dict(payload.get("data") or {}))
            if fired is None:
                raise CallNotFound(f"call {cid!r} is not live")
            return {"fired": fired}
        if cmd.kind == "end_call":
            await app.end_call(cid)
            return {"status": "ended"}
        raise CallNotFound(f"no command {cmd.kind!r}")

    return handle


async def _owned(
    app: Switchboard, request: Request, who: Principal, cid: str, action: Action
) -> str:
    """The conversation's status if ``who`` may ``action`` it, else the 404 an unknown
    id gets (whosever it is)."""
    record = await app.admission.local(cid)
    if record is not None:
        found, status = owner(record), record.status.value
    else:
        stored = await app.persistence.get_record(cid)
        if stored is None:
            raise _not_found(cid)
        found, status = Owner(stored.tenant, stored.user_id), stored.status
    if await app.security.authorize(request, who, action, found, target=cid) is not None:
        raise _not_found(cid)
    await app.security.record(who, f"conversation.{action}", "ok", request, target=cid)
    return status


def read_guard(app: Switchboard) -> Callable[[Request, str], Awaitable[None]]:
    """For routes of one conversation outside this module (flow progress): 404 unless
    the request's principal may read it."""

    async def guard(request: Request, cid: str) -> None:
        await _owned(app, request, await app.security.principal(request), cid, Action.READ)

    return guard


def rest_router(app: Switchboard) -> APIRouter:
    router = APIRouter(tags=["conversations"])
    sec = app.security
    local = command_handler(app)
    if app.cluster is not None:
        app.cluster.handle_with(local)

    async def command(kind: Any, cid: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Run a command where the call is: None when it is live nowhere."""
        try:
            if app.cluster is None:
                return await local(Command(kind, cid, payload))
            return await app.cluster.send(Command(kind, cid, payload))
        except CallNotFound:
            return None
        except ClusterError as exc:
            raise HTTPException(503, detail=f"the node holding {cid!r}: {exc}") from None

    async def owned(request: Request, who: Principal, cid: str, action: Action) -> str:
        return await _owned(app, request, who, cid, action)

    async def info(cid: str) -> ConversationInfo:
        record = app.calls.get(cid)
        if record is not None:
            return _info(record, app.analytics.view(cid))
        if app.cluster is not None:
            try:
                live = await command("live_state", cid, {})
            except HTTPException:  # its node is gone: what the store has (its lease lapses)
                live = None
            if live is not None:
                return ConversationInfo(**live)
        stored = await app.persistence.load(cid)
        if stored is None:
            raise _not_found(cid)
        # an ended call: the store's record, the hub's final figures
        return ConversationInfo(
            **{**stored_info(stored), **_analytics_fields(app.analytics.view(cid))}
        )

    @router.post("/conversations", status_code=201, response_model=ConversationCreated)
    async def create_conversation(
        body: ConversationCreate, request: Request, response: Response, who: Caller
    ) -> ConversationCreated:
        await sec.authorize(request, who, Action.CREATE)  # before the body is read
        voice, warnings = body.voice, []
        try:
            guided = body.guided()
            flow = guided.to_flow() if guided is not None else None
            if app.setup.engine_maker is None and guided is not None and voice is not None:
                # the document's voices ("alloy") fall back to the server's, with a warning
                voice, warning = _voice_or_default(app, body.brain or app.settings.brain, voice)
                warnings += warning
        except ConfigError as exc:
            raise _unprocessable(exc.field, str(exc)) from None
        record = await open_conversation(
            app,
            request,
            who,
            user_id=body.user_id,
            system_prompt=body.system_prompt or body.system_instructions,
            voice=voice,
            engine=body.engine,
            brain=body.brain,
            metadata=body.metadata,
            flow=flow,
            max_seconds=body.max_duration_seconds,
        )
        path, realtime = f"/ws/audio/{record.id}", f"/realtime/{record.id}"
        response.headers["Location"] = f"/conversations/{record.id}"
        return ConversationCreated(
            id=record.id,
            session_id=record.id,
            status=record.status.value,
            websocket_url=ws_base(request, app.settings) + path,
            websocket_path=path,
            realtime_url=ws_base(request, app.settings) + realtime,
            realtime_path=realtime,
            engine=record.engine,
            brain=record.brain,
            voice=record.voice,
            url=f"{http_base(request, app.settings)}/conversations/{record.id}",
            flow=flow.name if flow is not None else None,
            phase=flow.initial if flow is not None else None,
            warnings=warnings,
        )

    @router.get("/conversations", response_model=ConversationList)
    async def list_conversations(
        request: Request,
        who: Caller,
        status: Literal["pending", "live", "ended"] | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> ConversationList:
        """The principal's conversations (its whole tenant's for an ``admin``), newest first."""
        await sec.authorize(request, who, Action.LIST)
        scope = list_scope(who)
        found = await app.persistence.list(
            tenant=scope.tenant, user_id=scope.user_id, status=status, limit=limit
        )
        await sec.record(who, "conversation.list", "ok", request, detail={"n": len(found)})
        return ConversationList(
            conversations=[
                ConversationSummary(
                    id=r.session_id,
                    kind=r.platform or None,
                    status=r.status,
                    user_id=r.user_id,
                    created_at=r.created_at,
                    ended_at=r.ended_at,
                    end_reason=r.end_reason,
                )
                for r in found
            ]
        )

    @router.get("/conversations/{conversation_id}", response_model=ConversationInfo)
    async def get_conversation(
        conversation_id: str, request: Request, who: Caller
    ) -> ConversationInfo:
        await owned(request, who, conversation_id, Action.READ)
        return await info(conversation_id)

    @router.get("/conversations/{conversation_id}/transcript", response_model=TranscriptInfo)
    async def get_transcript(conversation_id: str, request: Request, who: Caller) -> TranscriptInfo:
        await owned(request, who, conversation_id, Action.READ)
        found = await info(conversation_id)
        text = "\n".join(f"{t.role}: {t.text}" for t in found.turns if t.text)
        return TranscriptInfo(id=conversation_id, turns=found.turns, text=text)

    @router.post(
        "/conversations/{conversation_id}/context",
        status_code=202,
        response_model=ContextAccepted,
    )
    async def inject_context(
        conversation_id: str, body: ContextInject, request: Request, who: Caller
    ) -> ContextAccepted:
        status = await owned(request, who, conversation_id, Action.INJECT)
        result = await command(
            "inject_context", conversation_id, {"key": body.key, "data": body.data}
        )
        if result is None:
            raise _not_live(conversation_id, status)
        return ContextAccepted(id=conversation_id, **result)

    @router.post("/conversations/{conversation_id}/events", response_model=EventFired)
    async def fire_event(
        conversation_id: str, body: EventFire, request: Request, who: Caller
    ) -> EventFired:
        status = await owned(request, who, conversation_id, Action.INJECT)
        if body.event not in app.context_events():
            raise _unprocessable("event", f"no EVENT context trigger listens for {body.event!r}")
        result = await command(
            "fire_event", conversation_id, {"event": body.event, "data": body.data}
        )
        if result is None:
            raise _not_live(conversation_id, status)
        return EventFired(id=conversation_id, event=body.event, fired=int(result["fired"]))

    @router.delete("/conversations/{conversation_id}", response_model=Ended)
    async def end_conversation(conversation_id: str, request: Request, who: Caller) -> Ended:
        await owned(request, who, conversation_id, Action.END)
        record = app.calls.get(conversation_id)
        if record is not None:
            await app.end_call(conversation_id)
        elif await command("end_call", conversation_id, {}) is None:
            # Pending on another node, or already over: the store says it is ended.
            await app.persistence.end_pending(conversation_id)
        return Ended(id=conversation_id, status="ended")

    return router


def _voice_or_default(app: Switchboard, brain: str, voice: str) -> tuple[str | None, list[str]]:
    """Seed 002's ``voice`` ("alloy") asks for a voice: one the cascade (what
    ``/realtime/{id}`` speaks with) lacks gives the server's voice and a warning, as
    the Realtime protocol's ``session.update`` does, rather than a refused body."""
    try:
        app.factory.check(EngineKind.LOCAL, brain, voice)
    except ConfigError as exc:
        if exc.field != "voice":
            raise
        default = app.setup.config.voice
        return None, [f"{exc}: this conversation speaks with {default!r}"]
    return voice, []


def _forbidden(reason: str) -> Deny:
    return Deny(403, reason)

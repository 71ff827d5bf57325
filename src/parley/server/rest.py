"""REST: create, inspect, read the transcript of, and end conversations."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from parley.analytics.hub import CallView
from parley.conversation.transcript import Turn
from parley.engines.spec import EngineKind
from parley.errors import ConfigError
from parley.events import ErrorEvent
from parley.metrics.conversation_metrics import LATENCY_FIELDS
from parley.server.calls import CallRecord
from parley.server.switchboard import Switchboard
from parley.server.urls import http_base, ws_base

__all__ = [
    "ContextAccepted",
    "ContextInject",
    "ConversationCreate",
    "ConversationCreated",
    "ConversationInfo",
    "Ended",
    "ErrorInfo",
    "EventFire",
    "EventFired",
    "LatencyInfo",
    "TranscriptInfo",
    "TurnInfo",
    "rest_router",
]


class ConversationCreate(BaseModel):
    """A new conversation; fields left out take the server's configuration."""

    model_config = ConfigDict(extra="forbid")

    system_prompt: str | None = Field(default=None, max_length=20_000)
    voice: str | None = Field(default=None, min_length=1, max_length=100)
    engine: EngineKind | None = None
    brain: str | None = Field(
        default=None, description="echo | template | openai:MODEL | anthropic:MODEL"
    )
    user_id: str | None = Field(default=None, max_length=200)
    metadata: dict[str, str] = Field(default_factory=dict)


class ConversationCreated(BaseModel):
    id: str
    status: str
    websocket_url: str
    websocket_path: str
    engine: EngineKind
    brain: str
    voice: str
    url: str


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
    metrics: dict[str, LatencyInfo] = Field(description="latency per figure over the turns")
    turn_metrics: list[dict[str, Any]]
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

    key: str = Field(min_length=1, max_length=200)
    data: dict[str, Any] | list[Any] | str


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

    event: str = Field(min_length=1, max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)


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


def _info(record: CallRecord, view: CallView | None) -> ConversationInfo:
    journal = record.journal
    conv = record.conversation
    turns = [_turn(t) for t in journal.transcript] if journal is not None else []
    errors = [_error(e) for e in journal.errors] if journal is not None else []
    metrics: dict[str, LatencyInfo] = {}
    per_turn: list[dict[str, Any]] = []
    if view is not None:
        metrics = {
            k: LatencyInfo(
                count=v.count, p50_ms=v.p50_ms, p90_ms=v.p90_ms, p99_ms=v.p99_ms, mean_ms=v.mean_ms
            )
            for k, v in view.latency.items()
        }
        per_turn = [
            {
                "turn_index": t.index,
                "status": t.status,
                "engine": t.engine,
                "interrupted": t.interrupted,
                **{f: getattr(t, f) for f in LATENCY_FIELDS},
            }
            for t in view.turns
        ]
    m = view.metrics if view is not None else None
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
        metrics=metrics,
        turn_metrics=per_turn,
        estimated_cost=m.estimated_cost if m is not None else None,
        cost=m.cost.as_dict() if m is not None and m.cost is not None else None,
        engagement_score=m.engagement_score if m is not None else None,
        analytics=view.analytics.as_dict() if view and view.analytics is not None else None,
        analytics_error=view.analytics_error if view is not None else None,
        error=errors[-1] if errors else None,
        errors=errors,
    )


def _not_found(conversation_id: str) -> HTTPException:
    return HTTPException(404, detail=f"no conversation {conversation_id!r}")


def rest_router(app: Switchboard) -> APIRouter:
    router = APIRouter(tags=["conversations"])

    @router.post("/conversations", status_code=201, response_model=ConversationCreated)
    async def create_conversation(
        body: ConversationCreate, request: Request, response: Response
    ) -> ConversationCreated:
        refusal = app.refusal()
        if refusal is not None:
            raise HTTPException(503, detail=refusal, headers={"Retry-After": "5"})
        try:
            record = app.new_record(
                user_id=body.user_id,
                system_prompt=body.system_prompt,
                voice=body.voice,
                engine=body.engine,
                brain=body.brain,
                metadata=body.metadata,
            )
        except ConfigError as exc:
            raise HTTPException(
                422, detail=[{"loc": ["body", exc.field], "msg": str(exc), "type": "value_error"}]
            ) from None
        path = f"/ws/audio/{record.id}"
        response.headers["Location"] = f"/conversations/{record.id}"
        return ConversationCreated(
            id=record.id,
            status=record.status.value,
            websocket_url=ws_base(request, app.settings) + path,
            websocket_path=path,
            engine=record.engine,
            brain=record.brain,
            voice=record.voice,
            url=f"{http_base(request, app.settings)}/conversations/{record.id}",
        )

    @router.get("/conversations/{conversation_id}", response_model=ConversationInfo)
    async def get_conversation(conversation_id: str) -> ConversationInfo:
        record = app.calls.get(conversation_id)
        if record is None:
            raise _not_found(conversation_id)
        return _info(record, app.analytics.view(record.id))

    @router.get("/conversations/{conversation_id}/transcript", response_model=TranscriptInfo)
    async def get_transcript(conversation_id: str) -> TranscriptInfo:
        record = app.calls.get(conversation_id)
        if record is None:
            raise _not_found(conversation_id)
        journal = record.journal
        turns = [_turn(t) for t in journal.transcript] if journal is not None else []
        text = journal.transcript.as_text() if journal is not None else ""
        return TranscriptInfo(id=record.id, turns=turns, text=text)

    @router.post(
        "/conversations/{conversation_id}/context",
        status_code=202,
        response_model=ContextAccepted,
    )
    async def inject_context(conversation_id: str, body: ContextInject) -> ContextAccepted:
        result = await app.inject_context(conversation_id, body.key, body.data, source="rest")
        if result is None:
            record = app.calls.get(conversation_id)
            if record is None:
                raise _not_found(conversation_id)
            raise _not_live(conversation_id, record.status.value)
        return ContextAccepted(
            id=conversation_id,
            key=result.key,
            tokens=result.tokens,
            truncated=result.truncated,
            deferred=result.deferred,
            evicted=list(result.evicted),
            latency_ms=result.latency_ms,
        )

    @router.post("/conversations/{conversation_id}/events", response_model=EventFired)
    async def fire_event(conversation_id: str, body: EventFire) -> EventFired:
        record = app.calls.get(conversation_id)
        if record is None:
            raise _not_found(conversation_id)
        if body.event not in app.context_events():
            raise HTTPException(
                422,
                detail=[
                    {
                        "loc": ["body", "event"],
                        "msg": f"no EVENT context trigger listens for {body.event!r}",
                        "type": "value_error",
                    }
                ],
            )
        fired = await app.fire(conversation_id, body.event, body.data)
        if fired is None:
            raise _not_live(conversation_id, record.status.value)
        return EventFired(id=conversation_id, event=body.event, fired=fired)

    @router.delete("/conversations/{conversation_id}", response_model=Ended)
    async def end_conversation(conversation_id: str) -> Ended:
        if not await app.end_call(conversation_id):
            raise _not_found(conversation_id)
        record = app.calls.get(conversation_id)
        return Ended(id=conversation_id, status=record.status.value if record else "ended")

    return router

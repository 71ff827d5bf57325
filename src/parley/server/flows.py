"""REST for guided flows: ``GET /conversations/{id}/progress``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from parley.flows.controller import FlowController

__all__ = ["ProgressInfo", "flows_router"]


class ProgressInfo(BaseModel):
    id: str
    flow: str
    goal: str
    phase: str
    phases_visited: list[str]
    completed_criteria: dict[str, list[str]]
    pending_criteria: list[str]
    observations: dict[str, Any]
    missing_observations: list[str]
    percent: float
    complete: bool
    turns_in_phase: int
    turn_budget: int | None
    seconds_in_phase: float = 0.0
    time_budget_s: float | None = None


def flows_router(
    lookup: Callable[[str], FlowController | None],
    exists: Callable[[str], bool] | None = None,
    *,
    guard: Callable[[Request, str], Awaitable[None]] | None = None,
) -> APIRouter:
    """``lookup(id)`` gives a call's controller (``FlowRegistry.get``); ``exists(id)``,
    if given, tells a conversation without a flow (404 saying so) from an unknown one;
    ``guard(request, id)``, if given, refuses a caller who may not read it."""
    router = APIRouter(tags=["flows"])

    @router.get("/conversations/{conversation_id}/progress", response_model=ProgressInfo)
    async def get_progress(conversation_id: str, request: Request) -> ProgressInfo:
        if guard is not None:
            await guard(request, conversation_id)
        controller = lookup(conversation_id)
        if controller is None:
            if exists is not None and exists(conversation_id):
                detail = f"conversation {conversation_id!r} has no guided flow"
            else:
                detail = f"no conversation {conversation_id!r}"
            raise HTTPException(404, detail=detail)
        return ProgressInfo(id=conversation_id, **controller.progress().as_dict())

    return router

"""The document's compatibility layer: the legacy ``/ws/conversation`` endpoint and
``/ws/conversation/v2`` on one process-wide engine.

``router`` is a FastAPI ``APIRouter`` with both routes (``app.include_router(router)``);
``get_conversation_engine()`` is that engine — made on first use from the
``CONV_*`` environment variables (:class:`EnvConfigurationProvider`) and warmed up,
or the one given to :func:`set_conversation_engine`; ``websocket_conversation_v2``
serves one socket on it. The wire is the one of
:mod:`~parley.realtime_conversation.adapters.websocket.fastapi` (docs/seeds.md §003).
"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from parley.realtime_conversation.adapters.config.env import EnvConfigurationProvider
from parley.realtime_conversation.adapters.websocket.fastapi import FastAPIWebSocketAdapter
from parley.realtime_conversation.core.engine import ConversationEngine

__all__ = [
    "get_conversation_engine",
    "router",
    "set_conversation_engine",
    "websocket_conversation_v2",
]

_engine: ConversationEngine | None = None


def set_conversation_engine(engine: ConversationEngine | None) -> None:
    """Serve the compatibility routes with ``engine`` (None: make one from ``CONV_*``)."""
    global _engine
    _engine = engine


async def get_conversation_engine() -> ConversationEngine:
    """The engine of the compatibility routes (see the module docstring)."""
    global _engine
    engine = _engine
    if engine is None:
        # Made without awaiting, so concurrent first calls share one engine; warming it
        # twice costs nothing (each model loads once per process).
        engine = _engine = ConversationEngine(EnvConfigurationProvider(prefix="CONV_"))
    await engine.warmup()
    return engine


async def websocket_conversation_v2(websocket: WebSocket) -> None:
    """One conversation on ``websocket`` with the compatibility engine."""
    engine = await get_conversation_engine()
    await engine.handle_conversation(FastAPIWebSocketAdapter(websocket))


router = APIRouter()
router.add_api_websocket_route("/ws/conversation", websocket_conversation_v2)
router.add_api_websocket_route("/ws/conversation/v2", websocket_conversation_v2)

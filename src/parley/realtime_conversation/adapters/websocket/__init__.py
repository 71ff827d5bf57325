"""WebSocket framework adapters (the document's ``adapters.websocket``)."""

from __future__ import annotations

from parley.realtime_conversation.adapters.websocket.base import AdapterStream, WebSocketAdapter
from parley.realtime_conversation.adapters.websocket.fastapi import FastAPIWebSocketAdapter

__all__ = ["AdapterStream", "FastAPIWebSocketAdapter", "WebSocketAdapter"]

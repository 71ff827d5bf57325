"""The base WebSocket adapter (the document's ``adapters/websocket/base.py``): the
:class:`WebSocketAdapter` a user subclasses and :class:`AdapterStream`, the call
stream it becomes (:mod:`parley.realtime_conversation.core.adapter_stream`)."""

from __future__ import annotations

from parley.realtime_conversation.core.adapter_stream import AdapterStream, AudioPeer
from parley.realtime_conversation.core.interfaces import WebSocketAdapter

__all__ = ["AdapterStream", "AudioPeer", "WebSocketAdapter"]

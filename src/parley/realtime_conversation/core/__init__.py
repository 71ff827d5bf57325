"""Core engine and interfaces of the document's library (``realtime_conversation.core``):
:mod:`.interfaces` (the protocols), :mod:`.engine` (``ConversationEngine``),
:mod:`.pipeline` (the middleware pipeline), :mod:`.data` (``AudioData`` …).

Import from those modules; this package imports nothing, so that each of them can
be imported on its own.
"""

from __future__ import annotations

__all__: list[str] = []

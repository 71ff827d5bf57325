"""The realtime engine's response hook: the upstream's text → the text that is shown.

The upstream model writes transcripts and text outputs; a response hook
(middleware, :mod:`parley.engines.text_hooks`) may rewrite or refuse them sentence
by sentence. :class:`ShownText` sits between the socket and the engine's protocol
state (:class:`~parley.protocols.openai_realtime.ClientConversation`): it takes the
server's text events and returns them with the hook's text in their place — deltas
held until a sentence is whole, the final transcript as shown — so the state
machine itself never knows a hook exists. The hook **cannot change the audio**,
which the upstream has already synthesised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec

from parley.engines.text_hooks import HeldSplitter, TextHook
from parley.errors import ParleyError
from parley.events import ErrorEvent
from parley.protocols.openai_realtime import (
    ConversationItem,
    ResponseDone,
    ResponseOutputAudioTranscriptDelta,
    ResponseOutputAudioTranscriptDone,
    ResponseOutputTextDelta,
    ServerEvent,
    UnknownServerEvent,
)
from parley.protocols.openai_realtime.client_conversation import Reply

__all__ = ["ShownText"]

_Event = ServerEvent | UnknownServerEvent


@dataclass(slots=True)
class _Text:
    raw: str = ""  # what the upstream said so far
    shown: str = ""  # what the hook let through
    splitter: HeldSplitter | None = None


class ShownText:
    """Applies ``hook`` to one engine's reply text (see the module docstring). A
    ``ParleyError`` from the hook hides that piece (fail closed) and is reported
    through ``report``."""

    def __init__(self, hook: TextHook, report: Callable[[ErrorEvent], Awaitable[None]]) -> None:
        self._hook = hook
        self._report = report
        self._texts: dict[str, _Text] = {}

    async def filter(self, ev: _Event, replies: Callable[[str], Reply | None]) -> list[_Event]:
        """``ev`` as the state machine should see it: possibly rewritten, preceded by
        text the hook released, or (a whole sentence not yet there) with no text.
        ``replies`` finds the state machine's record of a reply by its id; the text of
        a reply that was cut is left alone (the state machine drops it)."""
        if isinstance(ev, ResponseDone):
            rid = ev.response.id if isinstance(ev.response.id, str) else ""
            reply = replies(rid)
            if reply is None or reply.interrupted:
                self._texts.pop(rid, None)
                return [ev]
            return await self._done(ev, rid, reply)
        if isinstance(ev, ResponseOutputAudioTranscriptDelta | ResponseOutputTextDelta):
            if not self._live(replies(ev.response_id)):
                return [ev]
            return [msgspec.structs.replace(ev, delta=await self._show(ev.response_id, ev.delta))]
        if isinstance(ev, ResponseOutputAudioTranscriptDone):
            if not self._live(replies(ev.response_id)):
                return [ev]
            return await self._transcript_done(ev)
        return [ev]

    @staticmethod
    def _live(reply: Reply | None) -> bool:
        return reply is not None and not reply.interrupted

    async def _transcript_done(self, ev: ResponseOutputAudioTranscriptDone) -> list[_Event]:
        text = self._text(ev.response_id)
        rest = ev.transcript[len(text.raw) :]
        if not ev.transcript.startswith(text.raw):  # deltas lost: start over
            text = self._texts[ev.response_id] = _Text()
            rest = ev.transcript
        added = await self._show(ev.response_id, rest, final=True)
        out: list[_Event] = []
        if added:
            out.append(
                ResponseOutputAudioTranscriptDelta(
                    event_id=ev.event_id,
                    response_id=ev.response_id,
                    item_id=ev.item_id,
                    output_index=ev.output_index,
                    content_index=ev.content_index,
                    delta=added,
                )
            )
        out.append(msgspec.structs.replace(ev, transcript=text.shown))
        return out

    async def _done(self, ev: ResponseDone, rid: str, reply: Reply) -> list[_Event]:
        out: list[_Event] = []
        text = self._texts.get(rid)
        if text is not None and text.splitter is not None:
            # Text output: no "done" event released the tail; release it now.
            added = await self._show(rid, "", final=True)
            if added:
                out.append(
                    ResponseOutputTextDelta(
                        response_id=rid,
                        item_id=reply.item_id,
                        output_index=0,
                        content_index=0,
                        delta=added,
                    )
                )
        output = ev.response.output
        if not out and not reply.transcript.strip() and isinstance(output, list):
            # An upstream that sent the text only in the response object.
            said = " ".join(i.text for i in output if i.type == "message").strip()
            if said:
                shown = (await self._show(rid, said, final=True)).strip()
                response = msgspec.structs.replace(
                    ev.response, output=[ConversationItem.assistant_text(shown)]
                )
                ev = msgspec.structs.replace(ev, response=response)
        self._texts.pop(rid, None)
        out.append(ev)
        return out

    def _text(self, response_id: str) -> _Text:
        text = self._texts.get(response_id)
        if text is None:
            text = self._texts[response_id] = _Text()
        return text

    async def _show(self, response_id: str, delta: str, *, final: bool = False) -> str:
        """Upstream text → the text to add to what is shown (possibly empty)."""
        text = self._text(response_id)
        if text.splitter is None:
            text.splitter = HeldSplitter()
        text.raw += delta
        pieces = text.splitter.push(delta)
        if final:
            pieces += text.splitter.flush()
            text.splitter = None
        added = ""
        for piece in pieces:
            try:
                out = " ".join((await self._hook(piece)).split())
            except ParleyError as exc:
                await self._report(ErrorEvent(exc.code, str(exc)))
                continue
            if out:
                sep = " " if text.shown or added else ""
                added += sep + out
        text.shown += added
        return added

"""Client → server events (the 11 GA types, plus the beta ``transcription_session.update``).

The client encodes these (:func:`~parley.protocols.openai_realtime.encode_event`);
the local Realtime server decodes them
(:func:`~parley.protocols.openai_realtime.parse_client_event`). ``event_id`` is
optional and omitted when unset; the server echoes it in ``error.event_id``.

Hot path: :class:`InputAudioBufferAppend` keeps ``audio`` as the base64 *string*
so µ-law from a phone line is forwarded without a decode/encode round trip.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import msgspec
from msgspec import UNSET, UnsetType

from parley.errors import LocalProtocolError

from .items import ConversationItem, ResponseParams, decode_audio, encode_audio
from .session import Session

__all__ = [
    "MAX_AUDIO_APPEND_BYTES",
    "ClientEvent",
    "ConversationItemCreate",
    "ConversationItemDelete",
    "ConversationItemRetrieve",
    "ConversationItemTruncate",
    "InputAudioBufferAppend",
    "InputAudioBufferClear",
    "InputAudioBufferCommit",
    "OutputAudioBufferClear",
    "ResponseCancel",
    "ResponseCreate",
    "SessionUpdate",
    "TranscriptionSessionUpdate",
    "UnknownClientEvent",
]

#: OpenAI's limit for the base64 ``audio`` of one ``input_audio_buffer.append`` (15 MiB).
MAX_AUDIO_APPEND_BYTES = 15 * 1024 * 1024


class _ClientEvent(msgspec.Struct, tag_field="type", frozen=True, kw_only=True):
    event_id: str | UnsetType = UNSET


class SessionUpdate(_ClientEvent, tag="session.update", frozen=True, kw_only=True):
    session: Session


class InputAudioBufferAppend(
    _ClientEvent, tag="input_audio_buffer.append", gc=False, frozen=True, kw_only=True
):
    audio: str  # base64 in the session's input format, forwarded untouched

    @classmethod
    def from_audio(
        cls, audio: bytes, *, event_id: str | UnsetType = UNSET
    ) -> InputAudioBufferAppend:
        encoded = encode_audio(audio)
        if len(encoded) > MAX_AUDIO_APPEND_BYTES:
            raise LocalProtocolError(
                f"input_audio_buffer.append: {len(encoded)} base64 bytes exceed the "
                f"{MAX_AUDIO_APPEND_BYTES}-byte limit; split the audio",
                code="frame_too_large",
            )
        return cls(audio=encoded, event_id=event_id)

    def audio_bytes(self) -> bytes:
        """The decoded audio; RemoteProtocolError(``invalid_audio``) for bad base64."""
        return decode_audio(self.audio, field="input_audio_buffer.append.audio")


class InputAudioBufferCommit(
    _ClientEvent, tag="input_audio_buffer.commit", frozen=True, kw_only=True
):
    pass


class InputAudioBufferClear(
    _ClientEvent, tag="input_audio_buffer.clear", frozen=True, kw_only=True
):
    pass


class ConversationItemCreate(
    _ClientEvent, tag="conversation.item.create", frozen=True, kw_only=True
):
    item: ConversationItem
    # "root" inserts at the start; unset appends at the end.
    previous_item_id: str | UnsetType | None = UNSET


class ConversationItemRetrieve(
    _ClientEvent, tag="conversation.item.retrieve", frozen=True, kw_only=True
):
    item_id: str


class ConversationItemTruncate(
    _ClientEvent, tag="conversation.item.truncate", frozen=True, kw_only=True
):
    item_id: str
    content_index: int = 0
    audio_end_ms: int  # inclusive: the milliseconds the caller actually heard


class ConversationItemDelete(
    _ClientEvent, tag="conversation.item.delete", frozen=True, kw_only=True
):
    item_id: str


class ResponseCreate(_ClientEvent, tag="response.create", frozen=True, kw_only=True):
    response: ResponseParams | UnsetType | None = UNSET


class ResponseCancel(_ClientEvent, tag="response.cancel", frozen=True, kw_only=True):
    response_id: str | UnsetType = UNSET


class OutputAudioBufferClear(
    _ClientEvent, tag="output_audio_buffer.clear", frozen=True, kw_only=True
):
    """WebRTC/SIP only; send ``response.cancel`` first."""


class TranscriptionSessionUpdate(
    _ClientEvent, tag="transcription_session.update", frozen=True, kw_only=True
):
    """Beta only; the session is carried as sent (beta flat transcription shape)."""

    session: dict[str, Any]


ClientEvent: TypeAlias = (
    SessionUpdate
    | InputAudioBufferAppend
    | InputAudioBufferCommit
    | InputAudioBufferClear
    | ConversationItemCreate
    | ConversationItemRetrieve
    | ConversationItemTruncate
    | ConversationItemDelete
    | ResponseCreate
    | ResponseCancel
    | OutputAudioBufferClear
    | TranscriptionSessionUpdate
)


class UnknownClientEvent(msgspec.Struct, frozen=True):
    """A client event of a type this module does not know; ``raw`` is the whole object."""

    type: str
    raw: dict[str, Any]

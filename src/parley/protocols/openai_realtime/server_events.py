"""Server → client events: the 46 GA types (protocols.md §1.4), plus the beta
``transcription_session.updated``.

The client decodes these (:func:`~parley.protocols.openai_realtime.parse_server_event`);
the local Realtime server builds and encodes them. Field names and
requiredness follow the GA SDK types, except that ``event_id`` defaults to
``""`` (the SDK's DTMF event has none; a server sets it).

Hot path: :class:`ResponseOutputAudioDelta` keeps ``delta`` as the base64
*string*, so µ-law pass-through forwards it to Twilio untouched.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeAlias

import msgspec
from msgspec import UNSET, UnsetType

from parley.errors import ProtocolError
from parley.events import Usage

from .items import (
    Conversation,
    ConversationItem,
    RealtimeResponse,
    decode_audio,
    encode_audio,
)
from .session import Session
from .usage import TranscriptionUsage

__all__ = [
    "ContentPartEvent",
    "ConversationCreated",
    "ConversationItemAdded",
    "ConversationItemCreated",
    "ConversationItemDeleted",
    "ConversationItemDone",
    "ConversationItemEvent",
    "ConversationItemRetrieved",
    "ConversationItemTruncated",
    "ErrorCode",
    "ErrorDetail",
    "InputAudioBufferCleared",
    "InputAudioBufferCommitted",
    "InputAudioBufferDtmfEventReceived",
    "InputAudioBufferSpeechStarted",
    "InputAudioBufferSpeechStopped",
    "InputAudioBufferTimeoutTriggered",
    "InputAudioTranscriptionCompleted",
    "InputAudioTranscriptionDelta",
    "InputAudioTranscriptionFailed",
    "InputAudioTranscriptionSegment",
    "LogProb",
    "McpListToolsCompleted",
    "McpListToolsFailed",
    "McpListToolsInProgress",
    "OutputAudioBufferCleared",
    "OutputAudioBufferStarted",
    "OutputAudioBufferStopped",
    "Part",
    "RateLimit",
    "RateLimitsUpdated",
    "RealtimeErrorEvent",
    "ResponseContentPartAdded",
    "ResponseContentPartDone",
    "ResponseCreated",
    "ResponseDone",
    "ResponseFunctionCallArgumentsDelta",
    "ResponseFunctionCallArgumentsDone",
    "ResponseMcpCallArgumentsDelta",
    "ResponseMcpCallArgumentsDone",
    "ResponseMcpCallCompleted",
    "ResponseMcpCallFailed",
    "ResponseMcpCallInProgress",
    "ResponseOutputAudioDelta",
    "ResponseOutputAudioDone",
    "ResponseOutputAudioTranscriptDelta",
    "ResponseOutputAudioTranscriptDone",
    "ResponseOutputItemAdded",
    "ResponseOutputItemDone",
    "ResponseOutputTextDelta",
    "ResponseOutputTextDone",
    "ServerEvent",
    "SessionCreated",
    "SessionUpdated",
    "TranscriptionSessionUpdated",
    "UnknownServerEvent",
]


class ErrorCode(StrEnum):
    """``error.code`` values worth handling explicitly (protocols.md §1.11).

    The first group is what OpenAI sends; the last two are Parley's own codes
    (``RemoteProtocolError.code`` of this module) that the local server also uses.
    ``error.code`` stays a plain ``str`` on the wire: compare with ``==``.
    """

    CONVERSATION_ALREADY_HAS_ACTIVE_RESPONSE = "conversation_already_has_active_response"
    RESPONSE_CANCEL_NOT_ACTIVE = "response_cancel_not_active"
    SESSION_EXPIRED = "session_expired"
    INVALID_EVENT = "invalid_event"
    INPUT_AUDIO_BUFFER_COMMIT_EMPTY = "input_audio_buffer_commit_empty"
    INVALID_API_KEY = "invalid_api_key"
    INSUFFICIENT_QUOTA = "insufficient_quota"
    RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
    SERVER_ERROR = "server_error"
    # Parley's: a frame that is not JSON, and one over the size limit.
    INVALID_JSON = "invalid_json"
    FRAME_TOO_LARGE = "frame_too_large"


class _ServerEvent(msgspec.Struct, tag_field="type", frozen=True, kw_only=True):
    event_id: str = ""


# --- errors and session -------------------------------------------------------------


class ErrorDetail(msgspec.Struct, frozen=True, kw_only=True):
    type: str = ""  # mostly "invalid_request_error"
    code: str | None = None
    message: str = ""
    param: str | None = None
    event_id: str | None = None  # the client event that failed, when it had one


class RealtimeErrorEvent(_ServerEvent, tag="error", frozen=True, kw_only=True):
    """An ``error`` event: a normal event, mostly non-fatal (the session continues)."""

    error: ErrorDetail

    @property
    def code(self) -> str | None:
        return self.error.code

    @classmethod
    def from_protocol_error(
        cls, exc: ProtocolError, *, event_id: str = "", client_event_id: str | None = None
    ) -> RealtimeErrorEvent:
        """What the local server sends back for a client frame it rejected."""
        detail = ErrorDetail(
            type="invalid_request_error",
            code=exc.code,
            message=exc.message,
            event_id=client_event_id,
        )
        return cls(event_id=event_id, error=detail)


class SessionCreated(_ServerEvent, tag="session.created", frozen=True, kw_only=True):
    session: Session


class SessionUpdated(_ServerEvent, tag="session.updated", frozen=True, kw_only=True):
    session: Session


class TranscriptionSessionUpdated(
    _ServerEvent, tag="transcription_session.updated", frozen=True, kw_only=True
):
    """Beta only; the session is carried as sent."""

    session: dict[str, Any]


# --- conversation and items ---------------------------------------------------------


class ConversationCreated(_ServerEvent, tag="conversation.created", frozen=True, kw_only=True):
    conversation: Conversation


class ConversationItemEvent(_ServerEvent, frozen=True, kw_only=True):
    """Base of ``conversation.item.created`` (beta, still in GA) / ``.added`` / ``.done``:
    ``isinstance(ev, ConversationItemEvent)`` treats the three alike."""

    item: ConversationItem
    previous_item_id: str | None = None


class ConversationItemCreated(
    ConversationItemEvent, tag="conversation.item.created", frozen=True, kw_only=True
):
    pass


class ConversationItemAdded(
    ConversationItemEvent, tag="conversation.item.added", frozen=True, kw_only=True
):
    pass


class ConversationItemDone(
    ConversationItemEvent, tag="conversation.item.done", frozen=True, kw_only=True
):
    pass


class ConversationItemRetrieved(
    _ServerEvent, tag="conversation.item.retrieved", frozen=True, kw_only=True
):
    item: ConversationItem


class ConversationItemTruncated(
    _ServerEvent, tag="conversation.item.truncated", frozen=True, kw_only=True
):
    item_id: str
    content_index: int
    audio_end_ms: int


class ConversationItemDeleted(
    _ServerEvent, tag="conversation.item.deleted", frozen=True, kw_only=True
):
    item_id: str


class LogProb(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    bytes: list[int]
    logprob: float


class InputAudioTranscriptionDelta(
    _ServerEvent, tag="conversation.item.input_audio_transcription.delta", frozen=True, kw_only=True
):
    item_id: str
    content_index: int | None = None
    delta: str | None = None
    logprobs: list[LogProb] | UnsetType | None = UNSET


class InputAudioTranscriptionCompleted(
    _ServerEvent,
    tag="conversation.item.input_audio_transcription.completed",
    frozen=True,
    kw_only=True,
):
    item_id: str
    content_index: int
    transcript: str
    usage: TranscriptionUsage | None = None
    logprobs: list[LogProb] | UnsetType | None = UNSET
    languages: list[Any] | UnsetType | None = UNSET


class InputAudioTranscriptionFailed(
    _ServerEvent,
    tag="conversation.item.input_audio_transcription.failed",
    frozen=True,
    kw_only=True,
):
    item_id: str
    content_index: int
    error: ErrorDetail


class InputAudioTranscriptionSegment(
    _ServerEvent,
    tag="conversation.item.input_audio_transcription.segment",
    frozen=True,
    kw_only=True,
):
    id: str
    item_id: str
    content_index: int
    start: float
    end: float
    speaker: str
    text: str


# --- input audio buffer -------------------------------------------------------------


class InputAudioBufferSpeechStarted(
    _ServerEvent, tag="input_audio_buffer.speech_started", frozen=True, kw_only=True
):
    audio_start_ms: int  # since session audio start, includes prefix_padding_ms
    item_id: str


class InputAudioBufferSpeechStopped(
    _ServerEvent, tag="input_audio_buffer.speech_stopped", frozen=True, kw_only=True
):
    audio_end_ms: int
    item_id: str


class InputAudioBufferCommitted(
    _ServerEvent, tag="input_audio_buffer.committed", frozen=True, kw_only=True
):
    item_id: str
    previous_item_id: str | None = None


class InputAudioBufferCleared(
    _ServerEvent, tag="input_audio_buffer.cleared", frozen=True, kw_only=True
):
    pass


class InputAudioBufferTimeoutTriggered(
    _ServerEvent, tag="input_audio_buffer.timeout_triggered", frozen=True, kw_only=True
):
    audio_start_ms: int
    audio_end_ms: int
    item_id: str


class InputAudioBufferDtmfEventReceived(
    _ServerEvent, tag="input_audio_buffer.dtmf_event_received", frozen=True, kw_only=True
):
    event: str  # the digit
    received_at: int  # unix seconds


class OutputAudioBufferStarted(
    _ServerEvent, tag="output_audio_buffer.started", frozen=True, kw_only=True
):
    response_id: str


class OutputAudioBufferStopped(
    _ServerEvent, tag="output_audio_buffer.stopped", frozen=True, kw_only=True
):
    response_id: str


class OutputAudioBufferCleared(
    _ServerEvent, tag="output_audio_buffer.cleared", frozen=True, kw_only=True
):
    response_id: str


# --- responses ----------------------------------------------------------------------


class ResponseCreated(_ServerEvent, tag="response.created", frozen=True, kw_only=True):
    response: RealtimeResponse


class ResponseDone(_ServerEvent, tag="response.done", frozen=True, kw_only=True):
    response: RealtimeResponse

    def parley_usage(self) -> Usage | None:
        """The response's usage as ``parley.events.Usage`` (``None`` if absent)."""
        return self.response.parley_usage()


class ResponseOutputItemAdded(
    _ServerEvent, tag="response.output_item.added", frozen=True, kw_only=True
):
    response_id: str
    output_index: int
    item: ConversationItem


class ResponseOutputItemDone(
    _ServerEvent, tag="response.output_item.done", frozen=True, kw_only=True
):
    response_id: str
    output_index: int
    item: ConversationItem


class Part(msgspec.Struct, frozen=True, kw_only=True):
    """``part`` of ``response.content_part.*``: ``type`` is ``"text"`` or ``"audio"`` (GA
    and beta alike; ``output_text``/``output_audio`` are accepted too)."""

    type: str
    text: str | UnsetType = UNSET
    audio: str | UnsetType = UNSET
    transcript: str | UnsetType = UNSET


class ContentPartEvent(_ServerEvent, frozen=True, kw_only=True):
    """Base of the ``response.content_part.added``/``.done`` events."""

    response_id: str
    item_id: str
    output_index: int
    content_index: int
    part: Part


class ResponseContentPartAdded(
    ContentPartEvent, tag="response.content_part.added", frozen=True, kw_only=True
):
    pass


class ResponseContentPartDone(
    ContentPartEvent, tag="response.content_part.done", frozen=True, kw_only=True
):
    pass


class _ContentScoped(_ServerEvent, frozen=True, kw_only=True):
    response_id: str
    item_id: str
    output_index: int
    content_index: int


class ResponseOutputTextDelta(
    _ContentScoped, tag="response.output_text.delta", frozen=True, kw_only=True
):
    delta: str


class ResponseOutputTextDone(
    _ContentScoped, tag="response.output_text.done", frozen=True, kw_only=True
):
    text: str


class ResponseOutputAudioDelta(
    _ContentScoped, tag="response.output_audio.delta", gc=False, frozen=True, kw_only=True
):
    delta: str  # base64 in the session's output format, forwarded untouched

    def audio_bytes(self) -> bytes:
        """The decoded audio; RemoteProtocolError(``invalid_audio``) for bad base64."""
        return decode_audio(self.delta, field="response.output_audio.delta.delta")

    @classmethod
    def from_audio(
        cls,
        audio: bytes,
        *,
        response_id: str,
        item_id: str,
        output_index: int = 0,
        content_index: int = 0,
        event_id: str = "",
    ) -> ResponseOutputAudioDelta:
        return cls(
            delta=encode_audio(audio),
            response_id=response_id,
            item_id=item_id,
            output_index=output_index,
            content_index=content_index,
            event_id=event_id,
        )


class ResponseOutputAudioDone(
    _ContentScoped, tag="response.output_audio.done", frozen=True, kw_only=True
):
    pass


class ResponseOutputAudioTranscriptDelta(
    _ContentScoped, tag="response.output_audio_transcript.delta", frozen=True, kw_only=True
):
    delta: str


class ResponseOutputAudioTranscriptDone(
    _ContentScoped, tag="response.output_audio_transcript.done", frozen=True, kw_only=True
):
    transcript: str


class ResponseFunctionCallArgumentsDelta(
    _ServerEvent, tag="response.function_call_arguments.delta", frozen=True, kw_only=True
):
    response_id: str
    item_id: str
    output_index: int
    call_id: str
    delta: str


class ResponseFunctionCallArgumentsDone(
    _ServerEvent, tag="response.function_call_arguments.done", frozen=True, kw_only=True
):
    response_id: str
    item_id: str
    output_index: int
    call_id: str
    arguments: str  # JSON text, as the model produced it
    name: str = ""  # GA only; beta servers omit it (take it from output_item.added)


class RateLimit(msgspec.Struct, frozen=True, kw_only=True):
    name: str | None = None  # "requests" | "tokens"
    limit: int | None = None
    remaining: int | None = None
    reset_seconds: float | None = None


class RateLimitsUpdated(_ServerEvent, tag="rate_limits.updated", frozen=True, kw_only=True):
    rate_limits: list[RateLimit]


# --- MCP (carried so a client can log them; Parley runs no MCP servers) --------------


class McpListToolsInProgress(
    _ServerEvent, tag="mcp_list_tools.in_progress", frozen=True, kw_only=True
):
    item_id: str


class McpListToolsCompleted(
    _ServerEvent, tag="mcp_list_tools.completed", frozen=True, kw_only=True
):
    item_id: str


class McpListToolsFailed(_ServerEvent, tag="mcp_list_tools.failed", frozen=True, kw_only=True):
    item_id: str


class ResponseMcpCallArgumentsDelta(
    _ServerEvent, tag="response.mcp_call_arguments.delta", frozen=True, kw_only=True
):
    response_id: str
    item_id: str
    output_index: int
    delta: str
    obfuscation: str | UnsetType | None = UNSET


class ResponseMcpCallArgumentsDone(
    _ServerEvent, tag="response.mcp_call_arguments.done", frozen=True, kw_only=True
):
    response_id: str
    item_id: str
    output_index: int
    arguments: str


class ResponseMcpCallInProgress(
    _ServerEvent, tag="response.mcp_call.in_progress", frozen=True, kw_only=True
):
    item_id: str
    output_index: int


class ResponseMcpCallCompleted(
    _ServerEvent, tag="response.mcp_call.completed", frozen=True, kw_only=True
):
    item_id: str
    output_index: int


class ResponseMcpCallFailed(
    _ServerEvent, tag="response.mcp_call.failed", frozen=True, kw_only=True
):
    item_id: str
    output_index: int


# The hot event first: msgspec dispatches on the tag by lookup, but order documents intent.
ServerEvent: TypeAlias = (
    ResponseOutputAudioDelta
    | ResponseOutputAudioTranscriptDelta
    | ResponseOutputTextDelta
    | InputAudioBufferSpeechStarted
    | InputAudioBufferSpeechStopped
    | InputAudioBufferCommitted
    | InputAudioBufferCleared
    | InputAudioBufferTimeoutTriggered
    | InputAudioBufferDtmfEventReceived
    | RealtimeErrorEvent
    | SessionCreated
    | SessionUpdated
    | TranscriptionSessionUpdated
    | ConversationCreated
    | ConversationItemCreated
    | ConversationItemAdded
    | ConversationItemDone
    | ConversationItemRetrieved
    | ConversationItemTruncated
    | ConversationItemDeleted
    | InputAudioTranscriptionDelta
    | InputAudioTranscriptionCompleted
    | InputAudioTranscriptionFailed
    | InputAudioTranscriptionSegment
    | OutputAudioBufferStarted
    | OutputAudioBufferStopped
    | OutputAudioBufferCleared
    | ResponseCreated
    | ResponseDone
    | ResponseOutputItemAdded
    | ResponseOutputItemDone
    | ResponseContentPartAdded
    | ResponseContentPartDone
    | ResponseOutputTextDone
    | ResponseOutputAudioDone
    | ResponseOutputAudioTranscriptDone
    | ResponseFunctionCallArgumentsDelta
    | ResponseFunctionCallArgumentsDone
    | RateLimitsUpdated
    | McpListToolsInProgress
    | McpListToolsCompleted
    | McpListToolsFailed
    | ResponseMcpCallArgumentsDelta
    | ResponseMcpCallArgumentsDone
    | ResponseMcpCallInProgress
    | ResponseMcpCallCompleted
    | ResponseMcpCallFailed
)


class UnknownServerEvent(msgspec.Struct, frozen=True):
    """A server event of a type this module does not know; ``raw`` is the whole object.
    Tolerated (servers add event types); a client may log it and carry on."""

    type: str
    raw: dict[str, Any]

"""Conversation items, the response object and ``response.create`` parameters.

One flat :class:`ConversationItem` struct covers every item kind (message,
function_call, function_call_output, the MCP items, item_reference) instead of a
tagged union: a server that adds an item kind must not make a whole event
undecodable, and fields a kind does not use stay ``UNSET`` (absent on the wire;
the API rejects unknown parameters on client events).

Content-part types: GA assistant content is ``output_text``/``output_audio``;
beta (and some GA server examples) say ``text``/``audio``. Both are accepted;
:attr:`ContentPart.is_text` / :attr:`ContentPart.is_audio` treat them alike.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from parley.errors import RemoteProtocolError
from parley.events import Usage

from .session import RealtimeAudioFormat, Tool, format_from_name
from .usage import ResponseUsage

__all__ = [
    "ContentPart",
    "Conversation",
    "ConversationItem",
    "RealtimeResponse",
    "ResponseAudio",
    "ResponseAudioOutput",
    "ResponseParams",
    "StatusDetails",
    "decode_audio",
    "encode_audio",
    "response_dict_from_beta",
]

ItemStatus = Literal["completed", "incomplete", "in_progress"]

_TEXT_TYPES = frozenset({"input_text", "output_text", "text"})
_AUDIO_TYPES = frozenset({"input_audio", "output_audio", "audio"})


def decode_audio(b64: str, *, field: str = "audio") -> bytes:
    """Base64 → bytes, strictly; a malformed payload from a peer is a RemoteProtocolError."""
    try:
        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        msg = f"{field}: invalid base64 ({exc})"
        raise RemoteProtocolError(msg, code="invalid_audio") from None


def encode_audio(audio: bytes) -> str:
    return base64.b64encode(audio).decode("ascii")


class _Obj(msgspec.Struct, frozen=True, kw_only=True):
    pass


class ContentPart(_Obj, frozen=True, kw_only=True):
    """One content part of a message item (``input_text``, ``input_audio``, ``input_image``,
    ``output_text``, ``output_audio``; beta ``text``/``audio``; ``item_reference``)."""

    type: str
    text: str | UnsetType = UNSET
    audio: str | UnsetType = UNSET  # base64, in the session's audio format
    transcript: str | UnsetType | None = UNSET
    image_url: str | UnsetType = UNSET
    detail: str | UnsetType = UNSET
    id: str | UnsetType = UNSET  # beta item_reference content

    @property
    def is_text(self) -> bool:
        return self.type in _TEXT_TYPES

    @property
    def is_audio(self) -> bool:
        return self.type in _AUDIO_TYPES

    @property
    def spoken_or_written(self) -> str:
        """The text of a text part, the transcript of an audio part, else ``""``."""
        if isinstance(self.text, str):
            return self.text
        if isinstance(self.transcript, str):
            return self.transcript
        return ""


class ConversationItem(_Obj, frozen=True, kw_only=True):
    type: str
    id: str | UnsetType = UNSET
    object: str | UnsetType = UNSET
    status: ItemStatus | UnsetType = UNSET
    role: Literal["user", "assistant", "system"] | UnsetType = UNSET
    content: list[ContentPart] | UnsetType = UNSET
    # function_call / function_call_output
    call_id: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    arguments: str | UnsetType = UNSET
    output: str | UnsetType | None = UNSET
    # MCP items (carried, not interpreted)
    server_label: str | UnsetType = UNSET
    tools: list[dict[str, Any]] | UnsetType = UNSET
    approval_request_id: str | UnsetType | None = UNSET
    approve: bool | UnsetType = UNSET
    reason: str | UnsetType | None = UNSET
    error: dict[str, Any] | UnsetType | None = UNSET

    @property
    def text(self) -> str:
        """All text and transcripts of a message item, concatenated."""
        if not isinstance(self.content, list):
            return ""
        return "".join(part.spoken_or_written for part in self.content)

    @classmethod
    def user_text(cls, text: str, *, id: str | UnsetType = UNSET) -> ConversationItem:
        part = ContentPart(type="input_text", text=text)
        return cls(type="message", role="user", id=id, content=[part])

    @classmethod
    def user_audio(cls, audio: bytes, *, id: str | UnsetType = UNSET) -> ConversationItem:
        part = ContentPart(type="input_audio", audio=encode_audio(audio))
        return cls(type="message", role="user", id=id, content=[part])

    @classmethod
    def system_text(cls, text: str, *, id: str | UnsetType = UNSET) -> ConversationItem:
        part = ContentPart(type="input_text", text=text)
        return cls(type="message", role="system", id=id, content=[part])

    @classmethod
    def assistant_text(cls, text: str, *, id: str | UnsetType = UNSET) -> ConversationItem:
        part = ContentPart(type="output_text", text=text)
        return cls(type="message", role="assistant", id=id, content=[part])

    @classmethod
    def function_call(
        cls, call_id: str, name: str, arguments: str, *, id: str | UnsetType = UNSET
    ) -> ConversationItem:
        return cls(type="function_call", id=id, call_id=call_id, name=name, arguments=arguments)

    @classmethod
    def function_call_output(
        cls, call_id: str, output: str, *, id: str | UnsetType = UNSET
    ) -> ConversationItem:
        return cls(type="function_call_output", id=id, call_id=call_id, output=output)

    @classmethod
    def reference(cls, item_id: str) -> ConversationItem:
        """``{type:"item_reference", id}``, for ``response.create`` ``input``."""
        return cls(type="item_reference", id=item_id)


class Conversation(_Obj, frozen=True, kw_only=True):
    id: str | None = None
    object: str | None = None


class ResponseAudioOutput(_Obj, frozen=True, kw_only=True):
    format: RealtimeAudioFormat | UnsetType = UNSET
    voice: str | dict[str, str] | UnsetType | None = UNSET


class ResponseAudio(_Obj, frozen=True, kw_only=True):
    output: ResponseAudioOutput | UnsetType | None = UNSET


class StatusDetails(_Obj, frozen=True, kw_only=True):
    """Why a response ended: ``reason`` is turn_detected | client_cancelled |
    max_output_tokens | content_filter; ``error`` is ``{type, code}``."""

    type: str | None = None
    reason: str | None = None
    error: dict[str, Any] | None = None


ResponseStatusName = Literal["in_progress", "completed", "cancelled", "failed", "incomplete"]


class RealtimeResponse(_Obj, frozen=True, kw_only=True):
    """The response object of ``response.created`` / ``response.done``."""

    id: str | UnsetType = UNSET
    object: str | UnsetType = UNSET
    status: ResponseStatusName | UnsetType = UNSET
    status_details: StatusDetails | UnsetType | None = UNSET
    output: list[ConversationItem] | UnsetType = UNSET
    conversation_id: str | UnsetType | None = UNSET
    output_modalities: list[Literal["text", "audio"]] | UnsetType = UNSET
    max_output_tokens: int | Literal["inf"] | UnsetType | None = UNSET
    audio: ResponseAudio | UnsetType | None = UNSET
    metadata: dict[str, str] | UnsetType | None = UNSET
    usage: ResponseUsage | UnsetType | None = UNSET

    def parley_usage(self) -> Usage | None:
        """``usage`` as ``parley.events.Usage`` (``None`` when the server sent none)."""
        return self.usage.to_usage() if isinstance(self.usage, ResponseUsage) else None


class ResponseParams(_Obj, frozen=True, kw_only=True):
    """``response.create``'s ``response`` (per-response overrides, protocols.md §1.6.4)."""

    audio: ResponseAudio | UnsetType = UNSET
    conversation: str | UnsetType = UNSET  # "auto" | "none" (out of band)
    input: list[ConversationItem] | UnsetType = UNSET
    instructions: str | UnsetType = UNSET
    max_output_tokens: int | Literal["inf"] | UnsetType = UNSET
    metadata: dict[str, str] | UnsetType | None = UNSET
    output_modalities: list[Literal["text", "audio"]] | UnsetType = UNSET
    parallel_tool_calls: bool | UnsetType = UNSET
    prompt: dict[str, Any] | UnsetType | None = UNSET
    reasoning: dict[str, Any] | UnsetType = UNSET
    tool_choice: str | dict[str, Any] | UnsetType = UNSET
    tools: list[Tool] | UnsetType = UNSET


def response_dict_from_beta(response: dict[str, Any]) -> dict[str, Any]:
    """Beta response object / ``response.create`` params → GA: ``modalities`` →
    ``output_modalities``, ``voice`` and ``output_audio_format`` → ``audio.output``,
    ``max_response_output_tokens`` → ``max_output_tokens``; ``temperature`` dropped."""
    out = dict(response)
    output: dict[str, Any] = {}
    if "voice" in out:
        output["voice"] = out.pop("voice")
    fmt = out.pop("output_audio_format", None)
    if isinstance(fmt, str):
        output["format"] = msgspec.to_builtins(format_from_name(fmt))
    if output:
        audio_raw = out.get("audio")
        audio: dict[str, Any] = dict(audio_raw) if isinstance(audio_raw, dict) else {}
        out_raw = audio.get("output")
        merged: dict[str, Any] = dict(out_raw) if isinstance(out_raw, dict) else {}
        for key, value in output.items():
            merged.setdefault(key, value)
        audio["output"] = merged
        out["audio"] = audio
    if "modalities" in out:
        mods = out.pop("modalities")
        if isinstance(mods, list):
            mods = ["audio"] if "audio" in mods else ["text"] if "text" in mods else mods
        out.setdefault("output_modalities", mods)
    if "max_response_output_tokens" in out:
        out.setdefault("max_output_tokens", out.pop("max_response_output_tokens"))
    out.pop("temperature", None)
    return out

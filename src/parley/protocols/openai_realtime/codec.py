"""Decode and encode Realtime frames (sans-I/O: text in, typed event out, and back).

Decoding takes two paths. The fast path is one msgspec decode straight into the
tagged union of GA events: a ``response.output_audio.delta`` costs a single
pass with no intermediate dict. Anything the fast path cannot take — a beta
name, a type with stray whitespace, an unknown type, a bad field, a session or
response object that may be in the beta flat shape — goes to the slow path: a
generic decode, name and shape normalisation, then ``msgspec.convert`` to the
one event class, which also gives an error message naming the bad field.

Every failure is a ``RemoteProtocolError`` with a code the local server can
return in an ``error`` event: ``frame_too_large``, ``invalid_json`` (not JSON, or
not valid UTF-8), ``invalid_event`` (not an object, missing/invalid ``type``, a
field of the wrong type or missing; the message says which).

WebSocket note: the API takes *text* frames; :func:`encode_event` returns UTF-8
bytes, so send them as text (``websockets``: ``send(data, text=True)``) or use
:func:`encode_event_text`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, get_args

import msgspec

from parley.errors import RemoteProtocolError

from .client_events import (
    MAX_AUDIO_APPEND_BYTES,
    ClientEvent,
    ResponseCreate,
    SessionUpdate,
    UnknownClientEvent,
)
from .items import response_dict_from_beta
from .server_events import (
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    SessionCreated,
    SessionUpdated,
    UnknownServerEvent,
)
from .session import session_dict_from_beta

__all__ = [
    "BETA_EVENT_NAMES",
    "MAX_FRAME_BYTES",
    "encode_event",
    "encode_event_text",
    "parse_client_event",
    "parse_server_event",
]

#: Largest frame accepted before decoding (bytes; characters for ``str`` input): one
#: 15 MiB ``input_audio_buffer.append`` (OpenAI's limit) plus 1 MiB for the JSON envelope.
MAX_FRAME_BYTES: Final = MAX_AUDIO_APPEND_BYTES + 1024 * 1024

#: Beta server event names → GA names (protocols.md §1.5).
BETA_EVENT_NAMES: Final[Mapping[str, str]] = {
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
}

_Normalizer = Callable[[dict[str, Any]], dict[str, Any]]


def _session_key(obj: dict[str, Any]) -> dict[str, Any]:
    session = obj.get("session")
    if isinstance(session, dict):
        obj["session"] = session_dict_from_beta(session)
    return obj


def _response_key(obj: dict[str, Any]) -> dict[str, Any]:
    response = obj.get("response")
    if isinstance(response, dict):
        obj["response"] = response_dict_from_beta(response)
    return obj


class _Direction:
    """Decoding state for one direction: the fast decoder and the per-type tables."""

    def __init__(
        self,
        union: Any,
        unknown: type[UnknownServerEvent] | type[UnknownClientEvent],
        normalizers: dict[type[Any], _Normalizer],
    ) -> None:
        self.fast = msgspec.json.Decoder(union)
        self.by_tag: dict[str, type[Any]] = {
            cls.__struct_config__.tag: cls for cls in get_args(union)
        }
        self.unknown = unknown
        # Types whose payload may be in the beta shape: always take the slow path.
        self.normalizers = normalizers
        self.slow_types = frozenset(normalizers)

    def parse(self, data: str | bytes, max_frame_bytes: int) -> Any:
        if len(data) > max_frame_bytes:
            raise RemoteProtocolError(
                f"frame of {len(data)} bytes exceeds the {max_frame_bytes}-byte limit",
                code="frame_too_large",
            )
        try:
            event = self.fast.decode(data)
        except (msgspec.DecodeError, UnicodeError, RecursionError):
            return self._slow(data)
        if type(event) in self.slow_types:
            return self._slow(data)
        return event

    def _slow(self, data: str | bytes) -> Any:
        try:
            obj = msgspec.json.decode(data)
        except (msgspec.DecodeError, UnicodeError) as exc:
            raise RemoteProtocolError(
                f"frame is not valid JSON: {exc}", code="invalid_json"
            ) from None
        except RecursionError:
            raise RemoteProtocolError("frame nests too deeply", code="invalid_json") from None
        if not isinstance(obj, dict):
            raise RemoteProtocolError(
                f"event must be a JSON object, got {type(obj).__name__}", code="invalid_event"
            )
        raw_type = obj.get("type")
        if raw_type is None:
            raise RemoteProtocolError("The 'type' field is missing.", code="invalid_event")
        if not isinstance(raw_type, str) or not raw_type.strip():
            raise RemoteProtocolError(
                f"The 'type' field must be a non-empty string, got {raw_type!r}",
                code="invalid_event",
            )
        # Tolerate stray whitespace (the official dtmf example has " input_audio_buffer…").
        name = raw_type.strip()
        name = BETA_EVENT_NAMES.get(name, name)
        cls = self.by_tag.get(name)
        if cls is None:
            return self.unknown(name, obj)
        obj["type"] = name
        normalize = self.normalizers.get(cls)
        try:
            if normalize is not None:
                obj = normalize(obj)
            return msgspec.convert(obj, cls)
        except msgspec.ValidationError as exc:
            raise RemoteProtocolError(f"{name}: {exc}", code="invalid_event") from None
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(f"{name}: {exc.message}", code=exc.code) from None


_SERVER = _Direction(
    ServerEvent,
    UnknownServerEvent,
    {
        SessionCreated: _session_key,
        SessionUpdated: _session_key,
        ResponseCreated: _response_key,
        ResponseDone: _response_key,
    },
)
_CLIENT = _Direction(
    ClientEvent,
    UnknownClientEvent,
    {SessionUpdate: _session_key, ResponseCreate: _response_key},
)


def parse_server_event(
    data: str | bytes, *, max_frame_bytes: int = MAX_FRAME_BYTES
) -> ServerEvent | UnknownServerEvent:
    """One server frame (JSON text) → one typed event; the client side's entry point.

    Beta names and shapes come out as their GA events; an unknown ``type`` comes
    out as :class:`UnknownServerEvent`; unknown fields are ignored. Raises
    ``RemoteProtocolError`` (see the module docstring for the codes).
    """
    event: ServerEvent | UnknownServerEvent = _SERVER.parse(data, max_frame_bytes)
    return event


def parse_client_event(
    data: str | bytes, *, max_frame_bytes: int = MAX_FRAME_BYTES
) -> ClientEvent | UnknownClientEvent:
    """One client frame → one typed event; the local Realtime server's entry point.

    A beta flat ``session.update`` comes out in the GA nested shape. Raises
    ``RemoteProtocolError`` like :func:`parse_server_event`.
    """
    event: ClientEvent | UnknownClientEvent = _CLIENT.parse(data, max_frame_bytes)
    return event


_ENCODER = msgspec.json.Encoder()


def encode_event(
    event: ServerEvent | ClientEvent | UnknownServerEvent | UnknownClientEvent,
) -> bytes:
    """The JSON of one event (UTF-8 bytes; send as a WebSocket *text* frame)."""
    if isinstance(event, UnknownServerEvent | UnknownClientEvent):
        return _ENCODER.encode(event.raw)
    return _ENCODER.encode(event)


def encode_event_text(
    event: ServerEvent | ClientEvent | UnknownServerEvent | UnknownClientEvent,
) -> str:
    """:func:`encode_event` as ``str``, for socket APIs that pick the frame type by type."""
    return encode_event(event).decode("utf-8")

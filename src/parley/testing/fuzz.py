"""Fuzzing the inbound WebSocket protocols: hostile frame sequences from fixed seeds,
and drivers that feed them to the sans-I/O decoders.

A *case* is a list of frames, as one connection would send them: it usually begins
with a valid opening (Twilio ``connected``/``start``, a browser ``start``, a Realtime
``session.update``) so the state machine gets past its first state, then mixes valid
frames, *mutated* valid frames (a field replaced by an arbitrary JSON value, removed
or added; numbers at the edges; lone-surrogate escapes) and junk (random bytes and
text, truncations, invalid UTF-8, deep nesting, oversized frames). The property every
driver checks: each frame decodes into a typed event or raises
:class:`~parley.errors.RemoteProtocolError` with a code — never another exception.

    @settings(max_examples=2_000, derandomize=True, database=None, deadline=None)
    @given(twilio_cases(per_example=5))           # 10,000 connections
    def test_twilio(cases):
        for frames in cases:
            drive_twilio(frames)

The socket-level fuzzers reuse :class:`CaseMaker` and send the same frames over a
real socket.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable, Sequence
from typing import Any, Final

from hypothesis import strategies as st

from parley.errors import RemoteProtocolError
from parley.protocols import openai_realtime as rt
from parley.protocols.browser import BrowserSession
from parley.protocols.twilio import TwilioStream

__all__ = [
    "BROWSER_CASES",
    "BROWSER_TEMPLATES",
    "REALTIME_CASES",
    "REALTIME_TEMPLATES",
    "TWILIO_CASES",
    "TWILIO_TEMPLATES",
    "CaseMaker",
    "Frame",
    "browser_cases",
    "drive",
    "drive_browser",
    "drive_realtime",
    "drive_twilio",
    "realtime_cases",
    "twilio_cases",
]

Frame = str | bytes
_SID: Final = "MZ00000000000000000000000000000000"
_PAYLOAD: Final = base64.b64encode(b"\xff" * 160).decode()

TWILIO_TEMPLATES: Final[dict[str, dict[str, Any]]] = {
    "connected": {"event": "connected", "protocol": "Call", "version": "1.0.0"},
    "start": {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": _SID,
        "start": {
            "accountSid": "AC00",
            "streamSid": _SID,
            "callSid": "CA00",
            "tracks": ["inbound"],
            "customParameters": {"token": "t", "from": "+15550100"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    },
    "media": {
        "event": "media",
        "sequenceNumber": "3",
        "streamSid": _SID,
        "media": {"track": "inbound", "chunk": "1", "timestamp": "52", "payload": _PAYLOAD},
    },
    "dtmf": {"event": "dtmf", "streamSid": _SID, "dtmf": {"track": "inbound_track", "digit": "5"}},
    "mark": {"event": "mark", "streamSid": _SID, "mark": {"name": "parley-1"}},
    "stop": {"event": "stop", "streamSid": _SID, "stop": {"accountSid": "AC00", "callSid": "CA00"}},
}

BROWSER_TEMPLATES: Final[dict[str, dict[str, Any]]] = {
    "start": {
        "type": "start",
        "session_id": None,
        "user_id": "u",
        "format": {"encoding": "pcm16", "sample_rate": 24000, "channels": 1},
        "metadata": {"token": "t"},
        "version": 1,
    },
    "playback": {"type": "playback", "response_id": "r1", "played_ms": 120.5, "done": False},
    "text": {"type": "text", "text": "hello"},
    "ping": {"type": "ping", "id": 7},
    "stop": {"type": "stop"},
}

REALTIME_TEMPLATES: Final[dict[str, dict[str, Any]]] = {
    "session.update": {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "instructions": "be brief",
            "output_modalities": ["audio"],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
                },
                "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"},
            },
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        },
    },
    "session.update.beta": {
        "type": "session.update",
        "session": {
            "modalities": ["text", "audio"],
            "input_audio_format": "g711_ulaw",
            "output_audio_format": "pcm16",
            "turn_detection": {"type": "server_vad"},
            "voice": "alloy",
        },
    },
    "append": {"type": "input_audio_buffer.append", "audio": _PAYLOAD, "event_id": "e1"},
    "commit": {"type": "input_audio_buffer.commit"},
    "clear": {"type": "input_audio_buffer.clear"},
    "item.create": {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "hi"}],
        },
    },
    "function_output": {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "c1", "output": "{}"},
    },
    "truncate": {
        "type": "conversation.item.truncate",
        "item_id": "i1",
        "content_index": 0,
        "audio_end_ms": 100,
    },
    "response.create": {"type": "response.create", "response": {"instructions": "x"}},
    "response.cancel": {"type": "response.cancel"},
}

_EDGE_NUMBERS: Final = [0, -1, 1, 2**31, 2**63, -(2**63), 2**64, 10**400, 1e308, -0.0, 0.5]
_EDGE_STRINGS: Final = ["", " ", "\x00", "\u2028", "😀", "A" * 300, "null", "MZ", "\ud800"]
_BAD_UTF8: Final = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80", b"\xf4\x90\x80\x80"]


class CaseMaker:
    """Builds hostile frame sequences from a seed with :class:`random.Random`.

    Hypothesis chooses the seeds (fixed with ``derandomize``) and reports a failing
    case with its frames; the values themselves come from ``random``, because drawing
    each of them through hypothesis costs ~65 draws and ~5 ms a case, which would
    put 10,000 cases at a minute a protocol.
    """

    def __init__(
        self,
        templates: dict[str, dict[str, Any]],
        openings: Sequence[str],
        *,
        binary: bool = False,
        max_frames: int = 6,
    ) -> None:
        self.templates = templates
        self.names = sorted(templates)
        self.openings = list(openings)
        self.binary = binary
        self.max_frames = max_frames
        self._texts = {n: _encode(t) for n, t in templates.items()}

    def json_value(self, rng: random.Random, depth: int = 0) -> Any:
        roll = rng.random()
        if depth < 3 and roll < 0.15:
            return [self.json_value(rng, depth + 1) for _ in range(rng.randrange(4))]
        if depth < 3 and roll < 0.3:
            return {
                self._text(rng): self.json_value(rng, depth + 1) for _ in range(rng.randrange(4))
            }
        pick = rng.randrange(7)
        if pick == 0:
            return None
        if pick == 1:
            return rng.random() < 0.5
        if pick == 2:
            return rng.choice(_EDGE_NUMBERS)
        if pick == 3:
            return rng.randint(-(2**70), 2**70)
        if pick == 4:
            return rng.uniform(-1e9, 1e9)
        if pick == 5:
            return rng.choice(_EDGE_STRINGS)
        return self._text(rng)

    @staticmethod
    def _text(rng: random.Random) -> str:
        n = rng.randrange(12)
        if rng.random() < 0.7:
            return "".join(chr(rng.randrange(32, 127)) for _ in range(n))
        return "".join(
            chr(rng.choice([rng.randrange(0x20), rng.randrange(0x110000)])) for _ in range(n)
        )

    def mutated(self, rng: random.Random, template: dict[str, Any]) -> Any:
        obj: Any = template
        for _ in range(rng.randint(1, 3)):
            paths = _paths(obj)
            path = rng.choice(paths)
            action = rng.randrange(3)
            if action == 0 and path:
                obj = _set(obj, path, None, True)
            elif action == 1 and isinstance(obj, dict):
                obj = {**obj, self._text(rng): self.json_value(rng)}
            else:
                obj = _set(obj, path, self.json_value(rng), False)
        return obj

    def junk(self, rng: random.Random, text: str) -> Frame:
        kind = rng.randrange(6)
        if kind == 0:
            return rng.randbytes(rng.randrange(65))
        if kind == 1:
            return self._text(rng)
        if kind == 2:
            return text[: rng.randrange(max(1, len(text)))]
        if kind == 3:
            raw = text.encode()
            cut = rng.randrange(len(raw) + 1)
            return raw[:cut] + rng.choice(_BAD_UTF8) + raw[cut:]
        if kind == 4:
            depth = rng.randint(100, 5000)
            return "[" * depth + "]" * depth
        return '{"x":"' + "a" * rng.randint(64 * 1024 - 10, 64 * 1024 + 10) + '"}'

    def frame(self, rng: random.Random) -> Frame:
        name = rng.choice(self.names)
        roll = rng.random()
        if self.binary and roll < 0.15:
            return (
                rng.randbytes(rng.randrange(65))
                if rng.random() < 0.8
                else bytes(rng.randrange(70_000))
            )
        if roll < 0.3:
            return self._texts[name]
        if roll < 0.8:
            try:
                return _encode(self.mutated(rng, self.templates[name]))
            except (ValueError, OverflowError):  # a float that JSON cannot spell
                return self._texts[name]
        return self.junk(rng, self._texts[name])

    def case(self, seed: int) -> list[Frame]:
        rng = random.Random(seed)
        frames: list[Frame] = [self._texts[n] for n in self.openings if rng.random() < 0.8]
        frames += [self.frame(rng) for _ in range(rng.randint(1, self.max_frames))]
        return frames

    def cases(self, per_example: int = 1) -> st.SearchStrategy[list[list[Frame]]]:
        """``per_example`` cases (connections) per hypothesis example: hypothesis's own
        cost per example (~0.5 ms) is then shared."""
        return st.integers(0, 2**64 - 1).map(
            lambda seed: [self.case(seed * per_example + i) for i in range(per_example)]
        )


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _set(obj: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    copy: Any = dict(obj) if isinstance(obj, dict) else list(obj)
    if delete and not rest:
        del copy[head]
    else:
        copy[head] = _set(copy[head], rest, value, delete)
    return copy


def _encode(obj: Any) -> str:
    # ensure_ascii escapes lone surrogates as \ud800, which is how a peer sends them
    return json.dumps(obj, ensure_ascii=True)


TWILIO_CASES: Final = CaseMaker(TWILIO_TEMPLATES, ["connected", "start"])
BROWSER_CASES: Final = CaseMaker(BROWSER_TEMPLATES, ["start"], binary=True)
REALTIME_CASES: Final = CaseMaker(REALTIME_TEMPLATES, ["session.update"])


def twilio_cases(per_example: int = 1) -> st.SearchStrategy[list[list[Frame]]]:
    return TWILIO_CASES.cases(per_example)


def browser_cases(per_example: int = 1) -> st.SearchStrategy[list[list[Frame]]]:
    return BROWSER_CASES.cases(per_example)


def realtime_cases(per_example: int = 1) -> st.SearchStrategy[list[list[Frame]]]:
    return REALTIME_CASES.cases(per_example)


def drive(receive: Callable[[Frame], object], frames: Sequence[Frame]) -> list[str]:
    """Feed ``frames``; return the error codes met. Anything but a
    ``RemoteProtocolError`` propagates (the fuzz test fails on it)."""
    codes: list[str] = []
    for frame in frames:
        try:
            receive(frame)
        except RemoteProtocolError as exc:
            if not exc.code:
                raise AssertionError(f"untyped protocol error for {frame!r:.80}") from exc
            codes.append(exc.code)
    return codes


def drive_twilio(frames: Sequence[Frame]) -> list[str]:
    return drive(TwilioStream().receive, frames)


def drive_browser(frames: Sequence[Frame]) -> list[str]:
    return drive(BrowserSession().receive, frames)


def drive_realtime(frames: Sequence[Frame]) -> list[str]:
    """The local Realtime server's decode path: parse, and decode the audio of appends
    and merge session updates as the server does."""
    session = rt.Session()

    def receive(frame: Frame) -> None:
        nonlocal session
        event = rt.parse_client_event(frame)
        if isinstance(event, rt.InputAudioBufferAppend):
            event.audio_bytes()
        elif isinstance(event, rt.SessionUpdate):
            session = rt.merge_session(session, event.session)

    return drive(receive, frames)

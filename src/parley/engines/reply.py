"""One reply of the cascade engine: its task, its audio timeline, its metrics.

The timeline (one :class:`Segment` per synthesised clause, in ms since the reply's
first sample) is what maps a transport's playback report to the words the caller
actually heard (:meth:`ReplyRecord.played_text`), for barge-in, for
``cancel_response`` and for the history.

:func:`failure_event` names a failure in a turn for its ``ErrorEvent``: the
error's own kind first (``auth_error``, ``rate_limited``, a protocol or
middleware error's ``code``), else the stage that failed (``stt_failed``,
``tts_failed``; a failing LLM is a ``provider_error``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from parley.engines.playback import estimated_played_ms, heard_text, still_playing
from parley.errors import AuthError, ParleyError, ProtocolError, ProviderError, RateLimited
from parley.events import ErrorEvent, TurnMetrics

__all__ = ["ReplyRecord", "Segment", "Stage", "failure_event"]

#: Where in a turn something failed.
Stage: TypeAlias = Literal["stt", "llm", "tts", "middleware"]

_STAGE_CODE = {"stt": "stt_failed", "tts": "tts_failed", "llm": "provider_error"}
_STAGE_NAME = {"stt": "STT", "llm": "LLM", "tts": "TTS", "middleware": "middleware"}


def failure_event(exc: BaseException, stage: Stage) -> ErrorEvent:
    """The non-fatal ``ErrorEvent`` for ``exc`` raised by ``stage`` in a turn."""
    if isinstance(exc, AuthError):
        code = "auth_error"
    elif isinstance(exc, RateLimited):
        code = "rate_limited"
    elif isinstance(exc, ProtocolError):
        code = exc.code
    elif isinstance(exc, ProviderError):
        code = _STAGE_CODE.get(stage, "provider_error")
    elif isinstance(exc, ParleyError) and exc.code != ParleyError.code:
        code = exc.code  # its own kind's (MiddlewareError: "middleware_error")
    else:
        code = _STAGE_CODE.get(stage, "error")
    who = _STAGE_NAME[stage]
    if isinstance(exc, ProviderError) and exc.provider:
        who = f"{who} ({exc.provider})"
    return ErrorEvent(code, f"{who} failed: {exc}", fatal=False)


@dataclass(slots=True)
class Segment:
    """One clause's span in the reply audio (ms since the reply's first sample);
    ``end_char`` is where the clause ends in :attr:`ReplyRecord.spoken`."""

    text: str
    start_ms: float
    end_ms: float
    end_char: int = 0


@dataclass(slots=True)
class ReplyRecord:
    """Book-keeping of one reply: its task, its audio timeline, its metrics."""

    id: str
    turn_index: int
    speech_end_t: float | None  # wall time the user stopped speaking (None for text input)
    turn_end_t: float  # wall time the turn was confirmed
    task: asyncio.Task[None] | None = None
    started: bool = False  # ResponseStarted emitted
    superseded: bool = False  # new user speech during STT: keep the words, skip the reply
    generating: bool = True  # ResponseDone not emitted yet
    stopping: bool = False  # being cut off (barge-in or cancel_response)
    segments: list[Segment] = field(default_factory=list)
    audio_ms: float = 0.0
    played_ms: float | None = None  # last playback report
    first_audio_t: float | None = None
    spoken: str = ""  # all text handed to TTS, clauses joined by one space
    voiced_chars: int = 0  # len(spoken) up to the last clause that produced audio
    final_offset: int = 0  # len(spoken) before the last LLM round (after tool calls)
    history_index: int | None = None  # where the final assistant message sits
    failures: list[ErrorEvent] = field(default_factory=list)
    tts_failed: bool = False
    metrics_sent: bool = False
    stt_ms: float | None = None
    stt_wait_ms: float | None = None
    speculative_hit: bool = False
    extra: dict[str, float] = field(default_factory=dict)  # endpointing figures
    llm_first_token_ms: float | None = None
    tts_first_byte_ms: float | None = None

    def estimated_played_ms(self, now: float) -> float:
        return estimated_played_ms(self.audio_ms, self.played_ms, self.first_audio_t, now)

    def playing(self, now: float) -> bool:
        return still_playing(
            self.generating, self.audio_ms, self.played_ms, self.first_audio_t, now
        )

    def played_text(self, played_ms: float) -> str:
        """What the caller heard after ``played_ms`` of the reply (whole words)."""
        return heard_text(((s.text, s.start_ms, s.end_ms) for s in self.segments), played_ms)

    def metrics(self) -> TurnMetrics:
        v2v = eot = None
        if self.speech_end_t is not None:
            eot = (self.turn_end_t - self.speech_end_t) * 1000
            if self.first_audio_t is not None:
                v2v = (self.first_audio_t - self.speech_end_t) * 1000
        extra: dict[str, float] = {"speculative_stt_hit": float(self.speculative_hit)}
        extra.update(self.extra)
        if self.stt_wait_ms is not None:
            extra["stt_wait_ms"] = self.stt_wait_ms
        return TurnMetrics(
            turn_index=self.turn_index,
            voice_to_voice_ms=v2v,
            end_of_turn_ms=eot,
            stt_ms=self.stt_ms,
            llm_first_token_ms=self.llm_first_token_ms,
            tts_first_byte_ms=self.tts_first_byte_ms,
            extra=extra,
        )

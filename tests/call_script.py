"""Scripted calls for the metrics tests: typed events with the times they happen.

A :class:`Script` plays a caller and an agent on one clock: ``say`` is caller speech
(UserSpeechStarted/Stopped at stream positions that match the clock), ``reply`` an
agent reply (ResponseStarted, 20 ms AudioDelta chunks paced in real time, then
ResponseDone), ``wait`` time passing. ``events`` is what a meter is fed, in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from parley.events import (
    AudioDelta,
    Event,
    Interrupted,
    ResponseDone,
    ResponseStarted,
    Role,
    TextDelta,
    TranscriptFinal,
    TurnMetrics,
    Usage,
    UserSpeechStarted,
    UserSpeechStopped,
)

RATE = 24_000
CHUNK_MS = 20
CHUNK = b"\x00\x01" * (RATE * CHUNK_MS // 1000)  # 20 ms of PCM16


@dataclass
class Script:
    t: float = 1000.0  # the meter's clock (monotonic seconds)
    start: float = 1000.0
    events: list[tuple[Event, float]] = field(default_factory=list)
    replies: int = 0

    def at(self, event: Event, t: float | None = None) -> None:
        self.events.append((event, self.t if t is None else t))

    def wait(self, seconds: float) -> Script:
        self.t += seconds
        return self

    def _pos(self) -> float:
        return (self.t - self.start) * 1000.0

    def say(self, seconds: float, text: str = "hello there") -> Script:
        self.at(UserSpeechStarted(self._pos()))
        self.wait(seconds)
        self.at(UserSpeechStopped(self._pos()))
        self.at(TranscriptFinal(Role.USER, text))
        return self

    def stop(self, text: str = "wait, one more thing") -> Script:
        """The caller stops speaking (after a barge-in started their speech)."""
        self.at(UserSpeechStopped(self._pos()))
        self.at(TranscriptFinal(Role.USER, text))
        return self

    def reply(
        self,
        *,
        after: float = 0.6,
        seconds: float = 2.0,
        text: str = "Sure, I can help with that.",
        usage: Usage | None = None,
        metrics: TurnMetrics | None = None,
        cut_at: float | None = None,
    ) -> str:
        """An agent reply starting ``after`` s from now; ``cut_at`` s into its audio the
        caller barges in (speech starts, the reply is interrupted and cancelled)."""
        rid = f"resp_{self.replies}"
        self.replies += 1
        self.at(ResponseStarted(rid), self.t + after * 0.5)
        self.at(TextDelta(rid, text[:5]), self.t + after * 0.8)
        self.wait(after)
        chunks = round(seconds * 1000 / CHUNK_MS)
        for i in range(chunks):
            if cut_at is not None and i * CHUNK_MS >= cut_at * 1000:
                played_ms = i * CHUNK_MS
                self.at(UserSpeechStarted(self._pos()))
                self.at(Interrupted(rid, text[:10], float(played_ms)))
                self.at(ResponseDone(rid, "cancelled", text[:10], usage))
                return rid
            self.at(AudioDelta(rid, CHUNK, RATE, text=text if i == 0 else ""))
            if i == 0 and metrics is not None:
                self.at(metrics)
            self.wait(CHUNK_MS / 1000)
        self.at(ResponseDone(rid, "completed", text, usage))
        return rid

"""Playback truth for phone streams that echo checkpoints: what the caller has heard.

Every phone platform buffers the audio a server sends and plays it in order; the
server learns what was *heard* only from named checkpoints it places after its
audio, which the platform echoes once the audio before them has played:

=========  ======================  ======================  ============================
platform   server sends            platform echoes         after a clear
=========  ======================  ======================  ============================
Twilio     ``mark``                ``mark``                pending marks echo at once
Telnyx     ``mark``                ``mark``                pending marks echo at once
Plivo      ``checkpoint``          ``playedStream``        flushed checkpoints never echo;
                                                           ``clearedAudio`` acknowledges
Vonage     ``notify`` + payload    ``websocket:notify``    not documented; treated like
                                                           Twilio (conservative), and
                                                           ``websocket:cleared`` ends it
=========  ======================  ======================  ============================

:class:`PlaybackTracker` is the server's half: it names a checkpoint per chunk and
turns echoes into milliseconds played per response (the ``audio_end_ms`` a reply
is truncated at on barge-in). With ``flushed_marks_echo=True`` it behaves exactly
like :class:`parley.protocols.twilio.MarkTracker` (tests/test_phone_playback.py
checks that against random histories), so Twilio can switch to it.

:class:`Playout` is the phone's half, for the simulated callers: a playback buffer
that says when the audio before each checkpoint has finished playing. Time is
passed in; nothing here reads a clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["PlaybackEcho", "PlaybackTracker", "Playout"]


@dataclass(frozen=True, slots=True)
class PlaybackEcho:
    """What one echoed checkpoint tells: its audio was heard, or flushed by a clear."""

    name: str
    response_id: str
    played: bool  # False: flushed by a clear, never heard
    ms: float  # duration of the audio between the previous checkpoint and this one
    played_ms: float  # total audio of ``response_id`` heard so far


@dataclass(slots=True)
class _Pending:
    name: str
    response_id: str
    n_bytes: int
    flushed: bool = False


class PlaybackTracker:
    """Names a checkpoint per outbound chunk and turns echoes into milliseconds played.

    After each chunk of ``n`` bytes: ``name = tracker.add(n, response_id)`` and send
    the platform's checkpoint called ``name``. On its echo, ``tracker.echo(name)``.
    On barge-in, ``tracker.clear()`` when sending the platform's clear, and
    ``tracker.cleared()`` when the platform acknowledges it (Plivo ``clearedAudio``,
    Vonage ``websocket:cleared``).

    ``flushed_marks_echo``: the platform echoes the checkpoints a clear flushed
    (Twilio, Telnyx), so an echo of a checkpoint sent before the clear says nothing
    about playback and counts as flushed. ``False`` (Plivo: "playedStream will only
    be emitted if the preceding events were played successfully"): an echo always
    means played, even one that raced the clear.
    """

    __slots__ = ("_bytes_per_ms", "_counter", "_flushed_echo", "_pending", "_played", "_prefix")

    def __init__(
        self,
        *,
        bytes_per_ms: int = 8,
        prefix: str = "parley-",
        flushed_marks_echo: bool = True,
    ) -> None:
        if bytes_per_ms <= 0:
            raise ValueError("bytes_per_ms must be positive")
        self._bytes_per_ms = bytes_per_ms
        self._prefix = prefix
        self._flushed_echo = flushed_marks_echo
        self._counter = 0
        self._pending: deque[_Pending] = deque()  # oldest first, as the platform plays them
        self._played: dict[str, int] = {}  # response_id -> bytes heard

    @property
    def bytes_per_ms(self) -> int:
        return self._bytes_per_ms

    def add(self, n_bytes: int, response_id: str = "") -> str:
        """Record ``n_bytes`` of audio just sent; return the name of the checkpoint to send."""
        if n_bytes < 0:
            raise ValueError("n_bytes must be >= 0")
        self._counter += 1
        name = f"{self._prefix}{self._counter}"
        self._pending.append(_Pending(name, response_id, n_bytes))
        return name

    def echo(self, name: str) -> PlaybackEcho | None:
        """Account for the platform's echo of ``name``; ``None`` if it is not pending.

        Checkpoints still pending before ``name`` are settled with it (platforms play
        in order, so their audio finished too).
        """
        if not any(pending.name == name for pending in self._pending):
            return None
        while True:
            pending = self._pending.popleft()
            heard = not (pending.flushed and self._flushed_echo)
            if heard:
                rid = pending.response_id
                self._played[rid] = self._played.get(rid, 0) + pending.n_bytes
            if pending.name == name:
                return PlaybackEcho(
                    name=name,
                    response_id=pending.response_id,
                    played=heard,
                    ms=pending.n_bytes / self._bytes_per_ms,
                    played_ms=self.played_ms(pending.response_id),
                )

    def clear(self) -> float:
        """Flag pending checkpoints as flushed (when sending a clear); return the ms dropped."""
        dropped = 0
        for pending in self._pending:
            if not pending.flushed:
                pending.flushed = True
                dropped += pending.n_bytes
        return dropped / self._bytes_per_ms

    def cleared(self) -> int:
        """The platform acknowledged the clear: forget flushed checkpoints; return how many.

        Their echoes will not come (Plivo) or, if they still do, are ignored.
        """
        before = len(self._pending)
        self._pending = deque(p for p in self._pending if not p.flushed)
        return before - len(self._pending)

    def played_ms(self, response_id: str = "") -> float:
        """Milliseconds of ``response_id``'s audio confirmed played so far."""
        return self._played.get(response_id, 0) / self._bytes_per_ms

    @property
    def pending_ms(self) -> float:
        """Audio sent whose checkpoint has not come back and was not flushed."""
        total = sum(p.n_bytes for p in self._pending if not p.flushed)
        return total / self._bytes_per_ms

    @property
    def pending_marks(self) -> int:
        """Checkpoints sent and not yet echoed or forgotten (flushed ones included)."""
        return len(self._pending)

    def forget(self, response_id: str) -> None:
        """Drop the played total of a finished response (keeps a long call's memory flat)."""
        self._played.pop(response_id, None)


class Playout:
    """A phone's playback buffer: when has the audio before each checkpoint played?

    Audio plays at ``bytes_per_ms`` from the moment it arrives, back to back; when
    the buffer runs dry playback waits for more. ``push_mark`` schedules a checkpoint
    for the end of the audio queued before it; ``due(now)`` returns those whose audio
    finished by ``now`` (oldest first) and ``clear(now)`` drops the rest of the audio
    and returns every pending checkpoint (the caller echoes them or not, as its
    platform does).
    """

    __slots__ = ("_bytes_per_s", "_end", "_marks", "dropped_bytes", "received_bytes")

    def __init__(self, bytes_per_ms: int = 8) -> None:
        if bytes_per_ms <= 0:
            raise ValueError("bytes_per_ms must be positive")
        self._bytes_per_s = bytes_per_ms * 1000
        self._end = 0.0  # when the audio queued so far will have finished playing
        self._marks: deque[tuple[float, str]] = deque()
        self.received_bytes = 0
        #: Audio received but never played because a clear dropped it.
        self.dropped_bytes = 0

    def push_audio(self, n_bytes: int, now: float) -> None:
        self.received_bytes += n_bytes
        self._end = max(self._end, now) + n_bytes / self._bytes_per_s

    def push_mark(self, name: str, now: float) -> None:
        self._marks.append((max(self._end, now), name))

    def due(self, now: float) -> list[str]:
        """Checkpoints whose audio has finished playing by ``now``, oldest first."""
        out: list[str] = []
        while self._marks and self._marks[0][0] <= now:
            out.append(self._marks.popleft()[1])
        return out

    def clear(self, now: float) -> list[str]:
        """Drop unplayed audio; return every pending checkpoint, oldest first."""
        if self._end > now:
            self.dropped_bytes += round((self._end - now) * self._bytes_per_s)
            self._end = now
        out = [name for _, name in self._marks]
        self._marks.clear()
        return out

    def busy_until(self) -> float:
        """When the audio queued so far finishes playing."""
        return self._end

    def idle(self, now: float) -> bool:
        """Nothing left to play and no checkpoint pending."""
        return now >= self._end and not self._marks

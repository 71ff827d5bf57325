"""Reply audio waiting to go out at the pace of a clock, with what has gone out so far.

WebRTC's outbound track and Discord's voice sender both pull 20 ms of PCM16 at a
time on their own clock, and neither platform tells the server what the listener
heard; what the sender has handed to the encoder is the best playback truth there
is (the rest is in flight and in the listener's jitter buffer, tens of ms).
:class:`PlayoutBuffer` holds the replies in order, hands out exact frames (silence
padded), and reports per response how much has gone out — every ``report_ms`` and
at its end — through ``on_report(response_id, played_ms, done)``, which a shell turns
into :class:`~parley.conversation.stream.PlaybackReport`\\ s. A barge-in ``clear()``
drops the rest and reports where each response stopped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

__all__ = ["PlayoutBuffer", "ReportFn"]

ReportFn = Callable[[str, float, bool], None]


class PlayoutBuffer:
    """PCM16 mono at ``sample_rate`` waiting to be sent (see the module docstring)."""

    def __init__(self, sample_rate: int, on_report: ReportFn, *, report_ms: int = 100) -> None:
        self._bytes_per_ms = sample_rate * 2 / 1000
        self._report_bytes = round(report_ms * self._bytes_per_ms)
        self._report = on_report
        self._buf = bytearray()
        self._owners: deque[list[str | int]] = deque()  # [response_id, bytes left]
        self._sent: dict[str, int] = {}
        self._unreported: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._buf)

    def push(self, pcm: bytes, response_id: str) -> None:
        self._buf += pcm
        if self._owners and self._owners[-1][0] == response_id:
            self._owners[-1][1] = int(self._owners[-1][1]) + len(pcm)
        else:
            self._owners.append([response_id, len(pcm)])

    def take(self, n_bytes: int) -> bytes | None:
        """The next ``n_bytes`` (the last of the audio padded with silence), or None
        when nothing waits."""
        if not self._buf:
            return None
        chunk = bytes(self._buf[:n_bytes])
        del self._buf[:n_bytes]
        self._account(len(chunk))
        return chunk.ljust(n_bytes, b"\0")

    def clear(self) -> None:
        """Drop what has not gone out; report where each response stopped."""
        for owner in self._owners:
            rid = str(owner[0])
            self._report(rid, self._sent.get(rid, 0) / self._bytes_per_ms, False)
            self._forget(rid)
        self._buf.clear()
        self._owners.clear()

    def _account(self, n: int) -> None:
        while n and self._owners:
            owner = self._owners[0]
            rid, left = str(owner[0]), int(owner[1])
            take = min(n, left)
            owner[1] = left - take
            n -= take
            self._sent[rid] = self._sent.get(rid, 0) + take
            self._unreported[rid] = self._unreported.get(rid, 0) + take
            done = owner[1] == 0
            if done:
                self._owners.popleft()
            if done or self._unreported[rid] >= self._report_bytes:
                self._unreported[rid] = 0
                self._report(rid, self._sent[rid] / self._bytes_per_ms, done)
            if done and not any(o[0] == rid for o in self._owners):
                self._forget(rid)

    def _forget(self, rid: str) -> None:
        # A response whose audio has all gone out is done: keep a long call's memory flat.
        self._sent.pop(rid, None)
        self._unreported.pop(rid, None)

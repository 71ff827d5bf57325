"""Plivo audio streaming as a platform: ``/plivo/stream``.

The wire work is :class:`parley.protocols.plivo.PlivoStream`; the shell is the
shared :class:`~parley.transports.phone.MarkedPhoneStream`. Plivo opens with
``start`` (no ``connected``); the call is ``start.callId``, and the caller and a
one-time token travel in the XML ``extraHeaders`` (``start.headers``:
``from=…,token=…``, see ``parley.server.phone_answers``). Our checkpoints are
answered by ``playedStream`` only for audio that really played: a ``clearAudio``
flushes the rest silently and Plivo acknowledges it with ``clearedAudio``.
"""

from __future__ import annotations

from parley.protocols.plivo import DTMF, ClearedAudio, Media, PlayedStream, PlivoStream, Start, Stop
from parley.transports.phone import MarkedPhoneStream, PhoneDialect, StartInfo, TokenCheck
from parley.transports.platform import Accept, Caller, Connection, Refusal
from parley.transports.socket import WireSocket

__all__ = ["PLIVO", "PlivoPlatform"]


def _read_start(start: Start) -> StartInfo:
    headers = start.headers
    caller = headers.get("from", "")
    return StartInfo(
        Caller(
            user_id=caller or None,
            call_sid=start.call_id,
            metadata={k: v for k, v in headers.items() if k != "token"},
        ),
        call_id=start.call_id,
        from_=caller,
        token=headers.get("token"),
    )


#: How a Plivo stream reads (for :class:`MarkedPhoneStream`).
PLIVO = PhoneDialect(
    name="plivo",
    protocol=PlivoStream,
    start=Start,
    media=Media,
    echoes=(PlayedStream,),
    dtmf=DTMF,
    stop=Stop,
    read_start=_read_start,
    cleared=ClearedAudio,
    flushed_marks_echo=False,  # "playedStream … only if the preceding events were played"
)


class PlivoPlatform:
    """Plivo's bidirectional audio stream on ``/plivo/stream``; ``check`` vets the
    one-time token in each ``start``'s extra headers."""

    name = "plivo"
    routes: tuple[str, ...] = ("/plivo/stream",)

    def __init__(self, check: TokenCheck | None = None) -> None:
        self._check = check

    def admit(self, connection: Connection) -> Accept | Refusal:
        return Accept()

    def open(self, socket: WireSocket, connection: Connection) -> MarkedPhoneStream:
        return MarkedPhoneStream(socket, PLIVO, check=self._check)

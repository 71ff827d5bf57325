"""Telnyx media streaming as a platform: ``/telnyx/stream``.

The wire work is :class:`parley.protocols.telnyx.TelnyxStream`; the shell is the
shared :class:`~parley.transports.phone.MarkedPhoneStream`. Telnyx opens with
``connected`` then ``start``; the call is ``start.call_control_id``, the caller
``start.from``, and a one-time token travels in ``start.custom_parameters`` (the
TeXML ``<Parameter>``, ``parley.server.phone_answers``). Outbound ``media`` carries
20 ms to 30 s, so the last piece of a reply is padded to 20 ms; a ``clear`` makes
Telnyx echo the pending marks at once, which count as flushed, not played.
"""

from __future__ import annotations

from parley.protocols.telnyx import DTMF, MIN_MEDIA_MS, Mark, Media, Start, Stop, TelnyxStream
from parley.transports.phone import MarkedPhoneStream, PhoneDialect, StartInfo, TokenCheck
from parley.transports.platform import Accept, Caller, Connection, Refusal
from parley.transports.socket import WireSocket

__all__ = ["TELNYX", "TelnyxPlatform"]


def _read_start(start: Start) -> StartInfo:
    params = start.parameters
    caller = params.get("from", "")  # what our TeXML put there, and the token is bound to
    return StartInfo(
        Caller(
            user_id=caller or start.from_ or None,
            call_sid=start.call_control_id,
            metadata={k: v for k, v in params.items() if k != "token"},
        ),
        call_id=start.call_control_id,
        from_=caller,
        token=params.get("token"),
    )


#: How a Telnyx stream reads (for :class:`MarkedPhoneStream`).
TELNYX = PhoneDialect(
    name="telnyx",
    protocol=TelnyxStream,
    start=Start,
    media=Media,
    echoes=(Mark,),
    dtmf=DTMF,
    stop=Stop,
    read_start=_read_start,
    flushed_marks_echo=True,
    min_media_ms=MIN_MEDIA_MS,
)


class TelnyxPlatform:
    """Telnyx media streaming (bidirectional RTP mode) on ``/telnyx/stream``;
    ``check`` vets the one-time token of each ``start``."""

    name = "telnyx"
    routes: tuple[str, ...] = ("/telnyx/stream",)

    def __init__(self, check: TokenCheck | None = None) -> None:
        self._check = check

    def admit(self, connection: Connection) -> Accept | Refusal:
        return Accept()  # authenticated in the stream: the start's one-time token

    def open(self, socket: WireSocket, connection: Connection) -> MarkedPhoneStream:
        return MarkedPhoneStream(socket, TELNYX, check=self._check)

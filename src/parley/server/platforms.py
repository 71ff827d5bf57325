"""The platform registry: every way in, one line each.

Hosts generate their WebSocket routes from this (through
:meth:`parley.server.switchboard.Switchboard.endpoints`), and a call record's
``kind`` is the platform's ``name``. To add a platform, write its protocol module
(``parley.protocols``), its shell and ``Platform`` (``parley.transports``), and add
one line below — docs/extending.md walks through it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from parley.protocols.twilio import Start
from parley.transports.browser import BrowserPlatform
from parley.transports.detect import SharedPhonePlatform
from parley.transports.phone import TokenCheck
from parley.transports.platform import Platform
from parley.transports.plivo import PlivoPlatform
from parley.transports.telnyx import TelnyxPlatform
from parley.transports.twilio import TwilioPlatform
from parley.transports.vonage import VonagePlatform
from parley.transports.webrtc import WebRTCPlatform

__all__ = ["platforms"]


def platforms(
    twilio_check: Callable[[Start], Awaitable[None]] | None = None,
    checks: Mapping[str, TokenCheck] | None = None,
) -> tuple[Platform, ...]:
    """The platforms a server serves (the Realtime endpoint is the switchboard's own);
    ``twilio_check`` vets a Twilio stream's one-time token and ``checks`` the other
    phone platforms' by name (the switchboard's single-use checks); a platform
    without one is not authenticated."""
    checks = checks or {}
    phones: tuple[Platform, ...] = (
        TwilioPlatform(twilio_check),
        TelnyxPlatform(checks.get("telnyx")),
        VonagePlatform(checks.get("vonage")),
        PlivoPlatform(checks.get("plivo")),
    )
    return (
        *phones,
        SharedPhonePlatform({p.name: p for p in phones}),
        BrowserPlatform(),
        WebRTCPlatform(),
    )

"""The platform registry: every way in, one line each.

Hosts generate their WebSocket routes from this (through
:meth:`parley.server.switchboard.Switchboard.endpoints`), and a call record's
``kind`` is the platform's ``name``. To add a platform, write its protocol module
(``parley.protocols``), its shell and ``Platform`` (``parley.transports``), and add
one line below — docs/extending.md walks through it.
"""

from __future__ import annotations

from parley.server.auth import TwilioTokens
from parley.transports.browser import BrowserPlatform
from parley.transports.platform import Platform
from parley.transports.twilio import TwilioPlatform

__all__ = ["platforms"]


def platforms(twilio_tokens: TwilioTokens | None) -> tuple[Platform, ...]:
    """The platforms a server serves (the Realtime endpoint is the switchboard's own)."""
    return (
        TwilioPlatform(twilio_tokens.check_start if twilio_tokens is not None else None),
        BrowserPlatform(),
    )

"""The platform conformance suite (parley.testing.conformance) over real sockets, for
every platform in the registry: connect, speak, reply audio, barge-in, close, a
malformed frame. Each test phone speaks its platform's exact messages; the shared
``/phone/stream`` runs it once per provider it tells apart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from parley.app import Parley
from parley.testing.conformance import conformance_app, run_conformance
from parley.testing.phones import (
    BrowserTestPhone,
    ConformancePhone,
    PlivoTestPhone,
    TelnyxTestPhone,
    TwilioTestPhone,
    VonageTestPhone,
)
from parley.testing.webrtc_phone import WebRTCTestPhone
from parley.transports.webrtc import restrict_ice_addresses
from servers import RunningServer, serve_app

#: One test phone (or several) per registered platform.
PHONES: dict[str, dict[str, Callable[[], ConformancePhone]]] = {
    "twilio": {"twilio": TwilioTestPhone},
    "telnyx": {
        "telnyx": TelnyxTestPhone,
        "telnyx-l16": lambda: TelnyxTestPhone(l16=True),
    },
    "vonage": {"vonage": VonageTestPhone},
    "plivo": {"plivo": PlivoTestPhone},
    "phone": {
        "twilio": lambda: TwilioTestPhone(path="/phone/stream"),
        "telnyx": lambda: TelnyxTestPhone(path="/phone/stream"),
        "vonage": lambda: VonageTestPhone(path="/phone/stream"),
        "plivo": lambda: PlivoTestPhone(path="/phone/stream"),
    },
    "browser": {"browser": BrowserTestPhone},
    "webrtc": {"webrtc": WebRTCTestPhone},  # Opus over UDP on loopback, control on a channel
}

CASES = [(platform, name) for platform, phones in PHONES.items() for name in phones]


@pytest.fixture
def app() -> Iterator[Parley]:
    yield conformance_app(webrtc_ice_addresses=["127.0.0.1"])
    restrict_ice_addresses(None)


@pytest.fixture
async def server(app: Parley) -> AsyncIterator[RunningServer]:
    async with serve_app(app) as running:
        yield running


def test_every_registered_platform_has_a_test_phone(app: Parley) -> None:
    registered = {p.name for p in app.switchboard.platforms}
    assert registered == set(PHONES), "a platform without a conformance phone"


@pytest.mark.parametrize(("platform", "phone"), CASES, ids=[f"{p}:{n}" for p, n in CASES])
async def test_platform_conforms(
    server: RunningServer, app: Parley, platform: str, phone: str
) -> None:
    report = await run_conformance(
        f"ws://127.0.0.1:{server.port}", PHONES[platform][phone], app=app
    )
    assert report.steps == [
        "connect",
        "speak",
        "reply audio",
        "barge-in",
        "close",
        "malformed frame",
    ]
    assert report.reply_ms >= 1000 and report.cleared
    assert report.close_code in (1007, 1008) and report.close_reason

"""Provider auto-detection on a shared endpoint (protocols.md §3.5).

Each platform's own opening frames (from its docs, or its caller module that
builds them to the docs) are fed to ``ProviderDetector``; the frames it kept must
then start that platform's protocol. Finally all four platforms call one shared
endpoint over a real WebSocket and each is answered in its own protocol.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from parley.errors import RemoteProtocolError
from parley.protocols.phone_detect import Provider, ProviderDetector, detect_provider
from parley.protocols.plivo import PlivoStream
from parley.protocols.plivo_caller import PlivoCaller
from parley.protocols.telnyx import TelnyxStream
from parley.protocols.telnyx_caller import TelnyxCaller
from parley.protocols.twilio import TwilioStream
from parley.protocols.twilio_caller import TwilioCaller
from parley.protocols.vonage import VonageStream
from parley.protocols.vonage_caller import VonageCaller


def opening(provider: Provider) -> list[str | bytes]:
    """The first text frames, as a WireSocket hands them out (``str``)."""
    if provider is Provider.TWILIO:
        twilio = TwilioCaller()
        return [twilio.connected().decode(), twilio.start().decode()]
    if provider is Provider.TELNYX:
        telnyx = TelnyxCaller()
        return [telnyx.connected().decode(), telnyx.start().decode()]
    if provider is Provider.PLIVO:
        return [PlivoCaller().start().decode()]
    return [VonageCaller().connected()]


@pytest.mark.parametrize("provider", list(Provider))
def test_each_platform_is_recognised_from_its_opening(provider: Provider) -> None:
    frames = opening(provider)
    detector = ProviderDetector()
    answers = [detector.feed(frame) for frame in frames]
    assert answers[:-1] == [None] * (len(frames) - 1)
    assert answers[-1] is provider
    assert detector.provider is provider
    assert detector.frames == frames
    assert detector.feed('{"event":"anything"}') is provider  # decided: no more reading


STREAMS: dict[Provider, Callable[[], Any]] = {
    Provider.TWILIO: TwilioStream,
    Provider.TELNYX: TelnyxStream,
    Provider.PLIVO: PlivoStream,
    Provider.VONAGE: VonageStream,
}


@pytest.mark.parametrize("provider", list(Provider))
def test_the_kept_frames_start_the_platforms_protocol(provider: Provider) -> None:
    detector = ProviderDetector()
    for frame in opening(provider):
        detector.feed(frame)
    stream = STREAMS[provider]()
    for frame in detector.frames:
        stream.receive(frame)
    assert stream.state.name == "STARTED"


def test_documented_examples() -> None:
    # Telnyx's AsyncAPI start, Plivo's Stream Event Protocol start, Twilio's 2020 capture.
    telnyx = {"event": "start", "stream_id": "32DE0DEA", "start": {"call_control_id": "v2:T0"}}
    plivo = {"event": "start", "start": {"callId": "1234", "streamId": "8765"}}
    twilio = {"event": "start", "start": {"streamSid": "MZ1", "callSid": "CA1"}}
    vonage = {"event": "websocket:connected", "content-type": "audio/l16;rate=16000"}
    assert detect_provider(telnyx) is Provider.TELNYX
    assert detect_provider(plivo) is Provider.PLIVO
    assert detect_provider(twilio) is Provider.TWILIO
    assert detect_provider(vonage) is Provider.VONAGE
    assert detect_provider({"event": "connected", "protocol": "Call"}) is None
    # Exotel's start (snake_case sids) and half-filled starts are nobody's.
    assert (
        detect_provider({"event": "start", "start": {"stream_sid": "a", "call_sid": "b"}}) is None
    )
    assert detect_provider({"event": "start", "start": {"streamSid": "", "callSid": "CA"}}) is None
    assert detect_provider({"event": "start", "start": "x"}) is None
    assert detect_provider({"event": "start", "stream_id": "s", "start": {}}) is None


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([b"\x00\x01"], "unknown_provider"),
        (["not json"], "bad_json"),
        (["[1, 2]"], "not_an_object"),
        (['{"event":"media"}'], "unknown_provider"),
        (
            ['{"event":"start","start":{"stream_sid":"a","call_sid":"b","account_sid":"c"}}'],
            "unknown_provider",
        ),
        (['{"event":"connected"}', '{"event":"connected"}'], "unknown_provider"),
        (['{"event":"connected"}', '{"event":"media"}'], "unknown_provider"),
        (["x" * (64 * 1024 + 1)], "frame_too_large"),
    ],
)
def test_what_nobody_opens_with_is_refused(frames: list[str | bytes], code: str) -> None:
    detector = ProviderDetector()
    with pytest.raises(RemoteProtocolError) as info:
        for frame in frames:
            detector.feed(frame)
    assert info.value.code == code


def test_all_names_exist() -> None:
    import parley.protocols.phone_detect as module

    assert all(hasattr(module, name) for name in module.__all__)


# ----------------------------------------------------------- one shared endpoint


async def _shared_endpoint(ws: ServerConnection) -> None:
    """Detect the platform, run its protocol, answer one media frame in its own format."""
    detector = ProviderDetector()
    provider = None
    while provider is None:
        provider = detector.feed(await ws.recv())
    stream = STREAMS[provider]()
    for frame in detector.frames:
        stream.receive(frame)
    await ws.send(json.dumps({"provider": provider.value}))
    audio = await ws.recv()
    event = stream.receive(audio)
    if provider is Provider.VONAGE:
        (reply,) = stream.media(event.payload)
        await ws.send(reply)  # a binary frame
        await ws.send(stream.mark("m1"))
    else:
        payload = stream.audio(event) if provider is not Provider.TWILIO else event.payload
        await ws.send(stream.media(payload).decode())
        await ws.send(stream.mark("m1").decode())
    await ws.wait_closed()


async def test_four_platforms_on_one_real_endpoint() -> None:
    async with serve(_shared_endpoint, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]

        async def call(provider: Provider) -> None:
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                if provider is Provider.VONAGE:
                    vonage = VonageCaller()
                    await ws.send(vonage.connected())
                    assert json.loads(await ws.recv()) == {"provider": "vonage"}
                    await ws.send(vonage.audio(bytes(range(256)) * 2 + bytes(128)))
                    audio = vonage.receive(await ws.recv())
                    assert audio.payload == bytes(range(256)) * 2 + bytes(128)  # type: ignore[union-attr]
                    assert vonage.receive(await ws.recv()).payload == {"name": "m1"}  # type: ignore[union-attr]
                    return
                caller: TwilioCaller | TelnyxCaller | PlivoCaller
                if provider is Provider.TWILIO:
                    caller = TwilioCaller()
                    await ws.send(caller.connected().decode())
                    await ws.send(caller.start().decode())
                elif provider is Provider.TELNYX:
                    caller = TelnyxCaller()
                    await ws.send(caller.connected().decode())
                    await ws.send(caller.start().decode())
                else:
                    caller = PlivoCaller()
                    await ws.send(caller.start().decode())
                assert json.loads(await ws.recv()) == {"provider": provider.value}
                await ws.send(caller.media(b"\x11" * 160).decode())
                media = caller.receive(await ws.recv())
                assert media.payload == b"\x11" * 160  # type: ignore[union-attr]
                assert caller.receive(await ws.recv()).name == "m1"  # type: ignore[union-attr]

        await asyncio.wait_for(asyncio.gather(*(call(p) for p in Provider)), timeout=20)

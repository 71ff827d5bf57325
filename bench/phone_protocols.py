"""Wire cost per 20 ms frame of each phone protocol, against Twilio's in the same run.

Inbound: one ``receive()`` of a media frame as the platform sends it (JSON + base64
for Twilio, Telnyx and Plivo, a raw binary frame for Vonage), plus ``audio()`` where
the line needs it. Outbound: one media message for 20 ms of audio (Vonage: one
binary frame out of the framer). Frames come from each platform's caller module, so
the shapes are the documented ones. Cost: ``time.perf_counter_ns`` over 10,000 frames,
best mean of 7 repeats; ``*_vs_twilio`` are ratios to Twilio's same direction.

Run: ``python bench/phone_protocols.py`` (prints one JSON line).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from parley.protocols.plivo import Media as PlivoMedia
from parley.protocols.plivo import PlivoStream
from parley.protocols.plivo_caller import PlivoCaller
from parley.protocols.telnyx import Media as TelnyxMedia
from parley.protocols.telnyx import TelnyxStream
from parley.protocols.telnyx_caller import TelnyxCaller
from parley.protocols.twilio import TwilioStream
from parley.protocols.twilio_caller import TwilioCaller
from parley.protocols.vonage import VonageStream
from parley.protocols.vonage_caller import VonageCaller

FRAMES = 10_000
REPEATS = 7
ULAW = bytes(range(96, 256))  # 20 ms at 8 kHz
PCM16K = bytes(640)  # 20 ms at 16 kHz


def best_ns(run: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter_ns()
        run()
        best = min(best, (time.perf_counter_ns() - t0) / FRAMES)
    return best


def main() -> None:
    twilio_caller, twilio = TwilioCaller(), TwilioStream()
    twilio.receive(twilio_caller.connected())
    twilio.receive(twilio_caller.start())
    twilio_frames = [twilio_caller.media(ULAW).decode() for _ in range(FRAMES)]

    def twilio_in() -> None:
        receive = twilio.receive
        for frame in twilio_frames:
            receive(frame)

    telnyx_caller = TelnyxCaller()
    telnyx_start = [telnyx_caller.connected(), telnyx_caller.start()]
    telnyx_frames = [telnyx_caller.media(ULAW).decode() for _ in range(FRAMES)]

    def telnyx_in() -> None:
        stream = TelnyxStream()  # a fresh stream: chunk numbers must rise
        for start in telnyx_start:
            stream.receive(start)
        receive, audio = stream.receive, stream.audio
        for frame in telnyx_frames:
            media = receive(frame)
            assert type(media) is TelnyxMedia
            audio(media)

    plivo_caller, plivo = PlivoCaller(), PlivoStream()
    plivo.receive(plivo_caller.start())
    plivo_frames = [plivo_caller.media(ULAW).decode() for _ in range(FRAMES)]

    def plivo_in() -> None:
        receive, audio = plivo.receive, plivo.audio
        for frame in plivo_frames:
            media = receive(frame)
            assert type(media) is PlivoMedia
            audio(media)

    vonage_caller, vonage = VonageCaller(), VonageStream()
    vonage.receive(vonage_caller.connected())
    vonage_frames = [vonage_caller.audio(PCM16K) for _ in range(FRAMES)]

    def vonage_in() -> None:
        receive = vonage.receive
        for frame in vonage_frames:
            receive(frame)

    def out(build: Callable[[bytes], object], audio: bytes) -> Callable[[], None]:
        def run() -> None:
            for _ in range(FRAMES):
                build(audio)

        return run

    telnyx_out = TelnyxStream()
    telnyx_out.receive(telnyx_start[1])

    result: dict[str, object] = {
        "bench": "phone_protocols",
        "twilio_in_ns": best_ns(twilio_in),
        "telnyx_in_ns": best_ns(telnyx_in),
        "plivo_in_ns": best_ns(plivo_in),
        "vonage_in_ns": best_ns(vonage_in),
        "twilio_out_ns": best_ns(out(twilio.media, ULAW)),
        "telnyx_out_ns": best_ns(out(telnyx_out.media, ULAW)),
        "plivo_out_ns": best_ns(out(plivo.media, ULAW)),
        "vonage_out_ns": best_ns(out(vonage.media, PCM16K)),
    }
    for name in ("telnyx", "plivo", "vonage"):
        for way in ("in", "out"):
            ours, twilio_ns = result[f"{name}_{way}_ns"], result[f"twilio_{way}_ns"]
            assert isinstance(ours, float) and isinstance(twilio_ns, float)
            result[f"{name}_{way}_vs_twilio"] = ours / twilio_ns
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()

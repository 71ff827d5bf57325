"""Frame-size limits shared by the sans-I/O wire protocols.

A peer that sends a huge frame must cost us one ``len()``, not a JSON parse, so
every ``receive()`` checks the size before decoding. The limits are generous
next to what real peers send: a Twilio media frame is about 400 bytes (20 ms of
µ-law as base64 in JSON), a browser control frame a few hundred bytes, and a
browser audio frame of 20–40 ms of PCM16 at 24 kHz is 960–1,920 bytes.
"""

from __future__ import annotations

from typing import Final

from parley.errors import RemoteProtocolError

__all__ = [
    "MAX_AUDIO_FRAME_BYTES",
    "MAX_TEXT_FRAME_BYTES",
    "check_frame_size",
]

#: Largest JSON text frame accepted from a peer (64 KiB). For a ``str`` frame the
#: length is counted in characters; every control frame of these protocols is
#: ASCII in practice, where characters and bytes are the same.
MAX_TEXT_FRAME_BYTES: Final = 64 * 1024

#: Largest binary audio frame accepted from a browser (64 KiB): about 1.36 s of
#: PCM16 mono at 24 kHz, 0.68 s at 48 kHz.
MAX_AUDIO_FRAME_BYTES: Final = 64 * 1024


def check_frame_size(frame: str | bytes, limit: int, what: str) -> None:
    """Raise ``RemoteProtocolError(code="frame_too_large")`` if ``frame`` exceeds ``limit``."""
    if len(frame) > limit:
        raise RemoteProtocolError(
            f"{what} of {len(frame)} bytes exceeds the limit of {limit}",
            code="frame_too_large",
        )

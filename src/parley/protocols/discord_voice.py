"""Discord voice packets, sans-I/O: RTP framing, transport encryption, who is speaking.

Discord carries voice as RTP over UDP (reference/protocols.md §4): Opus at 48 kHz
stereo, one 20 ms frame per packet (timestamp + 960), payload type 120, one SSRC
per speaker; the voice gateway's ``SPEAKING`` (op 5) says which user an SSRC is.
Every packet is encrypted with the session's 32-byte ``secret_key`` in the mode the
gateway's ``SELECT_PROTOCOL`` agreed:

* ``aead_aes256_gcm_rtpsize`` (AES-256-GCM, ``cryptography``) and
  ``aead_xchacha20_poly1305_rtpsize`` (XChaCha20-Poly1305, PyNaCl): the nonce is a
  32-bit counter, big-endian, sent as the packet's last 4 bytes and zero-padded
  (to 12 and 24 bytes); the additional data is the unencrypted header — the 12 fixed
  bytes, the CSRCs and, with the X bit, the 4-byte extension header (profile,
  length); the extension's body is encrypted with the payload and is skipped after
  decryption ("rtpsize": the header is the RTP header's full size).
* ``xsalsa20_poly1305`` (PyNaCl ``SecretBox``, nonce = the 12-byte header padded to
  24): discontinued by Discord on 2024-11-18; kept to read older captures.

RTCP (payload types 200–204) shares the socket and is not voice: :meth:`VoiceCrypto.open`
returns None for it. Above the transport layer, since March 2026 Discord requires
DAVE, end-to-end MLS encryption of each Opus frame per sender: a
:class:`FrameDecryptor` seam takes that step (``davey``'s ``DaveSession.decrypt``);
:class:`Passthrough` is for sessions without it (and tests).

Errors are the peer's: ``RemoteProtocolError`` with ``bad_rtp`` (not an RTP voice
packet) or ``decrypt_failed`` (wrong key, tampered, or another mode).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from parley.errors import ConfigError, LocalProtocolError, RemoteProtocolError

__all__ = [
    "MODES",
    "OPUS_PAYLOAD_TYPE",
    "SAMPLES_PER_FRAME",
    "FrameDecryptor",
    "Mode",
    "Passthrough",
    "SpeakerMap",
    "VoiceCrypto",
    "VoicePacket",
    "rtp_header",
]

Mode = Literal["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize", "xsalsa20_poly1305"]
MODES: Final[tuple[Mode, ...]] = (
    "aead_aes256_gcm_rtpsize",
    "aead_xchacha20_poly1305_rtpsize",
    "xsalsa20_poly1305",
)
OPUS_PAYLOAD_TYPE: Final = 120
SAMPLES_PER_FRAME: Final = 960  # 20 ms at 48 kHz
_HEADER: Final = struct.Struct(">BBHII")
_TAG: Final = 16
_MAX_PACKET: Final = 1500
# A sequence number this far behind (mod 2^16), or equal, is late or a duplicate.
_LATE: Final = frozenset(
    {0, *range(0x8000, 0x10000)}
)  # one UDP datagram on Ethernet; Opus voice is ~100 bytes


def rtp_header(sequence: int, timestamp: int, ssrc: int) -> bytes:
    """The 12-byte RTP header Discord expects from a sender (version 2, PT 120)."""
    return _HEADER.pack(0x80, OPUS_PAYLOAD_TYPE, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)


@dataclass(frozen=True, slots=True)
class VoicePacket:
    """One decrypted voice packet: the Opus frame (still DAVE-encrypted, if DAVE is on)."""

    ssrc: int
    sequence: int
    timestamp: int
    opus: bytes


class VoiceCrypto:
    """One voice connection's transport encryption, both ways (``seal``/``open``)."""

    def __init__(self, mode: str, secret_key: bytes) -> None:
        if mode not in MODES:
            raise ConfigError(f"unsupported voice mode {mode!r} (one of {', '.join(MODES)})")
        if len(secret_key) != 32:
            raise ConfigError("a voice secret_key is 32 bytes", field="secret_key")
        self.mode: Mode = mode
        self._key = bytes(secret_key)
        self._nonce = 0
        import nacl.exceptions
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._failures: tuple[type[Exception], ...] = (
            InvalidTag,
            nacl.exceptions.CryptoError,
            ValueError,
        )
        self._aes = AESGCM(self._key) if mode == "aead_aes256_gcm_rtpsize" else None
        self._nonce_len = 12 if self._aes is not None else 24

    def _seal_aead(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        if self._aes is not None:
            return self._aes.encrypt(nonce, data, aad)
        import nacl.bindings as sodium

        out: bytes = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(data, aad, nonce, self._key)
        return out

    def _open_aead(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        if self._aes is not None:
            return self._aes.decrypt(nonce, data, aad)
        import nacl.bindings as sodium

        out: bytes = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(data, aad, nonce, self._key)
        return out

    def _seal_box(self, nonce: bytes, data: bytes) -> bytes:
        import nacl.bindings as sodium

        out: bytes = sodium.crypto_secretbox(data, nonce, self._key)
        return out

    def _open_box(self, nonce: bytes, data: bytes) -> bytes:
        import nacl.bindings as sodium

        out: bytes = sodium.crypto_secretbox_open(data, nonce, self._key)
        return out

    def seal(self, header: bytes, opus: bytes) -> bytes:
        """An encrypted packet of ``opus`` behind ``header`` (from :func:`rtp_header`)."""
        if self.mode == "xsalsa20_poly1305":
            return header + self._seal_box(header[:12].ljust(24, b"\0"), opus)
        counter = struct.pack(">I", self._nonce)
        self._nonce = (self._nonce + 1) & 0xFFFFFFFF
        if self._nonce == 0:
            raise LocalProtocolError("voice nonce wrapped: reconnect", code="nonce_exhausted")
        nonce = counter.ljust(self._nonce_len, b"\0")
        return header + self._seal_aead(nonce, opus, header) + counter

    def open(self, packet: bytes) -> VoicePacket | None:
        """Decrypt one datagram: the voice packet, or None for RTCP."""
        n = len(packet)
        if n > _MAX_PACKET:
            raise RemoteProtocolError(f"a {n}-byte voice datagram", code="frame_too_large")
        if n < 12 or packet[0] >> 6 != 2:
            raise RemoteProtocolError("not an RTP version 2 packet", code="bad_rtp")
        if 200 <= packet[1] <= 204:
            return None  # RTCP: sender/receiver reports, not voice
        first, _pt, seq, ts, ssrc = _HEADER.unpack_from(packet)
        fixed = 12 + 4 * (first & 0x0F)  # with the CSRCs
        extended = bool(first & 0x10)
        legacy = self.mode == "xsalsa20_poly1305"
        # "rtpsize": the extension header (4 bytes) is authenticated, not encrypted;
        # the legacy mode encrypts the whole extension.
        size = fixed + 4 if extended and not legacy else fixed
        if n < size + _TAG + (0 if legacy else 4):
            raise RemoteProtocolError(f"a {n}-byte voice packet is too short", code="bad_rtp")
        try:
            if legacy:
                plain = self._open_box(packet[:12].ljust(24, b"\0"), packet[size:])
            else:
                nonce = packet[-4:].ljust(self._nonce_len, b"\0")
                plain = self._open_aead(nonce, packet[size:-4], packet[:size])
        except self._failures:
            raise RemoteProtocolError(
                f"voice packet from SSRC {ssrc} does not decrypt ({self.mode})",
                code="decrypt_failed",
            ) from None
        if extended:  # skip the extension's body (and, in the legacy mode, its header)
            if legacy:
                (words,) = struct.unpack_from(">H", plain, 2)
                plain = plain[4 + 4 * words :]
            else:
                (words,) = struct.unpack_from(">H", packet, size - 2)
                plain = plain[4 * words :]
        return VoicePacket(ssrc, seq, ts, bytes(plain))


class FrameDecryptor(Protocol):
    """DAVE's per-sender frame decryption (``davey.DaveSession.decrypt``)."""

    def decrypt(self, user_id: int, frame: bytes) -> bytes | None:
        """The Opus frame, or None when it cannot be decrypted yet (keys in transition)."""
        ...


class Passthrough:
    """No DAVE (a session that negotiated none, a test): frames are already Opus."""

    def decrypt(self, user_id: int, frame: bytes) -> bytes | None:
        return frame


class SpeakerMap:
    """SSRC → user id, from the voice gateway's ``SPEAKING`` (op 5) and
    ``CLIENT_DISCONNECT`` events; per SSRC the last sequence number, to drop late and
    duplicated packets (UDP reorders: a late 20 ms frame is worse than a gap)."""

    def __init__(self) -> None:
        self._users: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self.late = 0

    def speaking(self, ssrc: int, user_id: int) -> None:
        self._users[ssrc] = user_id

    def left(self, user_id: int) -> None:
        for ssrc in [s for s, u in self._users.items() if u == user_id]:
            del self._users[ssrc]
            self._last.pop(ssrc, None)

    def user(self, packet: VoicePacket) -> int | None:
        """The speaker of an in-order packet; None for an unknown SSRC or a late one."""
        user = self._users.get(packet.ssrc)
        if user is None:
            return None
        last = self._last.get(packet.ssrc)
        if last is not None and (packet.sequence - last) & 0xFFFF in _LATE:
            self.late += 1
            return None
        self._last[packet.ssrc] = packet.sequence
        return user

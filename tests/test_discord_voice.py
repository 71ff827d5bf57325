"""Discord voice below the gateway: RTP framing and the transport encryption modes
(checked against packets built independently with ``cryptography`` and PyNaCl, in
the layout Discord's clients use), late and duplicated packets, and a voice
channel over real UDP sockets on loopback — two users, each speaking Opus packets,
each their own conversation (``guild:channel:user``) answered on the bot's one
voice, and a barge-in. What is not tested (no gateway here): the voice gateway's
handshake (IDENTIFY, SELECT_PROTOCOL, SESSION_DESCRIPTION with the key), IP
discovery, and DAVE's MLS decryption (docs/platforms.md)."""

from __future__ import annotations

import asyncio
import os
import struct
from typing import Any

import nacl.bindings as sodium
import nacl.secret
import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from parley.audio.opus import OpusDecoder, OpusEncoder
from parley.audio.pcm import mono_to_stereo
from parley.errors import RemoteProtocolError
from parley.events import Interrupted, Role
from parley.protocols.discord_voice import SpeakerMap, VoiceCrypto, VoicePacket, rtp_header
from parley.server.calls import CallStatus
from parley.server.discord import discord_speaker
from parley.testing.conformance import REPLY, conformance_app
from parley.testing.fakes import silence, tone
from parley.transports.discord import DiscordVoiceHub, session_id

KEY = bytes(range(32))
OPUS = b"\xfc\xff\xfe" + os.urandom(60)


def discord_packet(mode: str, seq: int, ssrc: int, opus: bytes, counter: int, ext: bool) -> bytes:
    """A packet as a Discord client sends it, built without parley's code."""
    first = 0x90 if ext else 0x80
    header = struct.pack(">BBHII", first, 0x78, seq, seq * 960, ssrc)
    body = opus
    if ext:  # a one-word header extension (0xBEDE: one-byte headers), as clients send
        header += b"\xbe\xde\x00\x01"
        body = b"\x10\xaa\x00\x00" + opus
    nonce4 = struct.pack(">I", counter)
    if mode == "aead_aes256_gcm_rtpsize":
        sealed = AESGCM(KEY).encrypt(nonce4 + bytes(8), body, header)
    else:
        sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
            body, header, nonce4 + bytes(20), KEY
        )
    return header + sealed + nonce4


@pytest.mark.parametrize("mode", ["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize"])
@pytest.mark.parametrize("ext", [False, True])
def test_rtpsize_modes_open_what_discord_sends(mode: str, ext: bool) -> None:
    crypto = VoiceCrypto(mode, KEY)
    packet = crypto.open(discord_packet(mode, 7, 4242, OPUS, 99, ext))
    assert packet == VoicePacket(ssrc=4242, sequence=7, timestamp=7 * 960, opus=OPUS)
    tampered = bytearray(discord_packet(mode, 7, 4242, OPUS, 99, ext))
    tampered[3] ^= 1  # the header is authenticated too
    with pytest.raises(RemoteProtocolError, match="does not decrypt") as info:
        crypto.open(bytes(tampered))
    assert info.value.code == "decrypt_failed"
    with pytest.raises(RemoteProtocolError):
        VoiceCrypto(mode, bytes(32)).open(discord_packet(mode, 7, 4242, OPUS, 99, ext))


@pytest.mark.parametrize("mode", ["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize"])
def test_seal_is_what_discord_opens(mode: str) -> None:
    crypto = VoiceCrypto(mode, KEY)
    header = rtp_header(65535, 2**32 - 960, 11)
    first, second = crypto.seal(header, OPUS), crypto.seal(header, OPUS)
    for packet, counter in ((first, 0), (second, 1)):
        assert packet[:12] == header and packet[-4:] == struct.pack(">I", counter)
        nonce = packet[-4:] + bytes(8 if mode.startswith("aead_aes") else 20)
        if mode.startswith("aead_aes"):
            plain = AESGCM(KEY).decrypt(nonce, packet[12:-4], header)
        else:
            plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
                packet[12:-4], header, nonce, KEY
            )
        assert plain == OPUS
    assert header[1] == 0x78 and header[0] == 0x80


def test_the_discontinued_xsalsa20_mode_reads_old_captures() -> None:
    header = struct.pack(">BBHII", 0x80, 0x78, 1, 960, 5)
    box = nacl.secret.SecretBox(KEY)
    packet = header + box.encrypt(OPUS, header + bytes(12)).ciphertext
    crypto = VoiceCrypto("xsalsa20_poly1305", KEY)
    assert crypto.open(packet) == VoicePacket(5, 1, 960, OPUS)
    assert crypto.open(crypto.seal(header, OPUS)) == VoicePacket(5, 1, 960, OPUS)


def test_rtcp_and_garbage() -> None:
    crypto = VoiceCrypto("aead_aes256_gcm_rtpsize", KEY)
    assert crypto.open(b"\x81\xc9\x00\x07" + bytes(28)) is None  # a receiver report
    for bad in (b"", b"\x00" * 40, b"\x80\x78" + bytes(10), b"\x80\x78" + bytes(2000)):
        with pytest.raises(RemoteProtocolError):
            crypto.open(bad)
    with pytest.raises(Exception, match="32 bytes"):
        VoiceCrypto("aead_aes256_gcm_rtpsize", b"short")
    with pytest.raises(Exception, match="unsupported voice mode"):
        VoiceCrypto("plain", KEY)


def test_late_and_duplicate_packets_are_dropped() -> None:
    speakers = SpeakerMap()
    speakers.speaking(1, 100)

    def p(seq: int, ssrc: int = 1) -> VoicePacket:
        return VoicePacket(ssrc, seq, 0, b"x")

    assert [speakers.user(p(s)) for s in (65534, 65535, 0, 1)] == [100] * 4  # wraps
    assert speakers.user(p(1)) is None and speakers.user(p(65535)) is None
    assert speakers.user(p(5, ssrc=2)) is None  # nobody announced SSRC 2
    assert speakers.late == 2
    speakers.left(100)
    assert speakers.user(p(2)) is None


# ------------------------------------------------------------- a channel over UDP


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, on: Any) -> None:
        self.on = on

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.on(data, addr)


class VoiceServer:
    """Discord's voice server for the test: sends users' packets, keeps the bot's."""

    def __init__(self, mode: str) -> None:
        self.crypto = VoiceCrypto(mode, KEY)
        self.decoder = OpusDecoder(48000, channels=1)
        self.heard = bytearray()  # the bot's voice, decoded
        self.received = asyncio.Event()
        self.transport: Any = None
        self.sequence: dict[int, int] = {}
        self.encoders: dict[int, OpusEncoder] = {}

    def on(self, data: bytes, addr: Any) -> None:
        packet = self.crypto.open(data)
        assert packet is not None and packet.ssrc == 777  # the bot's SSRC
        self.heard += self.decoder.decode(packet.opus)
        self.received.set()

    async def say(self, ssrc: int, pcm: bytes, to: Any, speed: float = 4.0) -> None:
        encoder = self.encoders.setdefault(ssrc, OpusEncoder(48000, channels=2))
        for opus in encoder.encode(mono_to_stereo(pcm)):
            seq = self.sequence.get(ssrc, 0)
            self.sequence[ssrc] = seq + 1
            self.transport.sendto(self.crypto.seal(rtp_header(seq, seq * 960, ssrc), opus), to)
            await asyncio.sleep(0.02 / speed)  # a speaker's pace, ``speed`` × real time


def loud_ms(pcm: bytes) -> float:
    x = np.abs(np.frombuffer(bytes(pcm), "<i2").astype(np.int32)).reshape(-1, 960)
    return float((x.max(axis=1) > 2000).sum() * 20)


async def test_each_user_is_a_conversation_on_the_bots_one_voice() -> None:
    app = conformance_app()
    interrupted = asyncio.Event()

    @app.on_event(Interrupted)
    async def on_interrupted(session: str, event: Interrupted) -> None:
        interrupted.set()

    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()
    server = VoiceServer("aead_aes256_gcm_rtpsize")
    server.transport, _ = await loop.create_datagram_endpoint(
        lambda: _Datagrams(server.on), local_addr=("127.0.0.1", 0)
    )
    server_addr = server.transport.get_extra_info("sockname")
    hub: DiscordVoiceHub | None = None

    def to_hub(data: bytes, addr: Any) -> None:
        assert hub is not None
        hub.datagram_received(data, addr)
        arrived.set()

    bot, _ = await loop.create_datagram_endpoint(
        lambda: _Datagrams(to_hub), local_addr=("127.0.0.1", 0)
    )
    bot_addr = bot.get_extra_info("sockname")
    hub = DiscordVoiceHub(
        guild_id=1,
        channel_id=2,
        ssrc=777,
        crypto=VoiceCrypto("aead_aes256_gcm_rtpsize", KEY),
        link=bot,
        address=server_addr,
        on_speaker=discord_speaker(app.switchboard),
    )
    sender = asyncio.ensure_future(hub.run())
    try:
        hub.speaking(1001, 100)
        hub.speaking(2002, 200)
        await server.say(3003, tone(200, 48000), bot_addr)  # unannounced: ignored
        await asyncio.gather(
            server.say(1001, tone(600, 48000) + silence(900, 48000), bot_addr),
            server.say(
                2002, silence(300, 48000) + tone(600, 48000) + silence(900, 48000), bot_addr
            ),
        )
        records = {r.id: r for r in app.calls.records()}
        assert set(records) == {session_id(1, 2, 100), session_id(1, 2, 200)}
        assert {r.kind for r in records.values()} == {"discord"}
        assert records["1:2:100"].user_id == "100"
        # The bot answers out loud: Opus packets under its SSRC, decoded here.
        async with asyncio.timeout(15):
            while loud_ms(server.heard) < 600:
                server.received.clear()
                await server.received.wait()
        # User 100 talks over the reply: barge-in on that conversation only.
        await server.say(1001, tone(600, 48000) + silence(300, 48000), bot_addr, speed=1.0)
        first = records["1:2:100"]
        await asyncio.wait_for(interrupted.wait(), 10)
        for record in records.values():
            assert record.journal is not None
            user = [t.text for t in record.journal.transcript if t.role is Role.USER]
            assert user[0] == "hello there"
        cut = next(t for t in first.journal.transcript if t.interrupted)  # type: ignore[union-attr]
        assert REPLY.startswith(cut.text) and cut.text != REPLY
        assert hub.bad_packets == 0 and hub.packets_out > 30
        # A forged datagram is counted and dropped; the calls go on.
        bot_socket: Any = server.transport
        arrived.clear()
        bot_socket.sendto(b"\x80\x78" + os.urandom(60), bot_addr)
        await asyncio.wait_for(arrived.wait(), 5)
        assert hub.bad_packets == 1
        hub.left(100)
        async with asyncio.timeout(5):
            await first.finished.wait()
        assert first.status is CallStatus.ENDED
        assert records["1:2:200"].status is CallStatus.LIVE
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        bot.close()
        server.transport.close()
    assert all(r.status is CallStatus.ENDED for r in app.calls.records())

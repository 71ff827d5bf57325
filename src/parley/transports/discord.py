"""A Discord voice channel: every speaking user their own conversation, one voice out.

Below the gateway and above the UDP socket (which the Discord library owns: py-cord,
see docs/platforms.md). :class:`DiscordVoiceHub` is fed the voice server's datagrams
(``datagram_received``) and the gateway's ``SPEAKING``/``CLIENT_DISCONNECT`` facts
(``speaking``, ``left``); it decrypts each packet
(:class:`~parley.protocols.discord_voice.VoiceCrypto`, then DAVE through a
:class:`~parley.protocols.discord_voice.FrameDecryptor`), drops late and duplicated
ones, and routes the Opus frame to its user's :class:`DiscordUserStream` — made on
the user's first packet and handed to ``on_speaker`` (the server runs a call on it,
``parley.server.discord``), session id ``guild:channel:user``. A user's stream
decodes Opus (48 kHz stereo → PCM16 mono, one decoder per user) on its inbound path.

Out, the bot has one voice: :meth:`DiscordVoiceHub.run` ticks every 20 ms, takes a
frame from each user's :class:`~parley.transports.playout.PlayoutBuffer` (replies
to two users at once are mixed), encodes it as Opus 48 kHz stereo, frames it as RTP
(sequence +1, timestamp +960, the bot's SSRC), seals it and sends it. What went out
is each stream's playback truth; a barge-in drops that user's unsent reply.

A datagram that does not decrypt or parse is counted and dropped: one bad packet
never ends a call. Per packet: one decrypt, one dict lookup, one queue put; the Opus
decode happens in the consumer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final, Protocol

import numpy as np

from parley.audio.format import AudioFormat
from parley.audio.opus import OpusDecoder, OpusEncoder
from parley.audio.pcm import mono_to_stereo
from parley.conversation.state import ConversationState
from parley.conversation.stream import Inbound, PlaybackReport
from parley.errors import RemoteProtocolError
from parley.events import Event
from parley.protocols.discord_voice import (
    SAMPLES_PER_FRAME,
    FrameDecryptor,
    Passthrough,
    SpeakerMap,
    VoiceCrypto,
    rtp_header,
)
from parley.tasks import cancel_and_wait
from parley.transports.platform import Caller
from parley.transports.playout import PlayoutBuffer

__all__ = ["DiscordUserStream", "DiscordVoiceHub", "VoiceLink", "session_id"]

log = logging.getLogger("parley.transports")

RATE: Final = 48000
_FRAME_BYTES: Final = SAMPLES_PER_FRAME * 2  # 20 ms of PCM16 mono at 48 kHz
_MAX_QUEUED: Final = 50  # 1 s of a user's voice waiting: newer packets are dropped


def session_id(guild_id: int, channel_id: int, user_id: int) -> str:
    """The conversation id of one user in one voice channel (seed 001)."""
    return f"{guild_id}:{channel_id}:{user_id}"


class VoiceLink(Protocol):
    """The voice UDP socket's sending side (an asyncio ``DatagramTransport`` has it)."""

    def sendto(self, data: bytes, addr: tuple[str, int] | None = None, /) -> None: ...


class DiscordUserStream:
    """One user's side of the channel as a ``PlatformStream`` (PCM16 mono 48 kHz)."""

    def __init__(self, guild_id: int, channel_id: int, user_id: int) -> None:
        self.user_id = user_id
        self.session_id = session_id(guild_id, channel_id, user_id)
        self._queue: asyncio.Queue[bytes | PlaybackReport | None] = asyncio.Queue()
        self._queued_audio = 0
        self.dropped = 0
        self.playout = PlayoutBuffer(RATE, self._played)
        self._decoder: OpusDecoder | None = None
        self.closed = False

    # -- fed by the hub ------------------------------------------------------------

    def push_opus(self, frame: bytes) -> None:
        if self.closed:
            return
        if self._queued_audio >= _MAX_QUEUED:
            self.dropped += 1
            return
        self._queued_audio += 1
        self._queue.put_nowait(frame)

    def _played(self, response_id: str, played_ms: float, done: bool) -> None:
        if not self.closed:
            self._queue.put_nowait(PlaybackReport(response_id, played_ms))

    def hang_up(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)

    # -- PlatformStream ------------------------------------------------------------

    @property
    def input_format(self) -> AudioFormat:
        return AudioFormat("pcm16", RATE)

    @property
    def output_format(self) -> AudioFormat:
        return AudioFormat("pcm16", RATE)

    async def handshake(self) -> Caller | None:
        return Caller(user_id=str(self.user_id), call_sid=self.session_id)

    async def inbound(self) -> AsyncIterator[Inbound]:
        decoder = self._decoder = self._decoder or OpusDecoder(RATE, channels=1)
        get = self._queue.get
        while (item := await get()) is not None:
            if isinstance(item, bytes):
                self._queued_audio -= 1
                try:
                    pcm = decoder.decode(item)
                except RemoteProtocolError:
                    self.dropped += 1  # one corrupt frame: a 20 ms gap, not a dropped call
                    continue
                yield pcm
            else:
                yield item

    async def send_audio(self, audio: bytes, *, response_id: str, text: str = "") -> None:
        if not self.closed and audio:
            self.playout.push(audio, response_id)

    async def clear(self, response_id: str) -> None:
        self.playout.clear()

    async def ready(self, call_id: str) -> None:
        return

    async def reject(self, code: str, message: str, close_code: int) -> None:
        self.hang_up()

    async def show(self, event: Event, state: ConversationState) -> None:
        return  # a voice channel only hears

    async def close(self) -> None:
        self.hang_up()

    async def end(self, code: int, reason: str) -> None:
        self.hang_up()


class DiscordVoiceHub:
    """One voice connection (see the module docstring)."""

    def __init__(
        self,
        *,
        guild_id: int,
        channel_id: int,
        ssrc: int,
        crypto: VoiceCrypto,
        link: VoiceLink,
        on_speaker: Callable[[DiscordUserStream], Awaitable[None]],
        dave: FrameDecryptor | None = None,
        address: tuple[str, int] | None = None,
    ) -> None:
        self.guild_id, self.channel_id, self.ssrc = guild_id, channel_id, ssrc
        self.crypto = crypto
        self.link = link
        self.address = address
        self.dave: FrameDecryptor = dave or Passthrough()
        self.speakers = SpeakerMap()
        self.streams: dict[int, DiscordUserStream] = {}
        self._on_speaker = on_speaker
        self._calls: set[asyncio.Task[None]] = set()
        self._encoder: OpusEncoder | None = None
        self._sequence = 0
        self._timestamp = 0
        self.bad_packets = 0
        self.undecrypted_frames = 0
        self.packets_out = 0

    # -- the gateway's facts ---------------------------------------------------------

    def speaking(self, ssrc: int, user_id: int) -> None:
        self.speakers.speaking(ssrc, user_id)

    def left(self, user_id: int) -> None:
        self.speakers.left(user_id)
        stream = self.streams.pop(user_id, None)
        if stream is not None:
            stream.hang_up()

    # -- inbound (called by the socket's protocol, on the loop) -----------------------

    def datagram_received(self, data: bytes, addr: object = None) -> None:
        try:
            packet = self.crypto.open(data)
        except RemoteProtocolError:
            self.bad_packets += 1
            return
        if packet is None:
            return  # RTCP
        user = self.speakers.user(packet)
        if user is None:
            return  # a late packet, or an SSRC nobody announced yet
        frame = self.dave.decrypt(user, packet.opus)
        if frame is None:
            self.undecrypted_frames += 1
            return
        stream = self.streams.get(user)
        if stream is None:
            stream = self.streams[user] = DiscordUserStream(self.guild_id, self.channel_id, user)
            task = asyncio.ensure_future(self._call(stream))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)
        stream.push_opus(frame)

    async def _call(self, stream: DiscordUserStream) -> None:
        try:
            await self._on_speaker(stream)
        finally:
            if self.streams.get(stream.user_id) is stream:
                del self.streams[stream.user_id]  # the next packet starts a new call

    # -- outbound -----------------------------------------------------------------------

    def tick(self) -> list[bytes]:
        """One 20 ms step of the bot's voice: the sealed packets to send (none in silence)."""
        frames = [f for s in self.streams.values() if (f := s.playout.take(_FRAME_BYTES))]
        if not frames:
            return []
        if len(frames) == 1:
            pcm = frames[0]
        else:  # two users answered at once: mix, saturating
            total = np.sum([np.frombuffer(f, "<i2").astype(np.int32) for f in frames], axis=0)
            pcm = np.clip(total, -32768, 32767).astype("<i2").tobytes()
        encoder = self._encoder = self._encoder or OpusEncoder(RATE, channels=2)
        sealed = []
        for opus in encoder.encode(mono_to_stereo(pcm)):
            header = rtp_header(self._sequence, self._timestamp, self.ssrc)
            self._sequence = (self._sequence + 1) & 0xFFFF
            self._timestamp = (self._timestamp + SAMPLES_PER_FRAME) & 0xFFFFFFFF
            sealed.append(self.crypto.seal(header, opus))
        self.packets_out += len(sealed)
        return sealed

    async def run(self) -> None:
        """Send the bot's voice every 20 ms until cancelled (then end every call)."""
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        try:
            while True:
                for packet in self.tick():
                    self.link.sendto(packet, self.address)
                next_t += 0.02
                await asyncio.sleep(max(0.0, next_t - loop.time()))
        finally:
            await self.close()

    async def close(self) -> None:
        for stream in list(self.streams.values()):
            stream.hang_up()
        for task in list(self._calls):
            await asyncio.wait({task}, timeout=5)
            if not task.done():
                await cancel_and_wait(task)

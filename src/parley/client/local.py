"""``parley local``: talk to the offline cascade through this machine's microphone and
speaker — no server, no socket.

:class:`DeviceCallStream` is the local device as a
:class:`~parley.conversation.CallStream`: its inbound audio is an
:class:`~parley.client.devices.AudioSource` (the sound card through ``sounddevice``
and PortAudio, the same :class:`~parley.client.devices.SoundDeviceMicrophone` that
``parley talk`` uses, or a WAV), its replies go to an
:class:`~parley.client.devices.AudioSink` (:class:`SoundDeviceSpeaker`, or a WAV),
and the speaker's own count of what it has played becomes the playback reports a
barge-in truncates at. A :class:`~parley.conversation.Conversation` binds it to an
engine (the cascade built from the settings) exactly as a phone call's stream.

There is no echo canceller between the speaker and the microphone here: use
headphones, or the agent hears itself and barges in on its own replies.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from parley.audio.format import AudioFormat
from parley.conversation.session import Conversation
from parley.conversation.stream import Inbound, PlaybackReport
from parley.engines.seams import Engine
from parley.events import Event, ResponseDone, Role, TranscriptFinal

from .devices import AudioSink, AudioSource

__all__ = ["DeviceCallStream", "run_local"]


class DeviceCallStream:
    """A microphone and a speaker as one call's stream (see the module docstring)."""

    def __init__(self, microphone: AudioSource, speaker: AudioSink) -> None:
        self.microphone = microphone
        self.speaker = speaker
        #: Set once the microphone has nothing more to say (a WAV played out).
        self.input_done = asyncio.Event()
        self._stop = asyncio.Event()
        self._response = ""
        self._start_ms = 0.0  # where the current response begins on the speaker's clock
        self._written_ms = 0.0
        self._reported_ms = -1.0

    @property
    def input_format(self) -> AudioFormat:
        return AudioFormat("pcm16", self.microphone.sample_rate)

    @property
    def output_format(self) -> AudioFormat:
        return AudioFormat("pcm16", self.speaker.sample_rate)

    def stop(self) -> None:
        """Hang up: the inbound iterator ends, so the conversation does."""
        self._stop.set()

    def _progress(self) -> PlaybackReport | None:
        if not self._response:
            return None
        played = min(max(0.0, self.speaker.played_ms - self._start_ms), self._written_ms)
        if played == self._reported_ms:
            return None
        self._reported_ms = played
        return PlaybackReport(self._response, played)

    async def inbound(self) -> AsyncIterator[Inbound]:
        async for chunk in self.microphone.chunks():
            if self._stop.is_set():
                return
            yield chunk
            report = self._progress()  # once per microphone chunk: 50 a second
            if report is not None:
                yield report
        self.input_done.set()
        while not self._stop.is_set():  # the file is spoken: keep listening to the speaker
            try:
                await asyncio.wait_for(self._stop.wait(), 0.05)
            except TimeoutError:
                report = self._progress()
                if report is not None:
                    yield report

    async def send_audio(self, audio: bytes, *, response_id: str, text: str = "") -> None:
        if response_id != self._response:
            sp = self.speaker
            self._response = response_id
            self._start_ms = sp.played_ms + sp.queued_ms  # it plays after what is queued
            self._written_ms = 0.0
            self._reported_ms = -1.0
        self.speaker.write(audio)
        self._written_ms += len(audio) / 2 / self.speaker.sample_rate * 1000

    async def clear(self, response_id: str) -> None:
        self.speaker.clear()

    async def close(self) -> None:
        self._stop.set()
        await self.microphone.close()
        await self.speaker.close()


async def run_local(
    engine: Engine,
    microphone: AudioSource,
    speaker: AudioSink,
    *,
    duration_s: float | None = None,
    echo: Callable[[str], object] = print,
) -> Conversation:
    """Talk until Ctrl-C, ``duration_s``, or — when the microphone runs out (a WAV) —
    the answer after it has played. Prints each final transcript through ``echo``."""
    stream = DeviceCallStream(microphone, speaker)
    answered = asyncio.Event()

    async def on_event(_conv: Conversation, event: Event) -> None:
        if isinstance(event, TranscriptFinal) and event.role is Role.USER and event.text:
            echo(f"you: {event.text}")
        elif isinstance(event, ResponseDone) and event.text:
            echo(f"agent: {event.text}")
            answered.set()

    conversation = Conversation(stream, engine, on_event=on_event)

    async def until_answered() -> None:
        await stream.input_done.wait()
        await answered.wait()
        # Let the reply play out: the speaker's queue empties at its own pace.
        await asyncio.sleep(speaker.queued_ms / 1000 + 0.1)
        stream.stop()

    watcher = asyncio.ensure_future(until_answered())
    try:
        async with asyncio.timeout(duration_s):
            await conversation.run()
    except TimeoutError:
        pass
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await stream.close()
    return conversation

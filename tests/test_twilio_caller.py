"""The Twilio side of Media Streams: frames the server half accepts, and a real call.

``TwilioCaller`` frames go through the server's ``TwilioStream`` and back; the
asyncio client places a real call over a loopback ``websockets`` server whose
Twilio handling is ``TwilioStream`` itself, so both halves meet on a real socket.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from parley.client import CallFailed, place_call, trim_trailing_silence
from parley.errors import LocalProtocolError, RemoteProtocolError
from parley.protocols.twilio import (
    DTMF,
    Connected,
    Mark,
    Media,
    Start,
    Stop,
    TwilioStream,
)
from parley.protocols.twilio_caller import (
    Clear,
    OutboundMark,
    OutboundMedia,
    Playout,
    TwilioCaller,
)

# --------------------------------------------------------------------- sans-I/O


def test_frames_match_the_wire_format_and_the_server_half_accepts_them() -> None:
    caller = TwilioCaller(custom_parameters={"token": "abc123"}, first_timestamp=52)
    server = TwilioStream()

    frame = caller.connected()
    assert json.loads(frame) == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    assert isinstance(server.receive(frame), Connected)

    frame = caller.start()
    raw = json.loads(frame)
    assert raw["sequenceNumber"] == "1"  # numbers are strings on the wire
    assert raw["streamSid"] == raw["start"]["streamSid"] == caller.stream_sid
    assert caller.stream_sid.startswith("MZ") and len(caller.stream_sid) == 34
    assert raw["start"]["mediaFormat"] == {
        "encoding": "audio/x-mulaw",
        "sampleRate": 8000,
        "channels": 1,
    }
    start = server.receive(frame)
    assert isinstance(start, Start)
    assert start.custom_parameters == {"token": "abc123"}
    assert (start.call_sid, start.account_sid) == (caller.call_sid, caller.account_sid)

    payloads = [bytes([i]) * 160 for i in range(3)]
    for i, payload in enumerate(payloads):
        frame = caller.media(payload)
        raw = json.loads(frame)
        assert raw["sequenceNumber"] == str(2 + i)
        assert raw["media"]["chunk"] == str(1 + i)
        assert raw["media"]["timestamp"] == str(52 + 20 * i)
        assert raw["media"]["track"] == "inbound"
        media = server.receive(frame)
        assert isinstance(media, Media)
        assert (media.payload, media.chunk, media.timestamp) == (payload, 1 + i, 52 + 20 * i)
    assert server.last_sequence_number == 4
    # An explicit timestamp (a real clock) wins; the next one follows on from it.
    media = server.receive(caller.media(b"\xff" * 160, timestamp=1000))
    assert isinstance(media, Media) and media.timestamp == 1000
    assert caller.timestamp_ms == 1020

    digit = server.receive(caller.dtmf("#"))
    assert isinstance(digit, DTMF) and digit.digit == "#"
    echo = server.receive(caller.mark("parley-1"))
    assert isinstance(echo, Mark) and echo.name == "parley-1"
    stop = server.receive(caller.stop())
    assert isinstance(stop, Stop) and stop.call_sid == caller.call_sid
    assert server.last_sequence_number == caller.sequence_number == 8


def test_server_frames_parse_into_events() -> None:
    caller = TwilioCaller()
    server = TwilioStream()
    server.receive(caller.connected())
    server.receive(caller.start())
    audio = bytes(range(256)) * 3
    assert caller.receive(server.media(audio)) == OutboundMedia(payload=audio)
    assert caller.receive(server.media(audio).decode()) == OutboundMedia(payload=audio)
    assert caller.receive(server.mark("resp-1-chunk-7")) == OutboundMark(name="resp-1-chunk-7")
    assert isinstance(caller.receive(server.clear()), Clear)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"{not json", "bad_json"),
        (b"[]", "invalid_message"),
        (b'{"event":"media","media":{"payload":"AAA="}}', "invalid_message"),  # no sid
        (b'{"event":"media","streamSid":"SID","media":{"payload":"!!"}}', "invalid_message"),
        (b'{"event":"hangup","streamSid":"SID"}', "invalid_message"),
        (b'{"event":"mark","streamSid":"SID","mark":{"name":""}}', "invalid_message"),
        (b'{"event":"clear","streamSid":"MZ-someone-else"}', "stream_sid_mismatch"),
    ],
)
def test_bad_server_frames_raise_typed_errors(frame: bytes, code: str) -> None:
    caller = TwilioCaller(stream_sid="SID")
    with pytest.raises(RemoteProtocolError) as info:
        caller.receive(frame)
    assert info.value.code == code


def test_out_of_order_use_is_a_local_error() -> None:
    caller = TwilioCaller()
    with pytest.raises(LocalProtocolError):
        caller.media(b"\xff" * 160)
    caller.connected()
    with pytest.raises(LocalProtocolError):
        caller.connected()
    caller.start()
    with pytest.raises(LocalProtocolError):
        caller.dtmf("x")
    caller.stop()
    with pytest.raises(LocalProtocolError):
        caller.mark("late")


def test_playout_echoes_marks_when_their_audio_has_played() -> None:
    p = Playout()
    p.push_audio(800, now=10.0)  # 100 ms of audio
    p.push_mark("a", now=10.0)
    p.push_audio(1600, now=10.05)  # 200 ms more, queued behind the first
    p.push_mark("b", now=10.05)
    assert p.due(10.099) == []
    assert p.due(10.1) == ["a"]
    assert p.due(10.299) == []
    assert p.due(10.3) == ["b"]
    assert p.idle(10.3)
    # Underrun: audio arriving after the buffer ran dry plays from its arrival.
    p.push_audio(160, now=11.0)
    p.push_mark("c", now=11.0)
    assert p.due(11.019) == [] and p.due(11.02) == ["c"]
    # Clear: pending marks come back at once, unplayed audio is dropped.
    p.push_audio(8000, now=12.0)  # one second
    p.push_mark("d", now=12.0)
    p.push_mark("e", now=12.0)
    assert p.clear(12.25) == ["d", "e"]
    assert p.dropped_bytes == 6000
    assert p.idle(12.25) and p.due(20.0) == []


# ------------------------------------------------------------ a call on a real socket


class _TwilioEcho:
    """A tiny bidirectional Media Streams server: echoes caller audio with marks.

    It answers each burst of loud caller audio, once the caller falls silent, with
    that audio (µ-law as received) in 100 ms media messages, each followed by a mark,
    and records everything it parsed — the server half is ``TwilioStream``.
    """

    def __init__(self, *, clear_after_ms: float | None = None) -> None:
        self.events: list[object] = []
        self.echoed_marks: list[str] = []
        self.sent_marks: list[str] = []
        self.clear_after_ms = clear_after_ms

    async def handler(self, ws: ServerConnection) -> None:
        stream = TwilioStream()
        heard = bytearray()
        quiet = 0
        async for frame in ws:
            event = stream.receive(frame)
            self.events.append(event)
            if isinstance(event, Mark):
                self.echoed_marks.append(event.name)
            if not isinstance(event, Media):
                continue
            loud = any(b < 0xF0 for b in event.payload)  # µ-law 0xFF/0x7F ≈ silence
            if loud:
                heard += event.payload
                quiet = 0
                continue
            quiet += 1
            if heard and quiet == 10:  # 200 ms of silence: the turn ended
                await self._reply(ws, stream, bytes(heard))
                heard.clear()

    async def _reply(self, ws: ServerConnection, stream: TwilioStream, audio: bytes) -> None:
        for i in range(0, len(audio), 800):
            await ws.send(stream.media(audio[i : i + 800]), text=True)
            name = f"m{len(self.sent_marks) + 1}"
            self.sent_marks.append(name)
            await ws.send(stream.mark(name), text=True)
        if self.clear_after_ms is not None:
            await asyncio.sleep(self.clear_after_ms / 1000)  # the server's timing: a model
            await ws.send(stream.clear(), text=True)


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[_TwilioEcho, Server]]:
    app = _TwilioEcho()
    async with serve(app.handler, "127.0.0.1", 0) as server:
        yield app, server


def _url(server: Server) -> str:
    host, port = next(iter(server.sockets)).getsockname()[:2]
    return f"ws://{host}:{port}/twilio/stream"


def _tone(ms: int) -> bytes:
    # Alternating loud µ-law codes (0x00 ≈ -32124, 0x80 ≈ +32124): obviously speech-loud.
    return bytes([0x00, 0x80]) * (ms * 4)


async def test_place_call_measures_the_reply_and_echoes_marks_after_playback(
    echo_server: tuple[_TwilioEcho, Server],
) -> None:
    app, server = echo_server
    speech = _tone(300)
    result = await place_call(
        _url(server),
        [speech, _tone(200)],
        token="tok-1",
        lead_silence_s=0.1,
        trailing_silence_s=0.3,
        reply_gap_s=0.2,
        reply_timeout_s=5.0,
    )
    assert result.protocol_error is None and result.close_code is None
    assert [bytes(t.reply_ulaw) for t in result.turns] == [speech, _tone(200)]
    first = result.turns[0]
    assert first.latency_ms is not None
    # The server answers after 200 ms of silence (10 frames); allow for scheduling.
    assert 150 <= first.latency_ms <= 600, first.latency_ms
    # Every mark came back, in order, only after its audio had played.
    assert app.echoed_marks == app.sent_marks and len(app.sent_marks) == 3 + 2
    assert result.marks_echoed == result.marks_received == 5

    start = next(e for e in app.events if isinstance(e, Start))
    assert start.custom_parameters == {"token": "tok-1"}
    assert isinstance(app.events[0], Connected) and isinstance(app.events[-1], Stop)
    media = [e for e in app.events if isinstance(e, Media)]
    assert [m.chunk for m in media] == list(range(1, len(media) + 1))
    assert len(media) == result.frames_sent


async def test_marks_are_echoed_at_once_on_clear() -> None:
    app = _TwilioEcho(clear_after_ms=50)
    async with serve(app.handler, "127.0.0.1", 0) as server:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        result = await place_call(
            _url(server),
            [_tone(1000)],
            lead_silence_s=0.0,
            trailing_silence_s=0.3,
            reply_gap_s=0.1,
        )
        elapsed = loop.time() - t0
    turn = result.turns[0]
    assert turn.clears == 1
    assert app.echoed_marks == app.sent_marks and len(app.sent_marks) == 10
    # One second of reply was cleared after ~50 ms: the call did not wait for it to play
    # (1 s speech + 0.3 s trailing silence; playing it out would add about a second).
    assert turn.reply_ms == 1000
    assert elapsed < 1.0 + 0.3 + 0.5, elapsed


async def test_a_loopback_line_that_streams_silence_still_ends_each_turn() -> None:
    """A server that echoes every frame (silence too) never goes quiet; turns still end."""

    async def loopback(ws: ServerConnection) -> None:
        stream = TwilioStream()
        async for frame in ws:
            event = stream.receive(frame)
            if isinstance(event, Media):
                await ws.send(stream.media(event.payload), text=True)

    async with serve(loopback, "127.0.0.1", 0) as server:
        result = await place_call(
            _url(server),
            [_tone(200), _tone(100)],
            lead_silence_s=0.1,
            trailing_silence_s=0.2,
            reply_gap_s=0.2,
            reply_timeout_s=3.0,
        )
    assert len(result.turns) == 2
    for turn, speech in zip(result.turns, [_tone(200), _tone(100)], strict=True):
        # Latency = the echo of the last speech frame: a loopback on one host.
        assert turn.latency_ms is not None and turn.latency_ms < 100, turn.latency_ms
        assert speech in bytes(turn.reply_ulaw)
        assert turn.reply_ms < turn.speech_ms + 1000  # the turn ended without the timeout


async def test_a_server_that_closes_with_a_reason_is_reported() -> None:
    async def refuse(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.recv()
        await ws.close(1008, "token_invalid: missing or reused token")

    async with serve(refuse, "127.0.0.1", 0) as server:
        result = await place_call(_url(server), [_tone(200)], lead_silence_s=0.0)
    assert result.close_code == 1008
    assert result.close_reason.startswith("token_invalid")
    assert result.turns == [] or result.turns[0].latency_ms is None


async def test_a_server_closing_after_stop_is_the_normal_end() -> None:
    async def close_on_stop(ws: ServerConnection) -> None:
        stream = TwilioStream()
        async for frame in ws:
            event = stream.receive(frame)
            if isinstance(event, Media):
                await ws.send(stream.media(event.payload), text=True)
            elif isinstance(event, Stop):
                await ws.close(1000, "bye")  # what Twilio's peer may well do

    async with serve(close_on_stop, "127.0.0.1", 0) as server:
        for _ in range(3):  # the race (their close vs ours) must never count as a failure
            result = await place_call(
                _url(server),
                [_tone(60)],
                lead_silence_s=0.0,
                trailing_silence_s=0.1,
                reply_gap_s=0.05,
            )
            assert result.close_code is None and result.turns[0].latency_ms is not None


async def test_a_malformed_server_frame_ends_the_call_with_a_typed_error() -> None:
    async def garbage(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.recv()
        await ws.send('{"event":"media","streamSid":"nope","media":{"payload":""}}')
        async for _ in ws:
            pass

    async with serve(garbage, "127.0.0.1", 0) as server:
        result = await place_call(_url(server), [_tone(200)], lead_silence_s=0.0)
    assert result.protocol_error is not None
    assert result.protocol_error.code == "stream_sid_mismatch"


async def test_connection_refused_is_call_failed() -> None:
    async with serve(lambda ws: asyncio.sleep(0), "127.0.0.1", 0) as server:  # a no-op handler
        url = _url(server)
    with pytest.raises(CallFailed, match="cannot connect"):
        await place_call(url, [_tone(20)])


def test_trim_trailing_silence() -> None:
    speech = _tone(100)
    assert trim_trailing_silence(speech + b"\xff" * 800) == speech
    assert trim_trailing_silence(b"\xff" * 800) == b""
    # Frames count from the start (as sent): the last frame kept is the audible one,
    # even when the speech ends inside a frame.
    odd = b"\xff" * 100 + _tone(10) + b"\xff" * 500  # 80 loud bytes in bytes 100..180
    assert trim_trailing_silence(odd) == odd[:320]

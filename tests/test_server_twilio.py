"""Twilio over a real server: webhook TwiML and signatures, one-time stream tokens,
a mark per 100 ms of outbound audio, clear on barge-in, malformed frames, and the real local
cascade answering a Piper-spoken sentence sent as µ-law media frames."""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
import soxr
import websockets
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from parley.app import EngineRequest, Parley
from parley.audio.g711 import ulaw_decode, ulaw_encode
from parley.config import EngineKind, ParleySettings
from parley.engines.cascade import CascadeConfig, CascadeEngine
from parley.engines.seams import Engine
from parley.events import Interrupted, Role
from parley.server.auth import TwilioTokens, twilio_signature_valid
from parley.testing.fakes import FakeLLM, FakeSTT, FakeTTS, FakeVAD
from servers import RunningServer, TwilioPhone, serve_app

TOKEN = "test-auth-token"
FRAME = 160  # 20 ms of µ-law


def tone_ulaw(ms: int, freq: float = 440.0, amplitude: int = 8000) -> bytes:
    t = np.arange(ms * 8) / 8000
    return ulaw_encode((amplitude * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes())


def silence_ulaw(ms: int) -> bytes:
    return b"\xff" * (ms * 8)


def frames(ulaw: bytes) -> list[bytes]:
    return [ulaw[i : i + FRAME] for i in range(0, len(ulaw), FRAME)]


def loopback(**kw: object) -> Parley:
    return Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK, **kw))  # type: ignore[arg-type]


@pytest.fixture
async def open_server() -> AsyncIterator[RunningServer]:
    async with serve_app(loopback()) as server:
        yield server


@pytest.fixture
async def auth_server() -> AsyncIterator[RunningServer]:
    async with serve_app(loopback(twilio_auth_token=TOKEN)) as server:
        yield server


def stream_of(twiml: str) -> tuple[str, dict[str, str]]:
    root = ET.fromstring(twiml)
    stream = root.find("./Connect/Stream")
    assert stream is not None, twiml
    params = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
    return stream.attrib["url"], params


def signed_post(server: RunningServer, form: dict[str, str], token: str = TOKEN) -> httpx.Response:
    url = server.url + "/twilio/voice"
    sig = RequestValidator(token).compute_signature(url, form)
    return httpx.post(url, data=form, headers={"X-Twilio-Signature": sig})


FORM = {"CallSid": "CA42", "From": "+14155550100", "To": "+18005550199", "AccountSid": "AC1"}

# ---------------------------------------------------------------------- webhook


def test_signature_matches_twilio_reference_vector() -> None:
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
        "Caller": "+14158675309",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature_valid("12345", url, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not twilio_signature_valid("12345", url, params, "kvajT1Ptam85bY51eRf/AJRuM3w=x")
    assert not twilio_signature_valid("12346", url, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not twilio_signature_valid("12345", url, params, None)


async def test_webhook_answers_connect_stream_twiml(open_server: RunningServer) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(open_server.url + "/twilio/voice", data=FORM)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/xml")
    url, params = stream_of(r.text)
    assert url == open_server.ws_url("/twilio/stream")
    assert params == {"from": FORM["From"]}  # no auth token configured: no token


async def test_webhook_uses_public_url_for_the_stream() -> None:
    app = loopback(public_url="https://voice.example.com/")
    async with serve_app(app) as server, httpx.AsyncClient() as client:
        r = await client.post(server.url + "/twilio/voice", data=FORM)
    assert stream_of(r.text)[0] == "wss://voice.example.com/twilio/stream"


async def test_webhook_signature_valid_invalid_missing(auth_server: RunningServer) -> None:
    ok = await asyncio.to_thread(signed_post, auth_server, FORM)
    assert ok.status_code == 200
    url, params = stream_of(ok.text)
    assert url == auth_server.ws_url("/twilio/stream")
    assert params["token"] and params["from"] == FORM["From"]

    wrong_key = await asyncio.to_thread(signed_post, auth_server, FORM, "another-token")
    assert wrong_key.status_code == 403
    async with httpx.AsyncClient() as client:
        missing = await client.post(auth_server.url + "/twilio/voice", data=FORM)
        assert missing.status_code == 403
        # A valid signature for other parameters does not sign these.
        sig = RequestValidator(TOKEN).compute_signature(auth_server.url + "/twilio/voice", FORM)
        tampered = await client.post(
            auth_server.url + "/twilio/voice",
            data={**FORM, "From": "+19999999999"},
            headers={"X-Twilio-Signature": sig},
        )
        assert tampered.status_code == 403


# ----------------------------------------------------------------------- tokens


async def close_of(ws: websockets.ClientConnection) -> websockets.frames.Close:
    """Read until the server closes; its close frame (code and reason)."""
    with pytest.raises(websockets.ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None
    return info.value.rcvd


async def echo_once(phone: TwilioPhone) -> None:
    """One frame there and back (a mark closing earlier audio may come first)."""
    await phone.send_media(tone_ulaw(20))
    kind, payload = await phone.receive()
    while kind == "mark":
        kind, payload = await phone.receive()
    assert kind == "media" and len(payload) == FRAME


async def test_stream_token_valid_missing_forged_replayed(auth_server: RunningServer) -> None:
    r = await asyncio.to_thread(signed_post, auth_server, FORM)
    _, params = stream_of(r.text)
    url = auth_server.ws_url("/twilio/stream")

    async with websockets.connect(url) as ws:  # valid: the call is served
        phone = TwilioPhone(ws, call_sid=FORM["CallSid"])
        await phone.start(params)
        await echo_once(phone)
        await phone.stop()

    async with websockets.connect(url) as ws:  # the same token again
        await TwilioPhone(ws, call_sid=FORM["CallSid"]).start(params)
        close = await close_of(ws)
        assert close.code == 1008 and "already used" in close.reason

    async with websockets.connect(url) as ws:  # no token
        await TwilioPhone(ws, call_sid="CA43").start({"from": FORM["From"]})
        close = await close_of(ws)
        assert close.code == 1008 and "missing token" in close.reason

    r2 = await asyncio.to_thread(signed_post, auth_server, {**FORM, "CallSid": "CA44"})
    _, params2 = stream_of(r2.text)
    async with websockets.connect(url) as ws:  # a real token, but minted for another call
        await TwilioPhone(ws, call_sid="CA45").start(params2)
        close = await close_of(ws)
        assert close.code == 1008 and "unknown token" in close.reason
    async with websockets.connect(url) as ws:  # a made-up token
        await TwilioPhone(ws, call_sid="CA44").start({**params2, "token": "1.2.3"})
        assert (await close_of(ws)).code == 1008
    assert auth_server.app is not None
    assert not auth_server.app.calls.active()


def test_tokens_expire_and_are_one_time() -> None:
    now = [1000.0]
    tokens = TwilioTokens("k", ttl_seconds=60, clock=lambda: now[0])
    t1, t2 = tokens.issue("CA1", "+1"), tokens.issue("CA1", "+1")
    tokens.check(t1, "CA1", "+1")
    with pytest.raises(Exception, match="already used"):
        tokens.check(t1, "CA1", "+1")
    with pytest.raises(Exception, match="unknown token"):
        tokens.check(t2, "CA1", "+2")  # bound to the caller too
    now[0] += 62
    with pytest.raises(Exception, match="expired"):
        tokens.check(t2, "CA1", "+1")
    with pytest.raises(Exception, match="unknown token"):
        TwilioTokens("other").check(tokens.issue("CA1"), "CA1")


async def test_stream_without_auth_accepts_without_token(open_server: RunningServer) -> None:
    async with websockets.connect(open_server.ws_url("/twilio/stream")) as ws:
        phone = TwilioPhone(ws)
        await phone.start()
        await echo_once(phone)


# ------------------------------------------------------------------------ marks


async def test_a_mark_per_100_ms_of_audio_and_echoes_report_playback() -> None:
    app = loopback()
    async with serve_app(app) as server, websockets.connect(server.ws_url("/twilio/stream")) as ws:
        phone = TwilioPhone(ws)
        await phone.start()
        sent = tone_ulaw(200)
        for f in frames(sent):
            await phone.send_media(f)
        received = b""
        marks: list[str] = []
        while len(received) < len(sent):
            kind, payload = await phone.receive()
            if kind == "media":
                assert isinstance(payload, bytes)
                received += payload
            else:  # one mark per 100 ms (5 frames) of audio, right after it
                assert kind == "mark" and len(received) == (len(marks) + 1) * 5 * FRAME
                marks.append(str(payload))
        marks.append(str((await phone.receive())[1]))
        assert len(marks) == len(set(marks)) == 2
        # Loopback: the same audio back, through decode → PCM16 → encode.
        assert (
            np.abs(
                np.frombuffer(ulaw_decode(received), "<i2").astype(int)
                - np.frombuffer(ulaw_decode(sent), "<i2").astype(int)
            ).max()
            <= 256
        )
        (record,) = app.calls.active()
        assert record.conversation is not None
        engine = record.conversation.engine
        await phone.send_mark(marks[0])  # Twilio played the first 100 ms
        await phone.send_media(silence_ulaw(20))  # a round trip: the mark is processed
        await phone.receive()
        assert getattr(engine, "played_ms", None) == pytest.approx(100.0)


def fake_cascade(request: EngineRequest) -> Engine:
    """A cascade with deterministic fakes: energy VAD, scripted STT and LLM, tone TTS."""
    vad = FakeVAD(16000)
    reply = "Thank you for calling the support line of a very talkative company today."
    return CascadeEngine(
        vad,
        FakeSTT("hello there"),
        FakeLLM([reply]),
        FakeTTS(16000, ms_per_char=40.0),
        CascadeConfig(instructions=request.instructions, speculative_stt=False),
    )


async def test_barge_in_sends_clear_and_truncates_at_the_echoed_marks() -> None:
    interruptions: list[Interrupted] = []
    app = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK), engine_factory=fake_cascade)

    @app.on_event(Interrupted)
    async def interrupted(session_id: str, event: Interrupted) -> None:
        interruptions.append(event)

    async with serve_app(app) as server, websockets.connect(server.ws_url("/twilio/stream")) as ws:
        phone = TwilioPhone(ws)
        await phone.start()
        # The caller speaks (a tone to the energy VAD), then is silent: a turn.
        for f in frames(tone_ulaw(600) + silence_ulaw(900)):
            await phone.send_media(f)
        # The reply (about 3 s of tone) arrives as media + mark pairs; Twilio buffers it.
        media_ms = 0.0
        marks: list[tuple[str, float]] = []  # name, reply ms at that mark
        while media_ms < 1000:
            kind, payload = await phone.receive()
            if kind == "media":
                assert isinstance(payload, bytes)
                media_ms += len(payload) / 8
            elif kind == "mark":
                marks.append((str(payload), media_ms))
        # Twilio has played the first 400 ms: it echoes the marks of that audio.
        heard = [(n, ms) for n, ms in marks if ms <= 400]
        for name, _ in heard:
            await phone.send_mark(name)
        played_ms = heard[-1][1]
        # The caller talks over the reply: barge-in.
        for f in frames(tone_ulaw(400)):
            await phone.send_media(f)
        cleared = False
        while not cleared:
            kind, _ = await phone.receive()
            cleared = kind == "clear"
        (record,) = app.calls.active()
        await phone.stop()
    await asyncio.wait_for(record.finished.wait(), 5)
    (event,) = interruptions
    # Truncated where the marks say playback was, not where the clock would guess.
    assert event.played_ms == pytest.approx(played_ms)
    assert record.conversation is not None
    turns = record.conversation.transcript.turns
    assistant = [t for t in turns if t.role is Role.ASSISTANT]
    assert assistant[0].interrupted
    assert assistant[0].text == event.played_text
    assert event.played_text and len(event.played_text) < 30
    assert "Thank you".startswith(event.played_text) or event.played_text.startswith("Thank")


# ------------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    ("frame", "code", "reason"),
    [
        ("this is not json", 1007, "bad_json"),
        (
            '{"event":"media","streamSid":"MZ' + "0" * 32 + '","media":{"track":"inbound",'
            '"chunk":"1","timestamp":"1","payload":"%%%"}}',
            1007,
            "bad_base64",
        ),
        ('{"event":"start","start":{}}', 1007, "invalid_message"),
        ("[1, 2]", 1007, "not_an_object"),
    ],
)
async def test_malformed_frame_closes_only_that_call(
    open_server: RunningServer, frame: str, code: int, reason: str
) -> None:
    url = open_server.ws_url("/twilio/stream")
    async with websockets.connect(url) as good_ws, websockets.connect(url) as bad_ws:
        good = TwilioPhone(good_ws, stream_sid="MZ" + "1" * 32)
        await good.start()
        await echo_once(good)
        bad = TwilioPhone(bad_ws)
        await bad.start()
        await echo_once(bad)
        await bad_ws.send(frame)
        close = await close_of(bad_ws)
        assert close.code == code and close.reason.startswith(reason), close
        for _ in range(3):  # the other call goes on
            await echo_once(good)
        await good.stop()


async def test_media_before_start_is_refused_with_1008(open_server: RunningServer) -> None:
    async with websockets.connect(open_server.ws_url("/twilio/stream")) as ws:
        phone = TwilioPhone(ws)
        await phone.send_media(tone_ulaw(20))
        close = await close_of(ws)
        assert close.code == 1008 and close.reason.startswith("media_before_start")


# --------------------------------------------------------- the real local cascade


def norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


@pytest.mark.slow
async def test_local_cascade_answers_a_spoken_sentence_over_twilio() -> None:
    from parley.providers.whisper import WhisperSTT
    from speech import speak

    sentence = "Please book a table for two people at seven tonight."
    pcm, rate = speak(sentence)
    pcm8k = soxr.resample(np.frombuffer(pcm, "<i2"), rate, 8000).astype("<i2").tobytes()
    caller = ulaw_encode(pcm8k)
    app = Parley(settings=ParleySettings(engine=EngineKind.LOCAL, brain="echo"))
    async with serve_app(app) as server, websockets.connect(server.ws_url("/twilio/stream")) as ws:
        phone = TwilioPhone(ws)
        await phone.start()
        for f in frames(silence_ulaw(300) + caller + silence_ulaw(1000)):
            await phone.send_media(f)
            await asyncio.sleep(0.01)  # twice real time, as a phone line would pace it
        reply = b""
        while True:  # until the reply's audio has stopped coming for a while
            try:
                kind, payload = await phone.receive(wait_s=3.0 if reply else 30.0)
            except TimeoutError:
                break
            if kind == "media":
                assert isinstance(payload, bytes)
                reply += payload
        await phone.stop()
    assert len(reply) > 8000  # over a second of speech
    reply16k = soxr.resample(np.frombuffer(ulaw_decode(reply), "<i2"), 8000, 16000)
    heard = (await WhisperSTT().transcribe(reply16k.astype("<i2").tobytes())).text
    assert norm(heard).startswith("you said")
    assert norm(sentence) in norm(heard)

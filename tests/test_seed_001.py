"""Seed 001, "AI Voice Assistant Framework": every code example of the document
(../shared/seeds/001_*.txt), running for real.

The document's ``managers.*`` modules are ``parley.managers.*`` (the only change to
its lines besides the URL's port). Each example's own lines are kept as the document
has them, indented into a function that returns the user's app; where an example is
a fragment (it uses names it never defines: ``app``, ``bot``, ``manager``), the
minimum around it is defined and a comment says so. Every app runs under uvicorn on a
free 127.0.0.1 port and is reached over real sockets speaking the real protocols
(Twilio Media Streams JSON, the document's JSON audio, the browser page in Chromium).
Calls run on the loopback engine (``PARLEY_ENGINE=loopback``: the caller's audio
comes back, so what is heard proves the path) unless the example needs speech: the
greeting runs the offline cascade (Piper speaks it, Whisper hears it client-side).
"""

# The examples' own import order is kept verbatim.
# ruff: noqa: E501, I001

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import websockets
from fastapi import FastAPI, WebSocket
from fastapi.responses import HTMLResponse
from websockets.exceptions import ConnectionClosed, InvalidStatus

import parley.managers.base
from parley import Parley
from parley.audio.g711 import ulaw_encode
from parley.config import ParleySettings
from parley.engines import LoopbackEngine
from parley.engines.spec import EngineRequest
from parley.errors import ConfigError
from parley.managers import AudioHandler, BaseAudioConnectionManager, listen_address
from parley.providers.whisper import WhisperSTT
from servers import TwilioPhone, free_port, serve_asgi

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(autouse=True)
def fresh_default_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test's managers share a default app made from that test's environment."""
    monkeypatch.setattr(parley.managers.base, "_default", None)
    for name in (
        "TWILIO_AUDIO_QUEUE_SIZE",
        "WEBSOCKET_AUDIO_QUEUE_SIZE",
        "DISCORD_AUDIO_QUEUE_SIZE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PARLEY_ENGINE", "loopback")
    yield


def tone(ms: int, rate: int, hz: float = 440.0) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()


def audio_message(pcm: bytes) -> str:
    return json.dumps({"type": "audio", "data": base64.b64encode(pcm).decode()})


async def until(check: Any, seconds: float = 5.0) -> None:
    # For a manager's sockets and calls ending after the client's close: the examples'
    # routes are verbatim and the managers have no event for it.
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def heard_audio(
    ws: Any, want: int, seconds: float = 5.0
) -> tuple[bytes, list[dict[str, Any]]]:
    """JSON ``audio`` frames until ``want`` bytes came; the other messages beside."""
    audio, others = bytearray(), []
    async with asyncio.timeout(seconds):
        while len(audio) < want:
            msg = json.loads(await ws.recv())
            if msg["type"] == "audio":
                audio += base64.b64decode(msg["data"])
            else:
                others.append(msg)
    return bytes(audio), others


# -- Quick Start: Twilio Voice Calls -------------------------------------------------------


def twilio_quick_start() -> tuple[FastAPI, Any]:
    from parley.managers.twilio_manager import TwilioConnectionManager
    from fastapi import FastAPI, WebSocket

    app = FastAPI()
    twilio_manager = TwilioConnectionManager()

    @app.websocket("/twilio")
    async def twilio_endpoint(websocket: WebSocket, call_sid: str):
        await twilio_manager.connect(websocket, call_sid)
        await twilio_manager.handle_message_stream(websocket, call_sid)

    return app, twilio_manager


async def test_twilio_quick_start_speaks_twilio_and_the_call_is_the_call_sid(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app, twilio_manager = twilio_quick_start()
    async with serve_asgi(app) as port:
        url = f"ws://127.0.0.1:{port}/twilio?call_sid=CA0001"
        async with websockets.connect(url) as ws:
            phone = TwilioPhone(ws, call_sid="CA0001")
            await phone.start()
            said = ulaw_encode(tone(200, 8000))
            for i in range(0, len(said), 160):
                await phone.send_media(said[i : i + 160])
            back = bytearray()
            while len(back) < len(said):
                kind, payload = await phone.receive()
                if kind == "media":
                    assert isinstance(payload, bytes)
                    back += payload
            assert bytes(back) == said  # the loopback engine: µ-law in, the same out

            # Health Monitoring, verbatim ("manager" is the document's name for any manager).
            manager = twilio_manager
            # Check system health
            status = manager.get_health_status()
            print(f"Status: {status['status']}")
            print(f"Active connections: {status['active_connections']}")
            print(f"Active audio handlers: {status['active_audio_handlers']}")

            assert status["calls"][0]["id"] == "CA0001"
            assert status["calls"][0]["kind"] == "twilio"
            await phone.stop()
            with pytest.raises(ConnectionClosed):
                while True:  # marks still on their way, then the close
                    await asyncio.wait_for(ws.recv(), 5)
        await until(lambda: twilio_manager.get_health_status()["active_connections"] == 0)
        assert twilio_manager.get_health_status()["active_audio_handlers"] == 0
        assert twilio_manager.switchboard.calls.get("CA0001") is None  # ended, forgotten
    out = capsys.readouterr().out
    assert "Status: ok\nActive connections: 1\nActive audio handlers: 1\n" in out


async def test_twilio_bad_frame_closes_that_call_with_the_reason() -> None:
    app, _ = twilio_quick_start()
    async with serve_asgi(app) as port:
        good_url = f"ws://127.0.0.1:{port}/twilio?call_sid=CAgood"
        async with websockets.connect(good_url) as good:
            phone = TwilioPhone(good, call_sid="CAgood")
            await phone.start()
            async with websockets.connect(f"ws://127.0.0.1:{port}/twilio?call_sid=CAbad") as bad:
                await bad.send('{"event":"media","media":{"payload":"%%%"}')  # truncated JSON
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(bad.recv(), 5)
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 1007
                assert closed.value.rcvd.reason.startswith("bad_json")
            # the other call goes on
            await phone.send_media(ulaw_encode(tone(20, 8000)))
            kind, _ = await phone.receive()
            assert kind == "media"
            # the same call_sid twice: the second socket is refused, the first goes on
            with pytest.raises(InvalidStatus) as refused:
                async with websockets.connect(good_url):
                    pass
            assert refused.value.response.status_code == 409
            await phone.send_media(ulaw_encode(tone(20, 8000)))
            assert (await phone.receive())[0] == "media"


async def test_queue_sizes_from_the_environment_reach_the_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from parley.managers.twilio_manager import TwilioConnectionManager

    monkeypatch.setenv("TWILIO_AUDIO_QUEUE_SIZE", "7")
    requests: list[EngineRequest] = []
    made = asyncio.Event()

    def engine(request: EngineRequest) -> LoopbackEngine:
        requests.append(request)
        made.set()
        return LoopbackEngine(request.sample_rate, encoding=request.line_encoding)

    app = FastAPI()
    manager = TwilioConnectionManager(Parley(settings=ParleySettings(), engine_factory=engine))

    @app.websocket("/twilio")
    async def twilio_endpoint(websocket: WebSocket, call_sid: str) -> None:
        await manager.connect(websocket, call_sid)
        await manager.handle_message_stream(websocket, call_sid)

    async with serve_asgi(app) as port:
        url = f"ws://127.0.0.1:{port}/twilio?call_sid=CAq"
        async with websockets.connect(url) as ws:
            await TwilioPhone(ws, call_sid="CAq").start()
            await asyncio.wait_for(made.wait(), 5)
    assert requests[0].audio_queue == 7 and requests[0].conversation_id == "CAq"

    monkeypatch.setenv("WEBSOCKET_AUDIO_QUEUE_SIZE", "lots")
    from parley.managers.websocket_manager import WebSocketConnectionManager

    with pytest.raises(ConfigError, match="WEBSOCKET_AUDIO_QUEUE_SIZE"):
        WebSocketConnectionManager()


# -- Quick Start: WebSocket Browser Audio ------------------------------------------------


def websocket_quick_start(greeting_app: FastAPI | None = None) -> tuple[FastAPI, Any]:
    # The example continues the Twilio one: its ``app`` and ``WebSocket`` are defined here.
    app = greeting_app or FastAPI()

    from parley.managers.websocket_manager import WebSocketConnectionManager

    websocket_manager = WebSocketConnectionManager(
        initial_message="Hello! How can I help you today?"
    )

    @app.websocket("/ws/audio/{session_id}")
    async def websocket_audio(websocket: WebSocket, session_id: str):
        await websocket_manager.connect(websocket, session_id)
        await websocket_manager.handle_message_stream(websocket, session_id)

    return app, websocket_manager


async def test_websocket_json_audio_both_ways_binary_too_and_bad_input() -> None:
    app, websocket_manager = websocket_quick_start()
    async with serve_asgi(app) as port:
        url = f"ws://127.0.0.1:{port}/ws/audio/session123"
        async with websockets.connect(url) as ws:
            said = tone(100, 24000)  # the document's format: PCM16 24 kHz mono
            for i in range(0, len(said), 960):
                await ws.send(audio_message(said[i : i + 960]))
            back, others = await heard_audio(ws, len(said))
            assert back == said
            assert others[0]["type"] == "ready" and others[0]["session_id"] == "session123"
            assert others[0]["format"]["sample_rate"] == 24000
            await ws.send(said[:960])  # a binary frame: the protocol's own form
            back, _ = await heard_audio(ws, 960)
            assert back == said[:960]
            status = websocket_manager.get_health_status()
            assert status["active_audio_handlers"] == 1
            assert status["calls"][0]["kind"] == "websocket"

            async with websockets.connect(f"ws://127.0.0.1:{port}/ws/audio/other") as bad:
                await bad.send('{"type": "audio", "data": "not base64!"}')
                error = json.loads(await asyncio.wait_for(bad.recv(), 5))
                assert error["type"] == "error" and error["fatal"] is True
                assert error["code"] == "invalid_message"
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(bad.recv(), 5)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws/audio/odd") as odd:
                await odd.send(audio_message(b"\x01\x02\x03"))  # half a sample
                error = json.loads(await asyncio.wait_for(odd.recv(), 5))
                assert error["code"] == "odd_audio_length"

            await websocket_manager.disconnect("session123")
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
        await until(lambda: websocket_manager.get_health_status()["active_connections"] == 0)


@pytest.fixture(scope="module")
def ear() -> WhisperSTT:
    stt = WhisperSTT()
    asyncio.run(stt.warmup())
    return stt


async def test_initial_message_is_spoken_and_send_message_says_more(
    monkeypatch: pytest.MonkeyPatch, ear: WhisperSTT
) -> None:
    """The offline cascade (Piper): the greeting is heard before the caller says anything."""
    monkeypatch.setenv("PARLEY_ENGINE", "local")
    monkeypatch.setenv("PARLEY_VAD", "energy")  # no speech is sent: any VAD will do
    app, websocket_manager = websocket_quick_start()
    await websocket_manager.app.switchboard.warmup()  # the user's app has no lifespan
    async with serve_asgi(app) as port:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/audio/session123") as ws:
            await ws.send(audio_message(bytes(960)))  # 20 ms of silence starts the session
            audio, messages = bytearray(), []
            async with asyncio.timeout(20):
                while not any(m["type"] == "response_done" for m in messages):
                    msg = json.loads(await ws.recv())
                    if msg["type"] == "audio":
                        audio += base64.b64decode(msg["data"])
                    else:
                        messages.append(msg)
            with contextlib.suppress(TimeoutError):  # the last frames may trail the message
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                    if msg["type"] == "audio":
                        audio += base64.b64decode(msg["data"])
            assert len(audio) > 24000 * 2  # over a second of speech
            done = next(m for m in messages if m["type"] == "response_done")
            assert done["status"] == "completed"
            assert done["text"] == "Hello! How can I help you today?"
            pcm16k = _to_16k(bytes(audio), 24000)
            heard = (await ear.transcribe(pcm16k)).text.lower()
            assert "hello" in heard and "help" in heard, heard

            assert await websocket_manager.send_message("session123", "Your table is booked.")
            messages = []
            async with asyncio.timeout(20):
                while not any(m["type"] == "response_done" for m in messages):
                    msg = json.loads(await ws.recv())
                    if msg["type"] != "audio":
                        messages.append(msg)
            assert messages[-1]["text"] == "Your table is booked."
        assert not await websocket_manager.send_message("nobody", "hello?")


def _to_16k(pcm: bytes, rate: int) -> bytes:
    import soxr

    samples = np.frombuffer(pcm, dtype="<i2")
    return bytes(soxr.resample(samples, rate, 16000).astype("<i2").tobytes())


# -- Examples: Minimal WebSocket Client (in Chromium) --------------------------------------

MINIMAL_CLIENT = """\
<script>
const ws = new WebSocket('ws://localhost:8000/ws/audio/session123');

ws.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (data.type === 'audio') {
        // Play received audio
        playAudio(data.data);
    }
};

// Send audio to server
function sendAudio(audioBlob) {
    const base64 = btoa(audioBlob);
    ws.send(JSON.stringify({
        type: 'audio',
        data: base64
    }));
}
</script>
"""


async def test_the_documents_minimal_client_in_chromium() -> None:
    from playwright.async_api import async_playwright

    app, _ = websocket_quick_start()

    async with serve_asgi(app) as port:
        # Its page: the example verbatim (the URL's port aside), and the playAudio it calls,
        # served from 127.0.0.1 too (Chromium blocks a public page's loopback sockets).
        page_html = (
            "<html><body><script>window.played = [];"
            "function playAudio(b64) { window.played.push(b64); }</script>"
            + MINIMAL_CLIENT.replace("localhost:8000", f"127.0.0.1:{port}")
            + "</body></html>"
        )
        page_app = FastAPI()

        @page_app.get("/")
        async def client_page() -> HTMLResponse:
            return HTMLResponse(page_html)

        async with serve_asgi(page_app) as page_port, async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                page = await browser.new_page()
                await page.goto(f"http://127.0.0.1:{page_port}/")
                await page.wait_for_function("ws.readyState === 1", timeout=5000)
                said = tone(40, 24000)
                # btoa takes a "binary string": one character per byte.
                await page.evaluate("bytes => sendAudio(String.fromCharCode(...bytes))", list(said))
                await page.wait_for_function(
                    f"window.played.map(b => atob(b).length).reduce((a, b) => a + b, 0) >= {len(said)}",
                    timeout=5000,
                )
                played = await page.evaluate("window.played")
            finally:
                await browser.close()
    assert b"".join(base64.b64decode(b) for b in played) == said


# -- Examples: Discord Bot Integration -------------------------------------------------


def discord_relay() -> tuple[FastAPI, Any]:
    # ``import discord`` and ``@bot.command()`` need py-cord and Discord's gateway (not
    # here). The manager's own lines run as written; its socket is a relay WebSocket.
    from parley.managers.discord_manager import DiscordConnectionManager

    discord_manager = DiscordConnectionManager()
    app = FastAPI()

    @app.websocket("/discord/{guild}/{channel}/{user}")
    async def relay(websocket: WebSocket, guild: int, channel: int, user: int):
        session_id = f"{guild}:{channel}:{user}"
        await discord_manager.connect(websocket, session_id)
        await discord_manager.handle_message_stream(websocket, session_id)

    return app, discord_manager


async def test_discord_manager_over_a_relay_websocket() -> None:
    app, discord_manager = discord_relay()
    async with serve_asgi(app) as port:
        base = f"ws://127.0.0.1:{port}/discord/111/222"
        async with (
            websockets.connect(f"{base}/333") as one,
            websockets.connect(f"{base}/444") as two,
        ):
            said = tone(60, 48000)  # Discord's rate, mono
            await one.send(audio_message(said))
            await two.send(audio_message(said[:1920]))
            assert (await heard_audio(one, len(said)))[0] == said
            assert (await heard_audio(two, 1920))[0] == said[:1920]
            status = discord_manager.get_health_status()
            ids = sorted(c["id"] for c in status["calls"])
            assert ids == ["111:222:333", "111:222:444"]
            assert {c["kind"] for c in status["calls"]} == {"discord"}
            assert status["active_audio_handlers"] == 2
    with pytest.raises(ConfigError, match="gateway"):
        await discord_manager.connect(object(), "1:2:3")


# -- Creating Custom Implementations: an AudioHandler of one's own --------------------------


class ByteWireHandler(AudioHandler):
    """A made-up platform: binary frames of PCM16 16 kHz both ways."""

    def __init__(self, websocket: WebSocket, session_id: str, queue_size: int | None) -> None:
        super().__init__(session_id, sample_rate=16000, queue_size=queue_size)
        self.websocket = websocket
        self.sent = 0

    async def send_audio(self, audio_data: bytes) -> None:
        self.sent += len(audio_data)
        await self.websocket.send_bytes(audio_data)


class ByteWireManager(BaseAudioConnectionManager):
    platform = "bytewire"
    queue_variable = "BYTEWIRE_AUDIO_QUEUE_SIZE"

    def create_audio_handler(self, websocket: WebSocket, session_id: str) -> AudioHandler:
        return ByteWireHandler(websocket, session_id, self.audio_queue)

    async def handle_message_stream(self, websocket: WebSocket, session_id: str) -> None:
        handler = self.audio_handlers[session_id]
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes"):
                    await handler.add_input_audio(message["bytes"])
        finally:
            await self.disconnect(session_id)


async def test_custom_manager_and_audio_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYTEWIRE_AUDIO_QUEUE_SIZE", "3")
    manager = ByteWireManager()
    app = FastAPI()

    @app.websocket("/bytes/{session_id}")
    async def endpoint(websocket: WebSocket, session_id: str) -> None:
        await manager.connect(websocket, session_id)
        await manager.handle_message_stream(websocket, session_id)

    async with serve_asgi(app) as port:
        async with websockets.connect(f"ws://127.0.0.1:{port}/bytes/s1") as ws:
            said = tone(20, 16000)
            await ws.send(said)
            assert await asyncio.wait_for(ws.recv(), 5) == said
            record = manager.switchboard.calls.get("s1")
            assert record is not None and record.kind == "bytewire"
            assert manager.get_health_status()["active_audio_handlers"] == 1
        await until(lambda: manager.switchboard.calls.get("s1") is None)
    assert manager.get_health_status()["active_connections"] == 0

    # The input queue: at most queue_size chunks wait; newer ones are dropped, counted.
    handler = ByteWireHandler(None, "q", 3)  # type: ignore[arg-type]
    for _ in range(5):
        await handler.add_input_audio(b"\x00\x00")
    assert handler.dropped_chunks == 2
    await handler.shutdown()
    assert [await handler.receive_audio() for _ in range(4)] == [b"\x00\x00"] * 3 + [None]


# -- Configuration: HOST and PORT ----------------------------------------------------------


def test_host_and_port_are_where_the_app_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "eighty")
    with pytest.raises(ConfigError, match="PORT"):
        listen_address()
    port = free_port()
    script = (
        "from fastapi import FastAPI\n"
        "from parley.managers import run\n"
        "app = FastAPI()\n"
        "@app.get('/up')\n"
        "async def up():\n"
        "    return {'up': True}\n"
        "run(app, log_level='warning')\n"
    )
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        import httpx

        deadline = time.monotonic() + 15
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/up").json() == {"up": True}
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)  # another process: it shows it is up only over HTTP
    finally:
        proc.terminate()
        proc.wait(10)

"""Durable sessions against a real ``parley serve`` process: SIGKILL mid-call, then a
restart on the same SQLite file — every finished turn is on disk and served over
REST, and the browser reconnects with its session id and goes on with its history."""

from __future__ import annotations

from pathlib import Path

import httpx
import websockets

from parley.app import Parley
from parley.config import EngineKind, ParleySettings
from parley.protocols.browser import (
    PlaybackMessage,
    ReadyMessage,
    ResponseDoneMessage,
    StartMessage,
    UserTextMessage,
    encode_client_message,
    parse_server_frame,
)
from parley.testing import OpenAIWireServer, ScriptedReply
from servers import ServerProcess, serve_app


async def say(ws: websockets.ClientConnection, text: str) -> str:
    """Type a turn; the reply's text once it is done (the echo brain repeats it), its
    playback reported whole, as a page does."""
    await ws.send(encode_client_message(UserTextMessage(text=text)))
    while True:
        frame = await ws.recv()
        if isinstance(frame, str):
            msg = parse_server_frame(frame)
            if isinstance(msg, ResponseDoneMessage):
                played = PlaybackMessage(response_id=msg.response_id, played_ms=60_000, done=True)
                await ws.send(encode_client_message(played))
                return msg.text


async def test_kill_9_mid_call_keeps_every_finished_turn_and_the_call_resumes(
    tmp_path: Path,
) -> None:
    env = {
        "PARLEY_ENGINE": "local",
        "PARLEY_BRAIN": "echo",
        "PARLEY_VAD": "energy",
        "PARLEY_PERSIST_CONVERSATIONS": "true",
        "PARLEY_SESSION_DB": str(tmp_path / "parley.db"),
    }
    said = ["one two three", "four five six", "seven eight nine"]
    first = ServerProcess(env).start()
    try:
        async with websockets.connect(first.ws_url("/ws/audio"), max_size=None) as ws:
            await ws.send(encode_client_message(StartMessage(user_id="u-1")))
            ready = parse_server_frame(await ws.recv())
            assert isinstance(ready, ReadyMessage)
            session = ready.session_id
            replies = [await say(ws, text) for text in said]
            await ws.send(encode_client_message(UserTextMessage(text="ten eleven")))
            assert first.proc is not None
            first.kill()  # SIGKILL, mid-turn: no drain, no clean end
            first.wait(10)
    finally:
        first.stop()
    assert all(replies)

    with ServerProcess(env) as second:
        async with httpx.AsyncClient(base_url=second.url) as http:
            info = (await http.get(f"/conversations/{session}")).json()
        assert info["status"] == "ended" and info["end_reason"] == "node_lost"
        turns = [(t["role"], t["text"]) for t in info["turns"]]
        expected = []
        for text, reply in zip(said, replies, strict=True):
            expected += [("user", text), ("assistant", reply)]
        assert turns[:6] == expected  # every finished turn, in order

        # The page reconnects within the resume window: the same session, its history.
        async with websockets.connect(second.ws_url("/ws/audio"), max_size=None) as ws:
            await ws.send(encode_client_message(StartMessage(session_id=session)))
            again = parse_server_frame(await ws.recv())
            assert isinstance(again, ReadyMessage) and again.session_id == session
            assert await say(ws, "twelve thirteen")
        async with httpx.AsyncClient(base_url=second.url) as http:
            for _ in range(50):
                info = (await http.get(f"/conversations/{session}")).json()
                if info["status"] == "ended":
                    break
        texts = [t["text"] for t in info["turns"]]
        assert texts[:6] == [t for _, t in expected] and "twelve thirteen" in texts
        indices_ok = len(texts) == len(set(range(len(texts))))
        assert indices_ok


async def test_a_dropped_browser_call_resumes_with_its_history() -> None:
    """The page's socket drops (no ``stop``); it reconnects with its session id and the
    model is asked with the conversation so far."""
    async with OpenAIWireServer() as llm:
        llm.script(ScriptedReply(text=("Nice to meet you, Ana.",)), ScriptedReply(text=("Ana.",)))
        settings = ParleySettings(
            engine=EngineKind.LOCAL,
            brain="openai:test-model",
            vad="energy",
            llm_base_url=llm.openai_base_url,
            llm_api_key="test-key",  # type: ignore[arg-type]
        )
        app = Parley(settings=settings)
        async with serve_app(app) as srv:
            async with websockets.connect(srv.ws_url("/ws/audio"), max_size=None) as ws:
                await ws.send(encode_client_message(StartMessage()))
                ready = parse_server_frame(await ws.recv())
                assert isinstance(ready, ReadyMessage)
                assert await say(ws, "My name is Ana.") == "Nice to meet you, Ana."
                record = app.calls.get(ready.session_id)
                assert record is not None
            # closed without a stop: the call ended as "disconnected"
            assert await app.calls.wait_finished([record], 5)  # the registry's own event
            stored = await app.session(ready.session_id)
            assert stored is not None and stored.record.status == "ended"
            assert stored.record.end_reason == "disconnected"
            async with websockets.connect(srv.ws_url("/ws/audio"), max_size=None) as ws:
                await ws.send(encode_client_message(StartMessage(session_id=ready.session_id)))
                again = parse_server_frame(await ws.recv())
                assert isinstance(again, ReadyMessage) and again.session_id == ready.session_id
                assert await say(ws, "What is my name?") == "Ana."
        asked = [m["content"] for m in llm.chat_requests[-1]["messages"]]
        assert "My name is Ana." in asked and "Nice to meet you, Ana." in asked
        assert asked[-1] == "What is my name?"


async def test_twilio_tokens_stay_used_across_a_restart_on_sqlite(tmp_path: Path) -> None:
    """One machine without Redis: the one-time tokens live in the SQLite file, shared
    by its workers and kept across restarts."""
    from test_server_cluster import TWILIO_TOKEN, signed_webhook, stream_with

    env = {
        "PARLEY_ENGINE": "loopback",
        "PARLEY_PERSIST_CONVERSATIONS": "true",
        "PARLEY_SESSION_DB": str(tmp_path / "parley.db"),
        "PARLEY_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "PARLEY_WORKERS": "2",
    }
    with ServerProcess(env) as first:
        form, headers = signed_webhook(first, "CA5")
        async with httpx.AsyncClient() as http:
            twiml = (await http.post(f"{first.url}/twilio/voice", data=form, headers=headers)).text
        token = twiml.split('name="token" value="')[1].split('"')[0]
        params = {"from": "+15550123", "token": token}
        results = [await stream_with(first, "CA5", params) for _ in range(4)]
        assert results[0] == "media" and all("already used" in r for r in results[1:]), results
    with ServerProcess(env) as second:
        assert "already used" in await stream_with(second, "CA5", params)

"""The context token counter's BPE tables (~130 MB of RSS) load at a server's first
context injection, off the event loop — not at start, and not for a call without
context. Checked on a real ``parley serve`` process: its memory map shows whether the
tokenizer's library is loaded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import websockets

from parley.conversation.context import ContextManager, DeferredTokenCounter
from servers import ServerProcess, TwilioPhone


def holds_tables(pid: int) -> bool:
    return "bpe_openai/_bindings" in Path(f"/proc/{pid}/maps").read_text()


async def live_call(http: httpx.AsyncClient) -> str:
    for _ in range(200):
        found = (await http.get("/conversations", params={"status": "live"})).json()
        if found["conversations"]:
            return str(found["conversations"][0]["id"])
        await asyncio.sleep(0.02)  # a server process: ask its REST API again
    raise AssertionError("the call never went live")


async def test_a_server_loads_the_tables_at_its_first_injection() -> None:
    env = {"PARLEY_ENGINE": "loopback", "PARLEY_VAD": "energy"}
    with ServerProcess(env) as server:
        assert server.proc is not None
        pid = server.proc.pid
        assert not holds_tables(pid)
        async with (
            websockets.connect(server.ws_url("/twilio/stream")) as ws,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            await TwilioPhone(ws).start()
            call_id = await live_call(http)
            assert not holds_tables(pid)  # a live call without context holds none either
            r = await http.post(
                f"/conversations/{call_id}/context", json={"key": "k", "data": "hello world"}
            )
            assert r.status_code == 202, r.text
            assert r.json()["tokens"] == 2  # o200k's count (the chars/4 estimate says 3)
            assert holds_tables(pid)


class Sink:
    async def inject_context(self, key: str, data: object) -> None:
        pass


async def test_the_deferred_counter_loads_at_the_first_injection() -> None:
    counter = DeferredTokenCounter()
    ctx = ContextManager(Sink(), counter=counter)
    assert not counter.loaded
    result = await ctx.inject("k", "hello world")
    assert counter.loaded and counter.name == "o200k_base"
    assert result.tokens == 2
    assert counter.count("one two three") == 3
    await ctx.close()

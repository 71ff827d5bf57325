"""A guided flow through the whole app: ``Parley(flow=...)`` on the local cascade with
an OpenAI-compatible brain (the loopback wire server), driven over the browser
WebSocket with typed turns, its progress read from ``GET /conversations/{id}/progress``."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import websockets

from parley.app import Parley
from parley.config import EngineKind, ParleySettings
from parley.protocols.browser import (
    ResponseDoneMessage,
    StartMessage,
    UserTextMessage,
    encode_client_message,
    parse_server_frame,
)
from parley.testing import OpenAIWireServer, ScriptedReply, ScriptedToolCall
from servers import serve_app

FLOW = Path(__file__).resolve().parent.parent / "examples" / "restaurant_ordering.yaml"


def tool(name: str, **args: str) -> ScriptedToolCall:
    return ScriptedToolCall(name, (json.dumps(args),))


async def test_app_flow_moves_phases_and_serves_progress() -> None:
    async with OpenAIWireServer() as llm:
        llm.script(
            ScriptedReply(
                tool_calls=(
                    tool("record_observation", key="customer_name", value="Ana"),
                    tool("transition_to", phase="ordering"),
                )
            ),
            ScriptedReply(text=("Hi Ana! ", "What would you like?")),
        )
        settings = ParleySettings(
            engine=EngineKind.LOCAL,
            brain="openai:test-model",
            llm_base_url=llm.openai_base_url,
            llm_api_key="test-key",  # type: ignore[arg-type]
        )
        app = Parley(settings=settings, flow=FLOW)
        async with serve_app(app) as server, httpx.AsyncClient(base_url=server.url) as http:
            created = (await http.post("/conversations", json={})).json()
            cid = created["id"]
            before = (await http.get(f"/conversations/{cid}/progress")).json()
            assert before["phase"] == "greeting" and before["percent"] == 0.0

            async with websockets.connect(server.ws_url(f"/ws/audio/{cid}")) as ws:
                await ws.send(encode_client_message(StartMessage()))
                await ws.send(encode_client_message(UserTextMessage(text="Hi, this is Ana.")))
                while True:
                    frame = await ws.recv()
                    if isinstance(frame, str) and isinstance(
                        parse_server_frame(frame), ResponseDoneMessage
                    ):
                        break

                progress = (await http.get(f"/conversations/{cid}/progress")).json()
                assert progress["phase"] == "ordering"
                assert progress["phases_visited"] == ["greeting", "ordering"]
                assert progress["observations"] == {"customer_name": "Ana"}
                assert 0 < progress["percent"] < 100

        # The model was told the greeting phase first and offered only the flow's moves.
        first = llm.chat_requests[0]
        system = first["messages"][0]["content"]
        assert "greeting" in system.lower()
        names = {t["function"]["name"] for t in first["tools"]}
        assert {"record_observation", "transition_to"} <= names
        # After the move, the next request carried the ordering phase's instructions.
        assert "item by item" in llm.chat_requests[-1]["messages"][0]["content"]

    no_flow = Parley(settings=ParleySettings(engine=EngineKind.LOOPBACK))
    async with serve_app(no_flow) as server, httpx.AsyncClient(base_url=server.url) as http:
        cid = (await http.post("/conversations", json={})).json()["id"]
        r = await http.get(f"/conversations/{cid}/progress")
        assert r.status_code == 404 and "no guided flow" in r.json()["detail"]
        assert (await http.get("/conversations/nope/progress")).status_code == 404

"""Analytics through the real server: every call metered by the switchboard, the app's
``on_metrics_update`` handlers and ``analytics_processor`` off the call's path, the
SQLite history across two server lifetimes, ``/analytics/costs``, ``/metrics`` and
OpenTelemetry spans over OTLP/HTTP to a loopback receiver.

Calls are real Twilio Media Streams over a real socket (tests/servers.py's
``TwilioPhone``); the brain is the cascade with deterministic fakes (energy VAD, a
scripted STT and LLM, a tone TTS); the seed test runs the offline
cascade (Silero, Whisper, the echo brain, Piper) on a sentence Piper spoke
(tests/test_server_analytics_seed.py: it loads Whisper, so it runs after the tests
that check that a custom engine loads no model).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import websockets
from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from parley import AnalyticsResult, ConversationMetrics, Turn
from parley.analytics.feed import FeedMessage
from parley.app import EngineRequest, Parley
from parley.audio.g711 import ulaw_encode
from parley.config import ConversationConfig, EngineKind, ParleySettings
from parley.engines.cascade import CascadeConfig, CascadeEngine
from parley.engines.seams import Engine
from parley.events import Role
from parley.testing.fakes import FakeLLM, FakeSTT, FakeTTS, FakeVAD
from servers import RunningServer, TwilioPhone, serve_app, serve_asgi

FRAME = 160  # 20 ms of µ-law
ANALYTICS = ConversationConfig(enable_analytics=True, track_costs=True, track_engagement=True)


def tone_ulaw(ms: int, freq: float = 440.0, amplitude: int = 8000) -> bytes:
    t = np.arange(ms * 8) / 8000
    return ulaw_encode((amplitude * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes())


def silence_ulaw(ms: int) -> bytes:
    return b"\xff" * (ms * 8)


def frames(ulaw: bytes) -> list[bytes]:
    return [ulaw[i : i + FRAME] for i in range(0, len(ulaw), FRAME)]


def fake_cascade(request: EngineRequest) -> Engine:
    """Energy VAD, scripted STT and LLM, tone TTS: a turn per tone burst."""
    return CascadeEngine(
        FakeVAD(16000),
        FakeSTT("I want a refund for my order"),
        FakeLLM(["Sure, I can help with the refund.", "Glad to help. Goodbye."]),
        FakeTTS(16000, ms_per_char=10.0),
        CascadeConfig(instructions=request.instructions, speculative_stt=False),
    )


def app_with(tmp_path: Path, config: ConversationConfig = ANALYTICS, **settings: Any) -> Parley:
    return Parley(
        config,
        settings=ParleySettings(
            engine=EngineKind.LOOPBACK, analytics_db=tmp_path / "analytics.sqlite3", **settings
        ),
        engine_factory=fake_cascade,
    )


async def next_message(
    queue: asyncio.Queue[FeedMessage], kind: str, wait_s: float = 30.0
) -> dict[str, Any]:
    """The next feed message of ``kind`` (the live feed is the hub's own signal)."""
    async with asyncio.timeout(wait_s):
        while True:
            msg = await queue.get()
            assert msg is not None, "the feed ended"
            if msg[0] == kind:
                return msg[1]


async def until_reply_done(
    phone: TwilioPhone, *, echo_marks: bool = True, gap_s: float = 0.6
) -> int:
    """Receive the reply's media until it stops for ``gap_s``, echoing its marks as
    Twilio does when the audio has played; the µ-law bytes received."""
    got = 0
    while True:
        try:
            kind, payload = await phone.receive(wait_s=gap_s if got else 30.0)
        except TimeoutError:
            return got
        if kind == "media":
            assert isinstance(payload, bytes)
            got += len(payload)
        elif kind == "mark" and echo_marks:
            await phone.send_mark(str(payload))


async def one_turn(phone: TwilioPhone) -> int:
    for f in frames(tone_ulaw(500) + silence_ulaw(900)):
        await phone.send_media(f)
    return await until_reply_done(phone)


async def twilio_call(server: RunningServer, turns: int, *, user: str = "") -> None:
    async with websockets.connect(server.ws_url("/twilio/stream")) as ws:
        phone = TwilioPhone(ws)
        await phone.start({"from": user} if user else None)  # the caller: user_id
        for _ in range(turns):
            assert await one_turn(phone) > 0
        await phone.stop()


# ---------------------------------------------------------------- handlers, processors


async def test_handlers_and_processor_get_metrics_and_the_transcript(tmp_path: Path) -> None:
    app = app_with(tmp_path)
    seen: list[ConversationMetrics] = []
    transcripts: list[list[Turn]] = []

    @app.on_metrics_update
    async def handle(metrics: ConversationMetrics) -> None:
        seen.append(metrics)

    @app.analytics_processor
    async def process(transcript: list[Turn]) -> AnalyticsResult:
        transcripts.append(transcript)
        return AnalyticsResult(sentiment=0.4, topics=["refund"], resolution_status="resolved")

    feed = app.analytics.feed.subscribe()
    async with serve_app(app) as server:
        await twilio_call(server, 2)
        ended = await next_message(feed, "call_ended")
        await next_message(feed, "analytics")
        async with httpx.AsyncClient(base_url=server.url) as http:
            info = (await http.get(f"/conversations/{ended['session_id']}")).json()
    per_turn = [m for m in seen if not m.final]
    assert [m.turn_index for m in per_turn] == [0, 1]
    assert all(m.voice_to_voice_ms is not None and m.voice_to_voice_ms > 0 for m in per_turn)
    assert all(m.estimated_cost is not None and m.estimated_cost > 0 for m in per_turn)  # line
    (final,) = [m for m in seen if m.final]
    assert final.turns == 2 and final.engagement_score is not None
    assert final.played_voice_to_voice_ms is not None  # from the echoed marks
    (transcript,) = transcripts
    assert [t.role for t in transcript] == [Role.USER, Role.ASSISTANT] * 2
    # The REST view: the meter's figures and the processor's result.
    assert info["metrics"]["voice_to_voice_ms"]["count"] == 2
    assert [t["turn_index"] for t in info["turn_metrics"]] == [0, 1]
    assert info["estimated_cost"] == final.estimated_cost
    assert info["engagement_score"] == final.engagement_score
    assert info["analytics"]["resolution_status"] == "resolved"
    assert info["analytics"]["topics"] == ["refund"]


async def test_a_slow_or_failing_handler_or_processor_never_delays_or_breaks_a_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_with(tmp_path)
    release = asyncio.Event()
    release_thread = threading.Event()
    started_handlers = 0

    @app.on_metrics_update
    async def stuck(metrics: ConversationMetrics) -> None:
        nonlocal started_handlers
        started_handlers += 1
        await release.wait()  # never returns during the call

    @app.on_metrics_update
    async def broken(metrics: ConversationMetrics) -> None:
        raise RuntimeError("handler bug")

    @app.analytics_processor
    async def blocking(transcript: list[Turn]) -> AnalyticsResult:
        # CPU-bound work written in an async def: it blocks its thread outright.
        release_thread.wait(20)
        raise ValueError("processor bug")

    feed = app.analytics.feed.subscribe()
    async with serve_app(app) as server:
        t0 = time.monotonic()
        await twilio_call(server, 3)  # every turn answered while the handlers hang
        ended = await next_message(feed, "call_ended", wait_s=5)
        call_s = time.monotonic() - t0
        # The next call starts and runs at once, the processor still blocked.
        await twilio_call(server, 1)
        second = await next_message(feed, "call_ended", wait_s=5)
        assert app.analytics.queue is not None and app.analytics.queue.depth == 2
        release_thread.set()
        outcome = await next_message(feed, "analytics")
        async with httpx.AsyncClient(base_url=server.url) as http:
            info = (await http.get(f"/conversations/{ended['session_id']}")).json()
        release.set()
    assert started_handlers >= 4  # 3 turns + the summary, and more for the second call
    assert second["turns"] == 1
    assert call_s < 15
    assert outcome["error"] == "ValueError: processor bug"
    assert info["analytics"] is None and info["analytics_error"] == "ValueError: processor bug"
    assert info["metrics"]["voice_to_voice_ms"]["count"] == 3
    assert "on_metrics_update handler failed" in caplog.text and "handler bug" in caplog.text


async def test_without_a_processor_the_built_in_one_runs(tmp_path: Path) -> None:
    app = app_with(tmp_path)
    feed = app.analytics.feed.subscribe()
    async with serve_app(app) as server:
        await twilio_call(server, 1)
        ended = await next_message(feed, "call_ended")
        await next_message(feed, "analytics")
        async with httpx.AsyncClient(base_url=server.url) as http:
            stored = (await http.get(f"/analytics/calls/{ended['session_id']}")).json()
    # VADER and the keyword topics over "I want a refund for my order".
    assert stored["analytics"]["topics"][:2] == ["refund", "orders"] or set(
        stored["analytics"]["topics"]
    ) >= {"refund", "orders"}
    assert stored["analytics"]["resolution_status"] in {"ongoing", "resolved", "unresolved"}
    assert isinstance(stored["analytics"]["sentiment"], float)


# ---------------------------------------------------------------- history and costs


async def test_the_history_survives_a_restart_and_costs_group_by_user_session_tier_day(
    tmp_path: Path,
) -> None:
    first = app_with(tmp_path)
    feed = first.analytics.feed.subscribe()
    async with serve_app(first) as server:
        await twilio_call(server, 2, user="alice")
        await next_message(feed, "analytics")
        await twilio_call(server, 1, user="bob")
        await next_message(feed, "analytics")
        await twilio_call(server, 1, user="alice")
        await next_message(feed, "analytics")
    # A second server lifetime over the same file.
    second = app_with(tmp_path)
    async with serve_app(second) as server, httpx.AsyncClient(base_url=server.url) as http:
        by_user = (await http.get("/analytics/costs", params={"group_by": "user"})).json()
        by_session = (await http.get("/analytics/costs", params={"group_by": "session"})).json()
        by_tier = (await http.get("/analytics/costs", params={"group_by": "tier"})).json()
        by_day = (await http.get("/analytics/costs", params={"group_by": "day"})).json()
        bad = await http.get("/analytics/costs", params={"group_by": "planet"})
        summary = (await http.get("/analytics/summary")).json()
        calls = (await http.get("/analytics/calls")).json()
    users = {t["key"]: t for t in by_user["totals"]}
    assert set(users) == {"alice", "bob"}
    assert users["alice"]["calls"] == 2 and users["bob"]["calls"] == 1
    assert all(t["by_part"]["telephony"] > 0 for t in by_user["totals"])  # Twilio minutes
    assert len(by_session["totals"]) == 3 and by_tier["totals"][0]["calls"] == 3
    assert len(by_day["totals"]) == 1 and by_day["calls"] == 3
    assert by_user["cost_usd"] == pytest.approx(by_session["cost_usd"])
    assert bad.status_code == 422
    assert summary["stored"] is True and summary["finished"]["count"] == 3
    assert summary["histograms"]["voice_to_voice_ms"]["count"] == 4
    assert sum(summary["histograms"]["voice_to_voice_ms"]["counts"]) == 4
    assert len(summary["engagement_trend"]) == 3
    assert all(c["analytics"] is not None for c in calls)


def test_the_retention_drops_old_calls(tmp_path: Path) -> None:
    from parley.analytics.history import CallHistory, StoredCall
    from parley.metrics.cost import CostBreakdown
    from parley.metrics.records import CallRecord

    path = tmp_path / "h.sqlite3"
    history = CallHistory(path, retention_days=30)
    now = time.time()
    for sid, ended in (("old", now - 2 * 86400), ("new", now - 3600)):
        record = CallRecord(sid, "u", "", ended - 60, ended, CostBreakdown(telephony=0.01))
        history.save(StoredCall(record, "twilio", "cascade", {"estimated_cost": 0.01}))
    history.close()
    # Opened again with a retention of one day: the two-day-old call goes.
    history = CallHistory(path, retention_days=1)
    history.open()
    assert [r.session_id for r in history.records()] == ["new"]
    assert history.get("new") is not None and history.get("old") is None
    history.close()


# ---------------------------------------------------------------- /metrics and traces


async def test_metrics_are_exposed_for_prometheus(tmp_path: Path) -> None:
    app = app_with(tmp_path)
    feed = app.analytics.feed.subscribe()
    async with serve_app(app) as server:
        await twilio_call(server, 2)
        await next_message(feed, "call_ended")
        async with httpx.AsyncClient(base_url=server.url) as http:
            r = await http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }
    assert samples[("parley_calls_total", (("engine", "loopback"),))] == 1
    assert samples[("parley_live_calls", ())] == 0
    assert sum(v for (n, _), v in samples.items() if n == "parley_turns_total") == 2
    v2v = [v for (n, _), v in samples.items() if n == "parley_voice_to_voice_seconds_count"]
    assert v2v == [2]
    assert samples[("parley_cost_usd_total", ())] > 0


async def test_metrics_off_means_no_meter_and_no_metrics(tmp_path: Path) -> None:
    app = app_with(tmp_path, ConversationConfig(), metrics=False)
    async with serve_app(app) as server, httpx.AsyncClient(base_url=server.url) as http:
        await twilio_call(server, 1)
        assert (await http.get("/metrics")).status_code == 404
        # the ended call is in the session store, not in memory
        (listed,) = (await http.get("/conversations")).json()["conversations"]
        info = (await http.get(f"/conversations/{listed['id']}")).json()
    assert info["metrics"] == {} and info["estimated_cost"] is None


class OtlpReceiver:
    """An OTLP/HTTP trace endpoint on loopback: decodes what the exporter posts."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.got = asyncio.Event()
        self.api = FastAPI()

        @self.api.post("/v1/traces")
        async def traces(request: Request) -> Response:
            assert request.headers["content-type"] == "application/x-protobuf"
            req = ExportTraceServiceRequest()
            req.ParseFromString(await request.body())
            for rs in req.resource_spans:
                for ss in rs.scope_spans:
                    self.spans.extend(ss.spans)
            self.got.set()
            return Response(b"", media_type="application/x-protobuf")


@pytest.fixture
async def otlp() -> AsyncIterator[tuple[OtlpReceiver, int]]:
    receiver = OtlpReceiver()
    async with serve_asgi(receiver.api) as port:
        yield receiver, port


async def test_traces_reach_an_otlp_receiver_through_the_server(
    tmp_path: Path, otlp: tuple[OtlpReceiver, int]
) -> None:
    receiver, port = otlp
    app = app_with(tmp_path, otlp_endpoint=f"http://127.0.0.1:{port}/v1/traces")
    feed = app.analytics.feed.subscribe()
    async with serve_app(app) as server:
        await twilio_call(server, 2, user="alice@example.com")
        ended = await next_message(feed, "call_ended")
    # The server's shutdown flushed the batch.
    await asyncio.wait_for(receiver.got.wait(), 10)
    by_name: dict[str, list[Any]] = {}
    for span in receiver.spans:
        by_name.setdefault(span.name, []).append(span)
    (conversation,) = by_name["conversation"]
    turns = by_name["turn"]
    assert len(turns) == 2 and all(t.parent_span_id == conversation.span_id for t in turns)
    turn_ids = {t.span_id for t in turns}
    for child in ("stt", "llm", "tts"):
        assert by_name[child] and all(s.parent_span_id in turn_ids for s in by_name[child])
    attrs = {a.key: a.value for a in conversation.attributes}
    assert attrs["parley.session_id"].string_value == ended["session_id"]
    assert attrs["parley.turns"].int_value == 2
    # No PII: the user id and the transcript are nowhere in what was exported.
    exported = b"".join(s.SerializeToString() for s in receiver.spans)
    assert b"alice" not in exported and b"refund" not in exported

"""OpenTelemetry spans from call meters: the conversation → turn → stt/llm/tts tree with
the SDK's in-memory exporter, and the same spans over OTLP/HTTP to a loopback receiver
that decodes the protobuf it gets (opentelemetry-proto)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from call_script import Script
from parley.events import ErrorEvent, TurnMetrics, Usage
from parley.metrics import CallMeter
from parley.metrics.tracing import CallTracer, build_tracer_provider

PHONE = "+1 415 555 0100"
SAID = "my number is " + PHONE
REPLY = "Thanks, I have noted your number."


def a_traced_call(tracer: CallTracer) -> CallMeter:
    s = Script()
    s.reply(after=0.3, seconds=1.0, text="Hello, how can I help?")  # greeting: no speech
    s.wait(0.5).say(2.0, text=SAID)
    s.reply(
        after=0.8,
        seconds=1.5,
        text=REPLY,
        usage=Usage(input_text_tokens=300, output_text_tokens=40),
        metrics=TurnMetrics(1, 800.0, 250.0, 180.0, 320.0, 90.0),
    )
    s.wait(0.4).say(1.0, text="and my card ends 4242")
    s.reply(after=0.7, seconds=2.0, cut_at=0.5)
    s.wait(0.6).stop(text="stop")
    s.at(ErrorEvent("upstream_error", f"could not dial {PHONE}"))
    meter = CallMeter("call-42", s.start, sinks=[tracer], transport="twilio")
    for event, at in s.events:
        meter.observe(event, at)
    meter.finish(s.t + 0.5)
    return meter


def test_span_tree_in_memory() -> None:
    exporter = InMemorySpanExporter()
    provider = build_tracer_provider(exporter=exporter, batch=False)
    meter = a_traced_call(CallTracer(provider))
    spans = exporter.get_finished_spans()
    by_name: dict[str, list] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    (root,) = by_name["conversation"]
    assert root.parent is None
    turns = by_name["turn"]
    assert len(turns) == len(meter.turns) == 4  # greeting, answer, cut reply, unanswered
    assert all(t.parent is not None and t.parent.span_id == root.context.span_id for t in turns)
    assert all(t.context.trace_id == root.context.trace_id for t in spans)
    answered = turns[1]
    kids = {s.name: s for s in spans if s.parent and s.parent.span_id == answered.context.span_id}
    assert set(kids) == {"stt", "llm", "tts"}
    ns = 1_000_000
    assert kids["stt"].end_time - kids["stt"].start_time == pytest.approx(180 * ns, abs=1000)
    assert kids["llm"].end_time - kids["llm"].start_time == pytest.approx(320 * ns, abs=1000)
    assert kids["tts"].end_time - kids["tts"].start_time == pytest.approx(90 * ns, abs=1000)
    fig = meter.turns[1]
    assert kids["tts"].end_time == pytest.approx(
        answered.start_time + (fig.first_audio_at - fig.started_at) * 1e9, abs=1000
    )
    assert kids["stt"].start_time >= answered.start_time
    assert answered.attributes["parley.voice_to_voice_ms"] == 800.0
    assert answered.attributes["parley.output_tokens"] == 40
    assert turns[2].attributes["parley.turn.interrupted"] is True
    assert [e.name for e in root.events] == ["interruption", "error"]
    assert root.events[1].attributes["parley.error_code"] == "upstream_error"
    assert root.attributes["parley.turns"] == 4
    assert root.end_time > turns[-1].start_time
    for span in spans:
        for v in list(span.attributes.values()) + [
            v for e in span.events for v in e.attributes.values()
        ]:
            text = str(v)
            assert PHONE not in text and "4242" not in text and "noted" not in text


class Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP traces endpoint: decodes each request, answers as a collector does."""

    requests: ClassVar[list[tuple[str, str, bytes]]] = []
    got: ClassVar[threading.Event] = threading.Event()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).requests.append((self.path, self.headers["Content-Type"], body))
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
        type(self).got.set()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, type[Collector]]]:
    handler = type("Handler", (Collector,), {"requests": [], "got": threading.Event()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1/traces", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_spans_go_out_over_otlp_http(collector: tuple[str, type[Collector]]) -> None:
    url, handler = collector
    provider = build_tracer_provider(service_name="parley-test", otlp_endpoint=url)
    a_traced_call(CallTracer(provider))
    provider.force_flush(timeout_millis=10_000)  # the batch processor sends now
    assert handler.got.wait(timeout=10)
    provider.shutdown()
    spans = []
    for path, content_type, body in handler.requests:
        assert path == "/v1/traces" and content_type == "application/x-protobuf"
        assert PHONE.encode() not in body and b"4242" not in body and b"noted" not in body
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            service = {a.key: a.value.string_value for a in rs.resource.attributes}
            assert service["service.name"] == "parley-test"
            for ss in rs.scope_spans:
                spans.extend(ss.spans)
    names = sorted(s.name for s in spans)
    # Every reply has an llm span (time to first output); the engine's figures add stt
    # and tts to the turn that reported them.
    expected = ["conversation"] + ["turn"] * 4 + ["llm"] * 3 + ["stt", "tts"]
    assert names == sorted(expected)
    root = next(s for s in spans if s.name == "conversation")
    assert root.parent_span_id == b""
    turn_ids = {s.span_id for s in spans if s.name == "turn"}
    assert all(s.parent_span_id == root.span_id for s in spans if s.name == "turn")
    assert all(s.parent_span_id in turn_ids for s in spans if s.name in {"stt", "llm", "tts"})
    attrs = {a.key: a.value for a in root.attributes}
    assert attrs["parley.session_id"].string_value == "call-42"
    assert attrs["parley.transport"].string_value == "twilio"
    assert attrs["parley.turns"].int_value == 4


def test_no_endpoint_no_export() -> None:
    provider = build_tracer_provider()
    tracer = CallTracer(provider)
    a_traced_call(tracer)  # spans are made and dropped: nothing to assert but no error
    provider.shutdown()

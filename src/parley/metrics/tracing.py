"""OpenTelemetry traces of calls: conversation → turn → stt / llm / tts spans.

:class:`CallTracer` is a :class:`~parley.metrics.meter.MetricsSink`, fed by the same
call meters as the Prometheus registry. It opens a ``conversation`` span when a call
starts and ends it with the call; each finished turn becomes a ``turn`` span (from
the caller's speech to the reply's end) with child spans laid out from the turn's
figures:

- ``stt``: from the end of the caller's speech, ``stt_ms`` long;
- ``llm``: from the reply's start (or the end of speech), ``llm_first_token_ms`` long
  (time to first token; for a speech-to-speech model, to its first output);
- ``tts``: ending at the first reply audio, ``tts_first_byte_ms`` long.

Spans are created after the fact with explicit start and end times, so tracing costs
nothing until a turn ends. Incidents (barge-ins, errors, failovers, context
injections) are events on the conversation span.

No PII: attributes are ids made by the server, engine names, counts, durations,
token counts and cost — never transcript text, phone numbers or user ids; error
events carry the error *code*, not its message (messages can quote the caller).

:func:`build_tracer_provider` exports over OTLP/HTTP when an endpoint is configured
(argument, or the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` variables).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, Tracer

from parley.metrics.conversation_metrics import ConversationMetrics, TurnFigures
from parley.metrics.meter import CallInfo, Incident

__all__ = ["CallTracer", "build_tracer_provider"]

_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def build_tracer_provider(
    *,
    service_name: str = "parley",
    otlp_endpoint: str | None = None,
    exporter: SpanExporter | None = None,
    batch: bool = True,
) -> TracerProvider:
    """A tracer provider for Parley's spans.

    ``exporter`` wins; else OTLP/HTTP to ``otlp_endpoint`` (a full ``…/v1/traces``
    URL) or to the endpoint the standard environment variables name; else spans are
    made and dropped (tracing configured off). ``batch=False`` exports each span as it
    ends (tests, debugging).
    """
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is None and (otlp_endpoint or any(os.environ.get(v) for v in _ENDPOINT_VARS)):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=otlp_endpoint)
    if exporter is not None:
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
    return provider


@dataclass(slots=True)
class _Call:
    span: Span
    context: Context


class CallTracer:
    """Spans for every call a meter reports. ``clock_offset_ns`` maps the meters' clock
    (``time.monotonic()`` seconds) to epoch nanoseconds; the default is measured now."""

    def __init__(
        self,
        provider: trace.TracerProvider | None = None,
        *,
        clock_offset_ns: int | None = None,
    ) -> None:
        self._tracer: Tracer = (provider or trace.get_tracer_provider()).get_tracer("parley")
        self._offset = (
            clock_offset_ns if clock_offset_ns is not None else time.time_ns() - time.monotonic_ns()
        )
        self._calls: dict[str, _Call] = {}

    def _ns(self, t: float) -> int:
        return int(t * 1e9) + self._offset

    def call_started(self, call: CallInfo) -> None:
        span = self._tracer.start_span(
            "conversation",
            start_time=self._ns(call.started_at),
            attributes={
                "parley.session_id": call.session_id,
                "parley.engine": call.engine,
                "parley.transport": call.transport,
            },
        )
        self._calls[call.session_id] = _Call(span, trace.set_span_in_context(span))

    def turn_finished(self, call: CallInfo, turn: TurnFigures) -> None:
        parent = self._calls.get(call.session_id)
        if parent is None:
            return
        attrs: dict[str, str | int | float | bool] = {
            "parley.turn.index": turn.index,
            "parley.turn.status": turn.status,
            "parley.turn.interrupted": turn.interrupted,
            "parley.engine": turn.engine,
            "parley.response_id": turn.response_id,
            "parley.caller_speech_ms": turn.caller_speech_ms,
            "parley.agent_audio_ms": turn.agent_audio_ms,
        }
        for name in ("voice_to_voice_ms", "played_voice_to_voice_ms", "end_of_turn_ms"):
            value = getattr(turn, name)
            if value is not None:
                attrs[f"parley.{name}"] = value
        if turn.usage is not None:
            attrs["parley.input_tokens"] = turn.usage.input_tokens
            attrs["parley.output_tokens"] = turn.usage.output_tokens
        span = self._tracer.start_span(
            "turn", context=parent.context, start_time=self._ns(turn.started_at), attributes=attrs
        )
        ctx = trace.set_span_in_context(span)
        speech_end = turn.speech_ended_at
        if speech_end is not None and turn.stt_ms is not None:
            self._child("stt", ctx, speech_end, turn.stt_ms)
        llm_start = turn.response_started_at or speech_end
        if llm_start is not None and turn.llm_first_token_ms is not None:
            self._child("llm", ctx, llm_start, turn.llm_first_token_ms)
        if turn.first_audio_at is not None and turn.tts_first_byte_ms is not None:
            ms = turn.tts_first_byte_ms
            self._child("tts", ctx, turn.first_audio_at - ms / 1000.0, ms)
        span.end(end_time=self._ns(max(turn.ended_at, turn.started_at)))

    def _child(self, name: str, ctx: Context, start: float, ms: float) -> None:
        span = self._tracer.start_span(
            name, context=ctx, start_time=self._ns(start), attributes={"parley.duration_ms": ms}
        )
        span.end(end_time=self._ns(start + ms / 1000.0))

    def incident(self, call: CallInfo, kind: Incident, detail: str, value: float) -> None:
        parent = self._calls.get(call.session_id)
        if parent is None:
            return
        attrs: dict[str, str | float] = {}
        if detail:
            key = {
                Incident.ERROR: "parley.error_code",
                Incident.FATAL_ERROR: "parley.error_code",
                Incident.FAILOVER: "parley.engine",
                Incident.CONTEXT_INJECTED: "parley.context_source",
            }.get(kind, "parley.detail")
            attrs[key] = detail
        if kind is Incident.CONTEXT_INJECTED:
            attrs["parley.latency_ms"] = value
        parent.span.add_event(kind.value, attributes=attrs)

    def call_finished(self, call: CallInfo, summary: ConversationMetrics) -> None:
        entry = self._calls.pop(call.session_id, None)
        if entry is None:
            return
        attrs: dict[str, str | int | float] = {
            "parley.turns": summary.turns,
            "parley.interruptions": summary.interruptions,
            "parley.silences": summary.silences,
            "parley.duration_ms": summary.duration_ms,
            "parley.errors": summary.errors,
            "parley.failovers": summary.failovers,
            "parley.ended_by": summary.ended_by,
            "parley.final_engine": summary.engine,
        }
        if summary.talk_ratio is not None:
            attrs["parley.talk_ratio"] = summary.talk_ratio
        if summary.estimated_cost is not None:
            attrs["parley.estimated_cost_usd"] = summary.estimated_cost
        if summary.engagement_score is not None:
            attrs["parley.engagement_score"] = summary.engagement_score
        entry.span.set_attributes(attrs)
        entry.span.end(end_time=self._ns(call.started_at + summary.duration_ms / 1000.0))

"""LLM traffic as an instrumented application traces it, and the same traffic as v1 events.

Every request of :func:`make_traffic` is served the way a team using OpenTelemetry and OpenFeature serves
it: a gateway span (``POST /v1/chat``, service ``chat-gateway``) on which the OpenFeature SDK evaluates
the rollout flags — through the flagd provider in-process with a FILE source, with the OpenTelemetry
hook (``TracingHook``) writing each evaluation as an event on that span — and, as its child, the model
call's GenAI span (service ``llm-service``, another tracer provider, as another process would). Spans
are made by the real OpenTelemetry SDK with explicit start and end times, and encoded into OTLP
payloads by the real encoder (``encode_spans``), the one the Collector's exporters are built on. The
two services export separately, the gateway a few seconds later (its spans end last), so a model
call's span and the span holding its flag evaluation usually travel in different payloads.

The v1 events of the same traffic are written from the request plan (the arm is the variant the flag
served, ids are the spans'): what an application that produced rollguard's own contract would send.
"""

from __future__ import annotations

import base64
import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf.json_format import MessageToDict
from openfeature import api
from openfeature.contrib.hook.opentelemetry import TracingHook
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

CHAT = "chat-assist"  # the rollout with a regression: canary errors on coding requests
SUMMARY = "summary-prompt"  # an A/A rollout evaluated on summarize requests only
MODELS = {"control": "model-2025-10", "canary": "model-2026-01"}
PRICE = (0.0005, 0.0015)  # USD per 1k input, output tokens (both models)
MARKER = "PRIVATE-CONTENT-7f3a"  # in every message content: it must never reach an output
CLASSES = ("chat", "coding", "summarize", "internal")
TENANTS = ("acme", "globex", "initech")

CONFIG = """\
otlp:
  segments: {input_class: app.input_class, tenant: tenant.id}
  prices:
    model-2025-10: {input_per_1k: 0.0005, output_per_1k: 0.0015}
    model-2026-01: {input_per_1k: 0.0005, output_per_1k: 0.0015}
"""


def flags_doc() -> dict[str, Any]:
    """The flagd flags: internal traffic always gets control; 30% of users the canary model."""
    return {
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "flags": {
            CHAT: {
                "state": "ENABLED",
                "variants": dict(MODELS),
                "defaultVariant": "control",
                "targeting": {
                    "if": [
                        {"==": [{"var": "inputClass"}, "internal"]},
                        "control",
                        {"fractional": [["canary", 30], ["control", 70]]},
                    ]
                },
                "metadata": {"version": "1"},
            },
            SUMMARY: {
                "state": "ENABLED",
                "variants": {"control": "prompt-v1", "canary": "prompt-v2"},
                "defaultVariant": "control",
                "targeting": {"fractional": [["canary", 50], ["control", 50]]},
                "metadata": {"version": "1"},
            },
        },
    }


class SeededIds(IdGenerator):
    """Trace and span ids from a seeded generator: the same traffic every run."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def generate_span_id(self) -> int:
        return self.rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self.rng.getrandbits(128) or 1


@dataclass
class Traffic:
    """One run of traffic: its spans in each service's export order, and the v1 events of it."""

    gateway_spans: list[ReadableSpan] = field(default_factory=list)
    llm_spans: list[ReadableSpan] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # v1, in (end time, ids, rollout) order
    unjoined: int = 0  # inference spans in traces without a flag evaluation
    malformed: list[tuple[str, str]] = field(default_factory=list)  # (trace id, span id)
    not_inference: int = 0

    def payloads(self, every_s: float = 5.0, max_spans: int = 128, gateway_lag_s: float = 2.0) -> list[bytes]:
        """OTLP protobuf payloads as two services' batch span processors send them: each service's spans
        ending in one ``every_s`` interval (at most ``max_spans``) in one payload, sent at the interval's
        end — the gateway's ``gateway_lag_s`` later — so that payloads of both services interleave."""
        sent: list[tuple[float, int, int, bytes]] = []
        for service, (spans, lag) in enumerate(((self.llm_spans, 0.0), (self.gateway_spans, gateway_lag_s))):
            for i, (due, batch) in enumerate(_batches(spans, every_s, max_spans)):
                sent.append((due + lag, service, i, encode_spans(batch).SerializeToString()))
        return [payload for *_, payload in sorted(sent)]


def _batches(
    spans: list[ReadableSpan], every_s: float, max_spans: int
) -> Iterator[tuple[float, list[ReadableSpan]]]:
    """Spans in export order grouped by the ``every_s`` interval they end in (at most ``max_spans`` each),
    each with the time it is sent at (the interval's end)."""
    batch: list[ReadableSpan] = []
    due = 0.0
    for span in spans:
        end_s = (span.end_time or 0) / 1e9
        if batch and (end_s >= due or len(batch) >= max_spans):
            yield due, batch
            batch = []
        if not batch:
            due = (int(end_s // every_s) + 1) * every_s
        batch.append(span)
    if batch:
        yield due, batch


def otlp_json(payload: bytes) -> bytes:
    """A protobuf payload in the OTLP JSON encoding, as the Collector's ``otlp_json`` writes it: the
    protobuf JSON mapping with hex trace and span ids and enums as integers (int64 as strings)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    doc = MessageToDict(ExportTraceServiceRequest.FromString(payload), use_integers_for_enums=True)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in sp:
                        sp[key] = base64.b64decode(sp[key]).hex()
    return json.dumps(doc, separators=(",", ":")).encode()


def by_trace(payload: bytes) -> list[tuple[bytes, bytes]]:
    """A protobuf payload split as the Collector's Kafka exporter with ``partition_traces_by_id: true``
    splits it: one message per trace, keyed by the trace id (its resources and scopes kept)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest.FromString(payload)
    traces: dict[bytes, ExportTraceServiceRequest] = {}
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for sp in ss.spans:
                out = traces.setdefault(sp.trace_id, ExportTraceServiceRequest())
                if not out.resource_spans or out.resource_spans[-1].resource != rs.resource:
                    out.resource_spans.add(resource=rs.resource, schema_url=rs.schema_url)
                target = out.resource_spans[-1]
                if not target.scope_spans or target.scope_spans[-1].scope != ss.scope:
                    target.scope_spans.add(scope=ss.scope, schema_url=ss.schema_url)
                target.scope_spans[-1].spans.append(sp)
    return [(trace_id.hex().encode(), out.SerializeToString()) for trace_id, out in traces.items()]


class Evaluator:
    """The application's flag client: OpenFeature SDK, flagd in-process (FILE source), tracing hook."""

    def __init__(self, flags: Path) -> None:
        self.domain = f"otlp-test-{uuid.uuid4().hex[:8]}"
        self.provider = FlagdProvider(
            resolver_type=ResolverType.FILE, offline_flag_source_path=str(flags), deadline_ms=50
        )
        api.set_provider_and_wait(self.provider, self.domain)
        self.client = api.get_client(self.domain)
        self.client.add_hooks([TracingHook()])

    def variant(self, flag: str, unit: str, input_class: str) -> tuple[str, str]:
        ctx = EvaluationContext(targeting_key=unit, attributes={"inputClass": input_class})
        details = self.client.get_string_details(flag, "<default>", ctx)
        assert details.error_code is None and details.variant, details
        return str(details.variant), str(details.value)

    def close(self) -> None:
        self.provider.shutdown()


def make_traffic(
    flags: Path,
    *,
    n: int,
    start_s: float,
    duration_s: float,
    onset_s: float = 60.0,
    seed: int = 5,
    noise: bool = True,
    error_rate: float = 0.30,
    failing: tuple[str, str] = ("coding", ""),
    mix: tuple[float, float, float, float] = (0.4, 0.3, 0.2, 0.1),
) -> Traffic:
    """``n`` requests over ``duration_s`` from ``start_s``: canary requests of the ``failing`` input class
    (and tenant, unless "") fail ``error_rate`` of the time after ``onset_s`` (1% before, and on every
    other request). ``mix``: the shares of the input classes (chat, coding, summarize, internal).
    ``noise`` adds what rollguard must skip or reject: inference spans in traces without a flag
    evaluation, embeddings spans, and one span with a negative token count."""
    rng = np.random.default_rng(seed)
    ids = SeededIds(seed)
    gw_exporter, llm_exporter = InMemorySpanExporter(), InMemorySpanExporter()
    gw_provider = TracerProvider(resource=Resource.create({"service.name": "chat-gateway"}), id_generator=ids)
    llm_provider = TracerProvider(resource=Resource.create({"service.name": "llm-service"}), id_generator=ids)
    gw_provider.add_span_processor(SimpleSpanProcessor(gw_exporter))
    llm_provider.add_span_processor(SimpleSpanProcessor(llm_exporter))
    gw, llm = gw_provider.get_tracer("chat-gateway"), llm_provider.get_tracer("llm-service")
    evaluator = Evaluator(flags)
    traffic = Traffic()
    gaps = rng.exponential(duration_s / n, n)
    ends = start_s + np.cumsum(gaps) * (duration_s / max(float(np.sum(gaps)), 1e-9))
    malformed_at = n // 2 if noise else -1
    rows: list[tuple[int, str, str, dict[str, Any]]] = []
    try:
        for i in range(n):
            end_ns = int(ends[i] * 1e9)
            unit = f"user-{int(rng.integers(0, 1500)):05d}"
            cls = CLASSES[int(rng.choice(4, p=list(mix)))]
            tenant = TENANTS[int(rng.integers(0, 3))]
            latency_ns = int(rng.lognormal(np.log(700.0), 0.35) * 1e6)
            ttft_s = float(latency_ns / 1e9 * rng.uniform(0.1, 0.3))
            tokens_in, tokens_out = int(rng.integers(50, 800)), int(rng.integers(20, 400))
            helpfulness = float(np.clip(rng.normal(0.8, 0.08), 0.0, 1.0))
            draw = float(rng.random())
            orphan = noise and i % 50 == 25  # a batch job: no flag evaluated in its trace
            with gw.start_as_current_span(
                "cron summarize" if orphan else "POST /v1/chat",
                kind=SpanKind.SERVER,
                start_time=end_ns - latency_ns - 4_000_000,
                end_on_exit=False,
            ) as root:
                root.set_attribute("enduser.id", unit)
                root.set_attribute("app.input_class", cls)
                root.set_attribute("tenant.id", tenant)
                served: dict[str, tuple[str, str]] = {}
                if not orphan:
                    served[CHAT] = evaluator.variant(CHAT, unit, cls)
                    if cls == "summarize":
                        served[SUMMARY] = evaluator.variant(SUMMARY, unit, cls)
                arm = served[CHAT][0] if CHAT in served else "control"
                model = MODELS[arm]
                in_scope = cls == failing[0] and failing[1] in ("", tenant)
                failing_now = arm == "canary" and in_scope and ends[i] - start_s > onset_s
                status = (
                    "error"
                    if draw < (error_rate if failing_now else 0.01)
                    else "timeout"
                    if draw > 0.995
                    else "refusal"
                    if 0.5 < draw < 0.51
                    else "ok"
                )
                if noise and i % 40 == 7:
                    with llm.start_as_current_span(
                        "embeddings text-embed-3", kind=SpanKind.CLIENT,
                        start_time=end_ns - latency_ns - 3_000_000, end_on_exit=False,
                    ) as emb:  # fmt: skip
                        emb.set_attribute("gen_ai.operation.name", "embeddings")
                        emb.end(end_time=end_ns - latency_ns - 1_000_000)
                    traffic.not_inference += 1
                with llm.start_as_current_span(
                    f"chat {model}", kind=SpanKind.CLIENT, start_time=end_ns - latency_ns, end_on_exit=False
                ) as span:
                    span.set_attribute("gen_ai.operation.name", "chat")
                    span.set_attribute("gen_ai.provider.name", "openai")
                    span.set_attribute("gen_ai.request.model", model)
                    span.set_attribute("gen_ai.response.model", f"{model}-0815")
                    span.set_attribute("gen_ai.usage.input_tokens", tokens_in)
                    span.set_attribute("gen_ai.usage.output_tokens", -3 if i == malformed_at else tokens_out)
                    span.set_attribute("gen_ai.response.time_to_first_chunk", ttft_s)
                    span.set_attribute(
                        "gen_ai.input.messages",
                        json.dumps(
                            [{"role": "user", "parts": [{"type": "text", "content": f"q{i} {MARKER}"}]}]
                        ),
                    )
                    answer = f"answer {i} {MARKER}"
                    span.set_attribute(
                        "gen_ai.output.messages",
                        json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]),
                    )
                    if status == "error":
                        span.set_attribute("error.type", "openai.InternalServerError")
                        span.set_status(Status(StatusCode.ERROR, "upstream 500"))
                    elif status == "timeout":
                        span.set_attribute("error.type", "openai.APITimeoutError")
                        span.set_status(Status(StatusCode.ERROR))
                    else:
                        reason = "content_filter" if status == "refusal" else "stop"
                        span.set_attribute("gen_ai.response.finish_reasons", [reason])
                        span.add_event(
                            "gen_ai.evaluation.result",
                            {
                                "gen_ai.evaluation.name": "helpfulness",
                                "gen_ai.evaluation.score.value": helpfulness,
                            },
                            timestamp=end_ns,
                        )
                    span.end(end_time=end_ns)
                    ctx = span.get_span_context()
                root.end(end_time=end_ns + 2_000_000)
            trace_id, span_id = f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"
            if orphan:
                traffic.unjoined += 1
                continue
            if i == malformed_at:
                traffic.malformed.append((trace_id, span_id))
                continue
            for rollout in sorted(served):
                variant = served[rollout][0]
                event: dict[str, Any] = {
                    "event_id": span_id,
                    "request_id": trace_id,
                    "ts": end_ns / 1e9,
                    "rollout_id": rollout,
                    "arm": variant,
                    "variant": variant,
                    "status": status,
                    "segment": {"input_class": cls, "tenant": tenant},
                    "unit_id": unit,
                    "latency_ms": latency_ns / 1e6,
                    "ttft_ms": ttft_s * 1000.0,
                    "tokens_in": float(tokens_in),
                    "tokens_out": float(tokens_out),
                    "cost_usd": float(tokens_in) / 1000.0 * PRICE[0] + float(tokens_out) / 1000.0 * PRICE[1],
                    "response_text": answer,
                }
                if status in ("ok", "refusal"):
                    event["quality"] = {"helpfulness": helpfulness}
                rows.append((end_ns, trace_id, span_id, event))
    finally:
        evaluator.close()
    traffic.events = [ev for *_, ev in sorted(rows, key=lambda r: (r[0], r[1], r[2], r[3]["rollout_id"]))]
    traffic.gateway_spans = list(gw_exporter.get_finished_spans())
    traffic.llm_spans = list(llm_exporter.get_finished_spans())
    traffic.not_inference += len(traffic.gateway_spans)
    return traffic


def write_flags(path: Path) -> Path:
    path.write_text(json.dumps(flags_doc(), indent=2) + "\n")
    return path


def now_window(duration_s: float, lead_s: float = 5.0) -> float:
    """A start time such that traffic of ``duration_s`` ends ``lead_s`` before now (present-day
    timestamps: controllers check command expiry against their own clock)."""
    return time.time() - duration_s - lead_s

"""Decode-and-map throughput of OpenTelemetry trace payloads against v1 JSON events (issue 17).

The same traffic three ways, translated in this process one after the other (so the ratios are robust
to how busy the machine is; the absolute figures are not):

- ``otlp_proto``: ``ExportTraceServiceRequest`` payloads as the Collector's Kafka exporter writes them,
  through :class:`rollguard.otlp.translate.OtlpTranslator` (decode, join each inference span with the
  flag evaluation on its parent request span, map to a v1 event);
- ``otlp_json``: the same payloads in the OTLP JSON encoding, through the same translator;
- ``v1``: the resulting events as v1 JSON lines, through :func:`rollguard.domain.events.parse_event` —
  what the worker does with a message of its events topic.

The spans are made with the OpenTelemetry SDK (a request span carrying the flag evaluation event that
OpenFeature's tracing hook writes, and its GenAI chat span) and encoded with the OTLP encoder of
``opentelemetry-exporter-otlp-proto-common``, ``--batch`` spans per payload. Rates are per event (one
per inference span) and per payload byte, by wall clock and by this process's CPU time.

Usage: ``python benchmarks/otlp_bench.py [--requests 20000] [--batch 512] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # otlp_testkit's OTLP JSON encoding

import orjson
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otlp_testkit import otlp_json
from rollguard.domain.events import Event, parse_event
from rollguard.otlp.translate import OtlpTranslator
from rollguard.settings.otlp import OtlpSettings

T0_NS = 1_767_225_600_000_000_000
SETTINGS = OtlpSettings(segments={"input_class": "app.input_class", "tenant": "tenant.id"})


def make_spans(requests: int, seed: int = 7) -> list[ReadableSpan]:
    """``requests`` request spans with a flag evaluation event, each with a GenAI chat span as child."""
    rng = random.Random(seed)
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "chat-api"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    for i in range(requests):
        end = T0_NS + i * 50_000_000
        latency = int(rng.lognormvariate(6.5, 0.3) * 1e6)
        variant = "canary" if rng.random() < 0.3 else "control"
        with tracer.start_as_current_span(
            "POST /chat", kind=SpanKind.SERVER, start_time=end - latency - 5_000_000, end_on_exit=False
        ) as root:
            root.set_attribute("enduser.id", f"user-{rng.randrange(5000):05d}")
            root.set_attribute("app.input_class", rng.choice(("chat", "coding", "summarize")))
            root.set_attribute("tenant.id", rng.choice(("acme", "globex")))
            root.add_event(
                "feature_flag.evaluation",
                {"feature_flag.key": "chat-assist", "feature_flag.result.variant": variant,
                 "feature_flag.result.reason": "targeting_match", "feature_flag.result.value": '"m"',
                 "feature_flag.context.id": "u", "feature_flag.provider.name": "flagd"},
                timestamp=end - latency - 4_000_000,
            )  # fmt: skip
            with tracer.start_as_current_span(
                "chat m", kind=SpanKind.CLIENT, start_time=end - latency, end_on_exit=False
            ) as span:
                span.set_attribute("gen_ai.operation.name", "chat")
                span.set_attribute("gen_ai.provider.name", "openai")
                span.set_attribute("gen_ai.request.model", "m")
                span.set_attribute("gen_ai.response.model", "m-0815")
                span.set_attribute("gen_ai.usage.input_tokens", rng.randrange(50, 800))
                span.set_attribute("gen_ai.usage.output_tokens", rng.randrange(20, 400))
                span.set_attribute("gen_ai.response.finish_reasons", ["stop"])
                span.set_attribute("gen_ai.response.time_to_first_chunk", latency / 4e9)
                span.end(end_time=end)
            root.end(end_time=end + 1_000_000)
    return list(exporter.get_finished_spans())


def translate(payloads: list[bytes], encoding: str) -> int:
    translator = OtlpTranslator(SETTINGS, encoding)
    n = 0
    for i, payload in enumerate(payloads):
        n += len(translator.payload(payload, i).events)
    return n + len(translator.flush().events)


def parse_v1(lines: list[bytes]) -> int:
    return sum(1 for line in lines if type(parse_event(line)) is Event)


def best(run: Callable[[], int], repeat: int) -> tuple[int, float, float]:
    """(result, best wall seconds, best CPU seconds) over ``repeat`` runs."""
    results = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        n = run()
        results.append((n, time.perf_counter() - wall, time.process_time() - cpu))
    return results[0][0], min(r[1] for r in results), min(r[2] for r in results)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=512, help="spans per OTLP payload")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    spans = make_spans(args.requests)
    proto = [
        encode_spans(spans[i : i + args.batch]).SerializeToString() for i in range(0, len(spans), args.batch)
    ]
    as_json = [otlp_json(p) for p in proto]
    translator = OtlpTranslator(SETTINGS, "otlp_proto")
    events = [ev for i, p in enumerate(proto) for ev in translator.payload(p, i).events]
    events += translator.flush().events
    v1 = [orjson.dumps(ev.to_dict()) for ev in events]
    assert len(events) == args.requests, (len(events), translator.counters())

    rows: list[tuple[str, int, float, float, int]] = []
    for name, run, size in (
        ("otlp_proto", lambda: translate(proto, "otlp_proto"), sum(map(len, proto))),
        ("otlp_json", lambda: translate(as_json, "otlp_json"), sum(map(len, as_json))),
        ("v1 json", lambda: parse_v1(v1), sum(map(len, v1))),
    ):
        n, wall, cpu = best(run, args.repeat)
        assert n == len(events), (name, n)
        rows.append((name, n, wall, cpu, size))
    print(f"{args.requests} requests = {len(spans)} spans in {len(proto)} payloads of <= {args.batch} spans; "
          f"best of {args.repeat}")  # fmt: skip
    widths = (-11, 7, 11, 11, 9, 9, 7)
    header = ("input", "events", "ev/s wall", "ev/s cpu", "MB/s cpu", "bytes/ev", "vs v1")
    print(" ".join(h.ljust(-w) if w < 0 else h.rjust(w) for h, w in zip(header, widths, strict=True)))
    v1_rate = rows[-1][1] / rows[-1][3]
    for name, n, wall, cpu, size in rows:
        rate = n / cpu
        figures = f"{n / wall:>11,.0f} {rate:>11,.0f} {size / cpu / 1e6:>9.1f} {size / n:>9.0f}"
        print(f"{name:<11} {n:>7} {figures} {rate / v1_rate:>6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

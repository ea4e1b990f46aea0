"""Spans for the OTLP core tests, built directly (the SDK-made ones are in tests/otlp_testkit.py)."""

from __future__ import annotations

import itertools
from typing import Any

from rollguard.otlp.spans import Span, SpanEvent

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns
S = 1_000_000_000
_IDS = itertools.count(1)


def span_id() -> str:
    return f"{next(_IDS):016x}"


def trace_id(n: int) -> str:
    return f"{n:032x}"


def flag_event(key: str, variant: str | None, context_id: str | None = None, at: int = T0) -> SpanEvent:
    """The event openfeature-hooks-opentelemetry 0.3 writes for one evaluation."""
    attrs: dict[str, Any] = {"feature_flag.key": key, "feature_flag.result.reason": "targeting_match"}
    if variant is not None:
        attrs["feature_flag.result.variant"] = variant
    if context_id is not None:
        attrs["feature_flag.context.id"] = context_id
    return SpanEvent("feature_flag.evaluation", at, attrs)


def request_span(
    trace: str, end: int, *, flags: list[SpanEvent] | None = None, sid: str | None = None, **attrs: Any
) -> Span:
    """A gateway span (no GenAI operation) carrying flag evaluations and request attributes."""
    return Span(trace, sid or span_id(), None, "POST /chat", 2, end - 2 * S, end, 0, "", dict(attrs),
                list(flags or []), {"service.name": "gateway"}, "gateway")  # fmt: skip


def inference_span(
    trace: str,
    end: int,
    *,
    parent: str | None = None,
    duration: int = S // 2,
    status: int = 0,
    events: list[SpanEvent] | None = None,
    sid: str | None = None,
    **attrs: Any,
) -> Span:
    """A GenAI chat span ending at ``end`` (ns)."""
    attributes = {"gen_ai.operation.name": "chat", **attrs}
    return Span(trace, sid or span_id(), parent, "chat m", 3, end - duration, end, status, "", attributes,
                list(events or []), {"service.name": "llm"}, "llm")  # fmt: skip

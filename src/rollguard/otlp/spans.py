"""A span as rollguard reads it, decoded from either OTLP encoding, and what can be wrong with one.

Ids are lowercase hex (as OTLP JSON writes them and trace UIs show them), times integer nanoseconds
since the epoch, attribute values plain Python (``str``, ``bool``, ``int``, ``float``, ``bytes``, lists
and dicts for OTLP's array and key-value list values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

# Attributes that hold what people wrote to a model or what it answered (GenAI semantic conventions).
# rollguard reads the answer's text as ``response_text`` and nothing else of them; a span it reports
# anywhere (a dead letter) has their values removed.
CONTENT_ATTRIBUTES: Final = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.prompt",
        "gen_ai.completion",
        "gen_ai.tool.definitions",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "gen_ai.retrieval.query.text",
        "gen_ai.retrieval.documents",
    }
)
# Span events of older GenAI instrumentations whose attributes are message contents.
CONTENT_EVENTS: Final = frozenset(
    {
        "gen_ai.content.prompt",
        "gen_ai.content.completion",
        "gen_ai.system.message",
        "gen_ai.user.message",
        "gen_ai.assistant.message",
        "gen_ai.tool.message",
        "gen_ai.choice",
        "gen_ai.client.inference.operation.details",
    }
)
REMOVED: Final = "<removed by rollguard: message content>"

STATUS_UNSET: Final = 0
STATUS_OK: Final = 1
STATUS_ERROR: Final = 2


@dataclass(frozen=True, slots=True)
class SpanEvent:
    """An event on a span (a flag evaluation, an evaluation score, a first-token mark)."""

    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(slots=True)
class Span:
    """One span of a trace, with its resource's attributes (shared by the spans of one resource)."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    attributes: dict[str, Any]
    events: list[SpanEvent] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str = ""


@dataclass(frozen=True, slots=True)
class SpanProblem:
    """A span rollguard cannot read or map: its ids (as far as they could be read), the field at fault
    and why, and the span itself as a one-span OTLP JSON payload with message contents removed (what
    the dead-letter record carries: readable, and replayable once fixed)."""

    trace_id: str | None
    span_id: str | None
    field: str
    reason: str
    original: bytes
    source: int | None = None  # the payload it came in (a Kafka offset, a line number)


@dataclass(frozen=True, slots=True)
class PayloadProblem:
    """A payload that is not an OTLP trace export at all (dead-lettered whole): why, and the field at
    fault when one is (``resourceSpans``; empty when the bytes are no message at all)."""

    reason: str
    field: str = ""

"""OTLP payloads in, v1 events and rejections out: what ``rollguard replay`` and the worker's translator
stage both call, so that a file of spans and a topic of spans are translated alike.

One :class:`OtlpTranslator` per input stream (a file; a partition of the OTLP topic, whose spans of one
trace stay together when the Collector's exporter partitions traces by id). Each payload is decoded
(:mod:`.decode`), its spans joined with their traces (:mod:`.traces`) and the inference spans that are
due mapped to v1 events (:mod:`.genai`). A payload that is not an OTLP export is a :class:`PayloadProblem`;
a span that cannot be read or mapped is a :class:`~.spans.SpanProblem` (its ids, field, reason and the
span without message contents); neither stops the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from rollguard.domain.events import Event
from rollguard.otlp.decode import DecodedPayload, decode_payload, span_payload
from rollguard.otlp.spans import PayloadProblem, SpanProblem
from rollguard.otlp.traces import Rejected, TraceJoin
from rollguard.settings.otlp import OtlpSettings


@dataclass(slots=True)
class Translation:
    """What one payload (or a flush) produced: events in the order they are due, and rejections."""

    events: list[Event] = field(default_factory=list)
    rejected: list[SpanProblem] = field(default_factory=list)
    problem: PayloadProblem | None = None


class OtlpTranslator:
    """Payloads of one stream to v1 events (holds the stream's traces between payloads)."""

    def __init__(self, settings: OtlpSettings, encoding: str | None = None) -> None:
        self.settings = settings
        self.encoding = encoding or settings.encoding
        self.join = TraceJoin(settings)
        self.payloads = 0
        self.bad_payloads = 0
        self.malformed_spans = 0

    def payload(self, data: bytes, source: int) -> Translation:
        """Translate one payload; ``source`` orders payloads (a Kafka offset, a line number)."""
        self.payloads += 1
        decoded = decode_payload(data, self.encoding)
        if isinstance(decoded, PayloadProblem):
            self.bad_payloads += 1
            return Translation(problem=decoded)
        return self._translated(decoded, source)

    def flush(self) -> Translation:
        """Decide every held span now (end of input, or a quiet partition)."""
        return self._outcomes(self.join.flush(), Translation())

    def low_source(self) -> int | None:
        """The oldest source still held (None: nothing): a stream may be resumed from there."""
        return self.join.low_source()

    def counters(self) -> dict[str, Any]:
        return {
            "payloads": self.payloads,
            "bad_payloads": self.bad_payloads,
            "malformed_spans": self.malformed_spans,
            **self.join.counters.to_dict(),
            "held_traces": self.join.held_traces,
        }

    def _translated(self, decoded: DecodedPayload, source: int) -> Translation:
        out = Translation(rejected=[replace(p, source=source) for p in decoded.problems])
        self.malformed_spans += len(decoded.problems)
        return self._outcomes(self.join.add(decoded.spans, source), out)

    def _outcomes(self, outcomes: list[Event | Rejected], out: Translation) -> Translation:
        for item in outcomes:
            if isinstance(item, Rejected):
                span, error = item.span, item.error
                self.malformed_spans += 1
                problem = SpanProblem(
                    span.trace_id, span.span_id, error.field, error.reason, span_payload(span), item.source
                )
                out.rejected.append(problem)
            else:
                out.events.append(item)
        return out

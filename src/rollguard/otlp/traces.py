"""Traces, not spans: an inference span joins the flag evaluation of its trace within an event-time window.

OpenFeature's hook writes a flag evaluation on the span active when the flag was evaluated — usually an
ancestor of the model call (the request's span), which ends *after* it and so is exported after it,
often in another payload. Each inference span therefore waits until the trace has had
``join_window_s`` of event time to bring its evaluation: it is decided once the **watermark** (the
newest span end time seen) passes its own end time plus the window. Then it belongs to every rollout
whose flag was evaluated in its trace — for each flag the evaluation on the span itself or its nearest
ancestor, else the trace's latest one (an evaluation on a sibling span) — and becomes one v1 event per
rollout; with none it is counted as *unjoined*, and skipped.

Decided spans leave in event-time order (end time, then trace and span id), whatever the payloads they
came in: the events a rollout sees do not depend on how the exporter batched its spans, and a replay of
the same spans decides the same. An inference span that arrives after its window closed (its end time
plus the window is behind the watermark) is decided at once with what its trace has brought, and
counted as *late*. A trace is forgotten once the watermark passes its newest span's end plus the window;
``max_held_traces`` bounds how many are held (past it, the watermark is moved on to the oldest trace's
deadline, which decides in the same order, only earlier).

What is kept of a trace is small: per span its parent, its flag evaluations and the few attributes the
mapping may look up; inference spans whole until decided. :meth:`TraceJoin.low_source` tells an adapter
the oldest payload anything held came from — the offset it may commit.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from rollguard.domain.events import Event
from rollguard.otlp.genai import FlagEvaluation, MappingError, flag_evaluations, is_inference, to_event
from rollguard.otlp.spans import Span
from rollguard.settings.otlp import OtlpSettings


@dataclass(slots=True)
class JoinCounters:
    """What became of the spans (all counts since the start)."""

    spans: int = 0
    inference_spans: int = 0
    events: int = 0
    not_inference: int = 0  # spans that describe no GenAI inference (request spans, tools, embeddings)
    unjoined: int = 0  # inference spans whose trace brought no rollout flag evaluation in the window
    unmapped_variant: int = 0  # joined to a configured rollout flag whose variant maps to no arm (or failed)
    late: int = 0  # inference spans that arrived after their window closed (decided at once)
    rejected: int = 0  # inference spans whose attributes could not be mapped (dead-lettered)
    forced: int = 0  # times the watermark was moved on because max_held_traces traces were held

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Rejected:
    """An inference span that could not be mapped: the span and why."""

    span: Span
    error: MappingError
    source: int


@dataclass(slots=True)
class _Known:
    """What a held trace keeps of one of its spans."""

    parent_id: str | None
    evaluations: list[FlagEvaluation]
    attributes: dict[str, Any]


@dataclass(slots=True)
class _Trace:
    first_source: int
    last_end_ns: int
    spans: dict[str, _Known] = field(default_factory=dict)
    pending: int = 0


@dataclass(order=True, slots=True)
class _Pending:
    end_ns: int
    trace_id: str
    span_id: str
    span: Span = field(compare=False)
    source: int = field(compare=False)


class TraceJoin:
    """The held traces of one input stream (a file, or one partition of the OTLP topic)."""

    def __init__(self, settings: OtlpSettings) -> None:
        self.settings = settings
        self.window_ns = round(settings.join_window_s * 1e9)
        self.max_traces = settings.max_held_traces
        self.traces: OrderedDict[str, _Trace] = OrderedDict()  # in order of first arrival (= of source)
        self.pending: list[_Pending] = []
        self.deadlines: list[tuple[int, str]] = []  # (trace's newest end + window, trace id), lazily pruned
        self.watermark = -1
        self.counters = JoinCounters()
        s = settings
        names = {*s.unit, *s.segments.values(), *s.quality.values()}
        names |= {n for n in (s.rollout_attribute, s.request_id_attribute, s.format_valid_attribute,
                              s.canary_weight_attribute, s.cost_attribute) if n is not None}  # fmt: skip
        self.lookup_names = frozenset(names)

    # ------------------------------------------------------------------ input
    def add(self, spans: Iterable[Span], source: int) -> list[Event | Rejected]:
        """Fold a payload's spans in (``source``: where they came from, increasing) and return what is
        decided now, in order."""
        before = self.watermark
        newest = before
        counters = self.counters
        for span in spans:
            counters.spans += 1
            trace = self.traces.get(span.trace_id)
            if trace is None:
                trace = self.traces[span.trace_id] = _Trace(source, span.end_ns)
                heapq.heappush(self.deadlines, (span.end_ns + self.window_ns, span.trace_id))
            elif span.end_ns > trace.last_end_ns:
                trace.last_end_ns = span.end_ns
                heapq.heappush(self.deadlines, (span.end_ns + self.window_ns, span.trace_id))
            attrs = span.attributes
            kept = {n: attrs[n] for n in self.lookup_names if n in attrs}
            trace.spans[span.span_id] = _Known(
                span.parent_id, flag_evaluations(span.events, self.settings), kept
            )
            if is_inference(span, self.settings):
                counters.inference_spans += 1
                trace.pending += 1
                heapq.heappush(self.pending, _Pending(span.end_ns, span.trace_id, span.span_id, span, source))
                if span.end_ns + self.window_ns <= before:
                    counters.late += 1
            else:
                counters.not_inference += 1
            if span.end_ns > newest:
                newest = span.end_ns
        out: list[Event | Rejected] = []
        if newest > self.watermark:
            self.watermark = newest
        self._decide_until(self.watermark, out)
        while len(self.traces) > self.max_traces and self.deadlines:
            counters.forced += 1
            self._decide_until(self.deadlines[0][0], out)
        return out

    def flush(self) -> list[Event | Rejected]:
        """Decide everything held now (the end of a file, or a partition that went quiet)."""
        out: list[Event | Rejected] = []
        while self.pending:
            self._decide(heapq.heappop(self.pending), out)
        self.traces.clear()
        self.deadlines.clear()
        return out

    def low_source(self) -> int | None:
        """The oldest source anything held came from (None: nothing held)."""
        for trace in self.traces.values():
            return trace.first_source
        return None

    @property
    def held_traces(self) -> int:
        return len(self.traces)

    # ------------------------------------------------------------------ decisions
    def _decide_until(self, watermark: int, out: list[Event | Rejected]) -> None:
        window = self.window_ns
        while self.pending and self.pending[0].end_ns + window <= watermark:
            self._decide(heapq.heappop(self.pending), out)
        while self.deadlines and self.deadlines[0][0] <= watermark:
            deadline, trace_id = heapq.heappop(self.deadlines)
            trace = self.traces.get(trace_id)
            if trace is not None and trace.last_end_ns + window == deadline and trace.pending == 0:
                del self.traces[trace_id]

    def _decide(self, item: _Pending, out: list[Event | Rejected]) -> None:
        span = item.span
        trace = self.traces.get(item.trace_id)
        chain = self._chain(trace, span) if trace is not None else []
        if trace is not None:
            trace.pending -= 1
        chosen, unmapped = self._evaluations(trace, chain)
        counters = self.counters
        if not chosen:
            if unmapped:
                counters.unmapped_variant += 1
            else:
                counters.unjoined += 1
            return

        def lookup(name: str) -> Any:
            value = span.attributes.get(name)
            if value is not None:
                return value
            for known in chain[1:]:
                value = known.attributes.get(name)
                if value is not None:
                    return value
            return span.resource.get(name)

        rollout_attr = self.settings.rollout_attribute
        if rollout_attr is not None:
            rollout = lookup(rollout_attr)
            if not isinstance(rollout, str) or not rollout:
                counters.unjoined += 1
                return
            _, arm, evaluation = chosen[0]
            chosen = [(rollout, arm, evaluation)]
        for rollout_id, arm, evaluation in chosen:
            result = to_event(span, rollout_id, arm, evaluation, lookup, self.settings)
            if isinstance(result, MappingError):
                counters.rejected += 1
                out.append(Rejected(span, result, item.source))
                return
            counters.events += 1
            out.append(result)

    def _chain(self, trace: _Trace, span: Span) -> list[_Known]:
        """The span's own record, then its ancestors' as far as they arrived (nearest first)."""
        chain = []
        seen = set()
        sid: str | None = span.span_id
        while sid is not None and sid not in seen:
            seen.add(sid)
            known = trace.spans.get(sid)
            if known is None:
                break
            chain.append(known)
            sid = known.parent_id
        return chain

    def _evaluations(
        self, trace: _Trace | None, chain: list[_Known]
    ) -> tuple[list[tuple[str, str, FlagEvaluation]], bool]:
        """Per rollout flag of the trace, ``(rollout_id, arm, evaluation)``: the evaluation nearest on
        the span's ancestry, else the trace's latest; and whether a rollout flag's variant mapped to no
        arm. Ordered by rollout id, so that the events of one span leave in a fixed order."""
        if trace is None:
            return [], False
        settings = self.settings
        unmapped = False

        def arm_of(ev: FlagEvaluation) -> tuple[str, str] | None:
            """``(rollout_id, arm)`` of an evaluation; ``None`` (noted when a rollout flag's) if none."""
            nonlocal unmapped
            mapped = settings.arm_of(ev.flag_key, ev.variant) if ev.variant is not None else None
            if mapped is None:
                unmapped = unmapped or self._is_rollout_flag(ev.flag_key)
            return mapped

        found: dict[str, tuple[str, str, FlagEvaluation]] = {}
        for known in chain:
            for ev in known.evaluations:
                if ev.flag_key not in found and (mapped := arm_of(ev)) is not None:
                    found[ev.flag_key] = (*mapped, ev)
        on_chain = set(found)
        latest: dict[str, tuple[int, tuple[str, str, FlagEvaluation]]] = {}
        for known in trace.spans.values():
            for ev in known.evaluations:
                if ev.flag_key in on_chain or (mapped := arm_of(ev)) is None:
                    continue
                if ev.flag_key not in latest or ev.time_ns >= latest[ev.flag_key][0]:
                    latest[ev.flag_key] = (ev.time_ns, (*mapped, ev))
        found.update({key: entry for key, (_, entry) in latest.items()})
        return [found[key] for key in sorted(found, key=lambda k: (found[k][0], k))], unmapped

    def _is_rollout_flag(self, flag_key: str) -> bool:
        """A flag configured as a rollout (without ``flags``, a flag whose variant maps to no arm is
        simply not a rollout: its spans count as unjoined)."""
        return flag_key in self.settings.flags

"""Spans become events only through their trace: the flag evaluation may sit on an ancestor that arrives
later, in another payload; what cannot be joined, mapped or read is counted or rejected, never lost."""

from __future__ import annotations

import orjson
from span_builders import T0, S, flag_event, inference_span, request_span, trace_id

from rollguard.domain.events import Event
from rollguard.otlp.decode import decode_payload, span_payload
from rollguard.otlp.spans import PayloadProblem
from rollguard.otlp.traces import Rejected, TraceJoin
from rollguard.settings.otlp import FlagRollout, OtlpSettings


def events_of(outcomes: list[Event | Rejected]) -> list[Event]:
    return [o for o in outcomes if isinstance(o, Event)]


def test_an_inference_span_waits_for_the_flag_evaluation_its_parent_brings_in_a_later_payload() -> None:
    join = TraceJoin(OtlpSettings(join_window_s=30))
    trace = trace_id(1)
    root = request_span(
        trace, T0 + S, flags=[flag_event("chat", "canary", "user-1")], **{"tenant.id": "acme"}
    )
    call = inference_span(trace, T0, parent=root.span_id, **{"gen_ai.usage.output_tokens": 7})
    assert join.add([call], source=0) == []  # nothing known about its rollout yet: held
    assert join.add([root], source=1) == []  # the window is still open
    later = inference_span(trace_id(2), T0 + 40 * S)
    decided = events_of(join.add([later], source=2))
    assert [(e.event_id, e.rollout_id, e.arm, e.unit_id, e.tokens_out) for e in decided] == [
        (call.span_id, "chat", "canary", "user-1", 7.0)
    ]
    assert decided[0].request_id == trace and decided[0].ts == T0 / 1e9
    join.flush()
    assert join.counters.unjoined == 1  # the later span's trace never evaluated a flag


def test_a_span_whose_variant_maps_to_no_arm_is_counted_not_turned_into_an_event() -> None:
    join = TraceJoin(OtlpSettings())
    trace = trace_id(3)
    root = request_span(trace, T0 + S, flags=[flag_event("chat", "blue")])
    call = inference_span(trace, T0, parent=root.span_id)
    assert events_of(join.add([call, root], 0) + join.flush()) == []
    assert join.counters.unjoined == 1 and join.counters.not_inference == 1


def test_a_rollout_flags_variant_that_maps_to_no_arm_is_counted_as_unmapped_on_the_chain_or_off_it() -> None:
    join = TraceJoin(OtlpSettings(flags={"chat": FlagRollout(rollout="chat-assist")}))
    on_chain, off_chain, other_flag = trace_id(30), trace_id(31), trace_id(32)
    root = request_span(on_chain, T0 + S, flags=[flag_event("chat", "blue")])
    sibling = request_span(off_chain, T0 + S, flags=[flag_event("chat", "blue")])
    not_a_rollout = request_span(other_flag, T0 + S, flags=[flag_event("search", "blue")])
    spans = [
        inference_span(on_chain, T0, parent=root.span_id),
        inference_span(off_chain, T0),  # no parent: the trace's evaluation is not on its chain
        inference_span(other_flag, T0, parent=not_a_rollout.span_id),
    ]
    assert events_of(join.add([*spans, root, sibling, not_a_rollout], 0) + join.flush()) == []
    assert (join.counters.unmapped_variant, join.counters.unjoined) == (2, 1)


def test_the_nearest_mapped_evaluation_wins_over_an_unmapped_one_elsewhere_in_the_trace() -> None:
    join = TraceJoin(OtlpSettings(flags={"chat": FlagRollout(rollout="chat-assist")}))
    trace = trace_id(33)
    root = request_span(trace, T0 + S, flags=[flag_event("chat", "canary")])
    retry = request_span(trace, T0 + S, flags=[flag_event("chat", "blue")])
    call = inference_span(trace, T0, parent=root.span_id)
    decided = events_of(join.add([call, root, retry], 0) + join.flush())
    assert [(e.event_id, e.rollout_id, e.arm) for e in decided] == [(call.span_id, "chat-assist", "canary")]
    assert join.counters.unmapped_variant == 0


def test_a_span_with_an_attribute_of_the_wrong_kind_is_rejected_with_its_ids() -> None:
    join = TraceJoin(OtlpSettings())
    trace = trace_id(4)
    root = request_span(trace, T0 + S, flags=[flag_event("chat", "control")])
    bad = inference_span(trace, T0, parent=root.span_id, **{"gen_ai.usage.input_tokens": "many"})
    good = inference_span(trace, T0 + S // 2, parent=root.span_id)
    outcomes = join.add([bad, good, root], 0) + join.flush()
    rejected = [o for o in outcomes if isinstance(o, Rejected)]
    assert [(r.span.span_id, r.error.field) for r in rejected] == [(bad.span_id, "gen_ai.usage.input_tokens")]
    assert [e.event_id for e in events_of(outcomes)] == [good.span_id]


def test_a_malformed_span_is_reported_with_its_ids_and_the_rest_of_its_payload_is_decoded() -> None:
    trace = trace_id(5)
    root = request_span(trace, T0 + S, flags=[flag_event("chat", "control")])
    call = inference_span(trace, T0, parent=root.span_id, **{"gen_ai.input.messages": "secret prompt"})
    doc = orjson.loads(span_payload(call))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"] += orjson.loads(span_payload(root))["resourceSpans"][0][
        "scopeSpans"
    ][0]["spans"]
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["endTimeUnixNano"] = "soon"
    decoded = decode_payload(orjson.dumps(doc))
    assert not isinstance(decoded, PayloadProblem)
    assert [(p.trace_id, p.span_id, p.field) for p in decoded.problems] == [
        (trace, call.span_id, "endTimeUnixNano")
    ]
    assert b"secret prompt" not in decoded.problems[0].original
    assert [s.span_id for s in decoded.spans] == [root.span_id]


def test_a_payload_that_is_no_otlp_export_is_one_problem() -> None:
    assert isinstance(decode_payload(b"\x00\x01garbage"), PayloadProblem)
    assert isinstance(decode_payload(b'{"resourceSpans": 7}'), PayloadProblem)

"""The v1 event contract: what is accepted, what is rejected, and how the rejection is explained."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollguard.domain.events import Event, EventError, parse_event

GOOD = {
    "event_id": "e-1",
    "request_id": "r-1",
    "ts": 1767225600.25,
    "rollout_id": "checkout-v2",
    "arm": "canary",
    "variant": "gpt-x-2026-11",
    "variant_parts": {"model": "gpt-x-2026-11", "prompt": "p7", "tools": "t3"},
    "segment": {"input_class": "coding", "tenant": "t3"},
    "unit_id": "user-42",
    "canary_weight": 0.1,
    "status": "ok",
    "latency_ms": 812.5,
    "ttft_ms": 140,
    "tokens_in": 300,
    "tokens_out": 220,
    "cost_usd": 0.0031,
    "format_valid": True,
    "quality": {"eval_score": 0.82, "thumbs": 1},
    "response_text": "hello",
    "response_embedding": [0.1, -0.2, 0.3],
}


def test_a_complete_event_becomes_a_typed_event_with_every_field() -> None:
    ev = parse_event(orjson.dumps(GOOD))
    assert isinstance(ev, Event)
    assert ev.segment == {"input_class": "coding", "tenant": "t3"}
    assert ev.variant_parts == {"model": "gpt-x-2026-11", "prompt": "p7", "tools": "t3"}
    assert ev.ttft_ms == 140.0 and isinstance(ev.ttft_ms, float)
    assert ev.quality == {"eval_score": 0.82, "thumbs": 1.0}
    assert ev.response_embedding == [0.1, -0.2, 0.3]
    assert ev.to_dict() == {**GOOD, "ttft_ms": 140.0, "tokens_in": 300.0, "tokens_out": 220.0,
                            "quality": {"eval_score": 0.82, "thumbs": 1.0}}  # fmt: skip


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-01-01T00:00:00Z", 1767225600.0),
        ("2026-01-01T01:00:00+01:00", 1767225600.0),
        ("2026-01-01T00:00:00.5Z", 1767225600.5),
        (1767225600, 1767225600.0),
    ],
)
def test_event_time_is_epoch_seconds_or_rfc3339(ts: object, expected: float) -> None:
    ev = parse_event({**GOOD, "ts": ts})
    assert isinstance(ev, Event) and ev.ts == expected


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"ts": "2026-01-01T00:00:00"}, "ts", "UTC offset"),
        ({"ts": 1767225600000}, "ts", "milliseconds"),
        ({"ts": "yesterday"}, "ts", "RFC 3339"),
        ({"arm": "blue"}, "arm", "control, canary, shadow"),
        ({"status": "failed"}, "status", "ok, error, timeout, refusal"),
        ({"canary_weight": 1.5}, "canary_weight", "[0, 1]"),
        ({"latency_ms": -3}, "latency_ms", "non-negative"),
        ({"latency_ms": "fast"}, "latency_ms", "number"),
        ({"segment": {"tenant": 3}}, "segment.tenant", "string"),
        ({"quality": {"eval_score": "good"}}, "quality.eval_score", "number"),
        ({"format_valid": "yes"}, "format_valid", "boolean"),
        ({"response_embedding": [0.1, None]}, "response_embedding[1]", "number"),
        ({"rollout_id": ""}, "rollout_id", "non-empty"),
        ({"schema_version": 2}, "schema_version", "unsupported"),
        ({"variant_parts": "model=m1"}, "variant_parts", "object of part name to string"),
        ({"variant_parts": ["model"]}, "variant_parts", "object of part name to string"),
        ({"variant_parts": {"model": 2}}, "variant_parts.model", "must be a string"),
        ({"variant_parts": {"model": None}}, "variant_parts.model", "must be a string"),
        ({"variant_parts": {"model": ""}}, "variant_parts.model", "non-empty string of at most 256"),
        ({"variant_parts": {"model": "m" * 257}}, "variant_parts.model", "at most 256 characters"),
        ({"variant_parts": {"": "m"}}, "variant_parts", "part name must be 1-64"),
        ({"variant_parts": {"my model": "m"}}, "variant_parts", "part name must be 1-64"),
        ({"variant_parts": {"m" * 65: "m"}}, "variant_parts", "part name must be 1-64"),
        ({"variant_parts": {f"p{i}": "v" for i in range(17)}}, "variant_parts", "at most 16 parts, got 17"),
    ],
)
def test_a_bad_field_is_named_with_what_was_wrong(
    change: dict[str, object], field: str, fragment: str
) -> None:
    err = parse_event({**GOOD, **change})
    assert isinstance(err, EventError)
    assert err.field == field
    assert fragment in err.reason
    assert err.event_id == "e-1"


@pytest.mark.parametrize("name", ["event_id", "request_id", "ts", "rollout_id", "arm", "status"])
def test_each_required_field_is_required(name: str) -> None:
    raw = {k: v for k, v in GOOD.items() if k != name}
    err = parse_event(raw)
    assert isinstance(err, EventError) and err.field == name and "missing" in err.reason


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b"\xff\xfe", "42"])
def test_garbage_is_an_error_not_an_exception(raw: bytes | str) -> None:
    err = parse_event(raw)
    assert isinstance(err, EventError) and err.field == ""


def test_unknown_fields_are_kept_not_rejected() -> None:
    ev = parse_event({**GOOD, "region": "eu-west-1", "trace": {"id": "abc"}})
    assert isinstance(ev, Event)
    assert ev.extra == {"region": "eu-west-1", "trace": {"id": "abc"}}
    assert ev.to_dict()["region"] == "eu-west-1"


@pytest.mark.parametrize(
    "parts",
    [{"model": "m-2026-01"}, {f"p{i}": "v" * 256 for i in range(16)}, {"Model_2.x:y-z": "m"}, {}],
)
def test_variant_parts_within_their_bounds_are_kept_on_both_paths(parts: dict[str, str]) -> None:
    for raw in ({**GOOD, "variant_parts": parts}, orjson.dumps({**GOOD, "variant_parts": parts})):
        ev = parse_event(raw)
        assert isinstance(ev, Event) and ev.variant_parts == parts and ev.extra == {}
        assert ev.to_dict()["variant_parts"] == parts


def test_an_event_without_variant_parts_has_none_and_writes_none() -> None:
    ev = parse_event({k: v for k, v in GOOD.items() if k != "variant_parts"})
    assert isinstance(ev, Event) and ev.variant_parts is None and "variant_parts" not in ev.to_dict()


def test_minimal_event_needs_only_the_required_fields() -> None:
    ev = parse_event(
        b'{"event_id":"a","request_id":"b","ts":1767225600,"rollout_id":"r","arm":"control","status":"error"}'
    )
    assert isinstance(ev, Event)
    assert ev.segment == {} and ev.quality == {} and ev.latency_ms is None


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, 0.0, 0.5, 1.0, 1.5, -0.5, -1, 2, 1e-9, 1e300, 1767225600, 1767225600.5]),
    st.sampled_from(["", "x", "canary", "control", "shadow", "ok", "error", "2026-01-01T00:00:00Z",
                     "2026-01-01T00:00:00", "not a time"]),
    st.lists(st.floats(-2, 2), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b"]), st.one_of(st.text(max_size=2), st.integers(0, 3)),
                    max_size=2),
)  # fmt: skip


FIELDS = st.sampled_from([*GOOD, "schema_version", "extra_field"])
EDGE_VALUES = [
    None, True, False, 0, 1, 2, -1, 0.0, 0.5, 1.0, 1.5, -0.5, 1e-9, 1e300, 1767225600, 1767225600.5,
    946684799, 4102444801, "", "x", "canary", "ok", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00",
    [], [1, 2.5], [True], {}, {"a": "b"}, {"a": 1}, {"a": None}, {"a\n": "b"}, {"-a": "b"}, {"a": ""},
    {"a": "b" * 257}, {f"p{i}": "v" for i in range(17)},
]  # fmt: skip


def _agree(obj: dict[str, object]) -> None:
    fast, reference = parse_event(orjson.dumps(obj)), parse_event(obj)
    assert fast == reference
    if isinstance(fast, Event):
        types = {k: type(v) for k, v in reference.to_dict().items()}  # type: ignore[union-attr]
        assert {k: type(v) for k, v in fast.to_dict().items()} == types


@pytest.mark.parametrize("name", [*GOOD, "schema_version", "extra_field"])
def test_the_fast_decoder_agrees_with_the_reference_validator_on_edge_values(name: str) -> None:
    """Bytes take the typed msgspec path (falling back on anything it refuses); a mapping takes the
    reference validator: accepted or rejected, with the same fields, types and reason."""
    for value in EDGE_VALUES:
        _agree({**GOOD, name: value})
    _agree({k: v for k, v in GOOD.items() if k != name})


@settings(max_examples=500, deadline=None)
@given(
    changes=st.one_of(
        st.dictionaries(FIELDS, JSON_VALUES, min_size=1, max_size=1),  # one field at a time
        st.dictionaries(FIELDS, JSON_VALUES, max_size=4),
    ),
    dropped=st.sets(st.sampled_from(list(GOOD)), max_size=3),
)
def test_the_fast_decoder_and_the_reference_validator_agree(
    changes: dict[str, object], dropped: set[str]
) -> None:
    _agree({k: v for k, v in {**GOOD, **changes}.items() if k not in dropped or k in changes})

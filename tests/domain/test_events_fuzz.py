"""Nothing a message contains makes the validator raise: arbitrary bytes and mutated real events.

A mutation is what a broken producer, a bad proxy or a disk error does to a valid event: bytes
replaced, inserted, deleted or cut off, invalid UTF-8, NUL, deep nesting, numbers out of range,
duplicated keys. For each, :func:`parse_event` returns an ``Event`` or an ``EventError`` whose reason
is short and never the message itself; and the fast path agrees with the reference validator.
"""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollguard.domain.events import EXCERPT_MAX, Event, EventError, parse_event
from rollguard.sim import VariantParts, generate, get_scenario

# Real events (segments, units, quality scores, shadow copies, variant parts) as the producers write them.
VALID = [
    orjson.dumps(ev)
    for ev in itertools.islice(generate(get_scenario("error_spike_coding", seed=3, duration_s=30)), 200)
]
_WITH_PARTS = get_scenario("aa", seed=4, duration_s=30)
_WITH_PARTS.variant_parts = VariantParts({"model": "m-1", "prompt": "p6"}, {"model": "m-2", "prompt": "p6"})
VALID += [orjson.dumps(ev) for ev in itertools.islice(generate(_WITH_PARTS), 50)]
REASON_MAX = 200
# Byte sequences that break things when spliced into JSON: invalid UTF-8 (a lone continuation byte,
# a truncated 2-byte sequence, an overlong encoding, an encoded surrogate), NUL, escapes of lone
# surrogates, numbers out of float range, deep nesting, a duplicated key, a long string.
SPLICES = [
    b"\xff", b"\x80", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\x00", b'"\\ud800"', b'"\\udc00x"',
    b"1e999", b"-1e999", b"123456789012345678901234567890", b"NaN", b"Infinity", b"-0", b"[" * 2000,
    b"{" * 600, b'"a":1,"a":2,', b'"ts":"2026-01-01T00:00:00Z",', b'"arm":"CANARY",',
    b'"' + b"x" * 5000 + b'"',
]  # fmt: skip


def _check(raw: bytes | str) -> Event | EventError:
    result = parse_event(raw)
    assert isinstance(result, Event | EventError)
    if isinstance(result, EventError):
        assert len(result.reason) <= REASON_MAX, result.reason
        assert result.event_id is None or len(result.event_id) <= REASON_MAX
    _agrees_with_the_reference(raw, result)
    return result


def _agrees_with_the_reference(raw: bytes | str, result: Event | EventError) -> None:
    """The bytes' answer equals the reference validator's answer on the same document (orjson decodes
    it; the last of duplicated keys wins on both paths); a document orjson refuses is a message error."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        assert isinstance(result, EventError) and result.field == ""
        return
    assert result == parse_event(obj) if isinstance(obj, dict) else isinstance(result, EventError)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(raw)))
        kind = draw(st.sampled_from(["replace", "insert", "delete", "splice", "truncate"]))
        if kind == "replace" and at < len(raw):
            raw[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            raw[at:at] = bytes([draw(st.integers(0, 255))])
        elif kind == "delete":
            del raw[at : at + draw(st.integers(1, 4))]
        elif kind == "splice":
            raw[at:at] = draw(st.sampled_from(SPLICES))
        elif kind == "truncate":
            del raw[at:]
    return bytes(raw)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=mutated())
def test_a_mutated_event_is_an_event_or_an_error_never_an_exception(raw: bytes) -> None:
    _check(raw)


@settings(max_examples=1000, deadline=None)
@given(raw=st.binary(max_size=400))
def test_arbitrary_bytes_are_an_error_never_an_exception(raw: bytes) -> None:
    _check(raw)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_including_lone_surrogates_is_handled(text: str) -> None:
    _check(text)
    _check('{"event_id": "' + text + '"}')


def test_invalid_utf8_in_a_value_is_a_message_error() -> None:
    raw = VALID[0].replace(b'"event_id":"', b'"event_id":"\xff', 1)
    err = _check(raw)
    assert isinstance(err, EventError) and err.field == "" and "UTF-8" in err.reason


@pytest.mark.parametrize(
    ("splice", "fragment"),
    [(b'"x":' + b"[" * 5000 + b"]" * 5000 + b",", "depth"), (b'"latency_ms":1e999,', "infinity")],
)
def test_deep_nesting_and_numbers_out_of_range_are_explained(splice: bytes, fragment: str) -> None:
    err = _check(VALID[0].replace(b"{", b"{" + splice, 1))
    assert isinstance(err, EventError) and fragment in err.reason


def test_a_one_megabyte_value_is_reported_without_being_quoted() -> None:
    obj = orjson.loads(VALID[0])
    obj["arm"] = "c" * 1_000_000
    err = _check(orjson.dumps(obj))
    assert isinstance(err, EventError) and err.field == "arm"
    assert "(1000000 chars)" in err.reason and err.reason.count("c") <= EXCERPT_MAX + 10


def test_a_one_megabyte_event_id_is_capped_in_the_error() -> None:
    obj = orjson.loads(VALID[0])
    obj["event_id"], obj["status"] = "e" * 1_000_000, "broken"
    err = _check(orjson.dumps(obj))
    assert isinstance(err, EventError) and err.field == "status"
    assert err.event_id is not None and len(err.event_id) <= REASON_MAX


def test_a_one_megabyte_response_text_is_a_valid_event() -> None:
    obj = orjson.loads(VALID[0])
    obj["response_text"] = "word " * 200_000
    assert isinstance(_check(orjson.dumps(obj)), Event)


def test_duplicate_keys_the_last_one_wins_on_both_paths() -> None:
    base = VALID[0][:-1]
    later = parse_event(base + b',"latency_ms":999,"latency_ms":5}')
    assert isinstance(later, Event) and later.latency_ms == 5.0
    # The fast path refuses an invalid first occurrence; the reference path then takes the last one.
    fixed = parse_event(base.replace(b'"arm":"', b'"arm":"bad","arm":"', 1) + b"}")
    assert isinstance(fixed, Event)
    broken = parse_event(base + b',"arm":"bad"}')
    assert isinstance(broken, EventError) and broken.field == "arm"


def test_nul_bytes_in_a_value_are_kept_as_text() -> None:
    obj = orjson.loads(VALID[0])
    obj["rollout_id"] = "checkout\x00v2"
    ev = _check(orjson.dumps(obj))
    assert isinstance(ev, Event) and ev.rollout_id == "checkout\x00v2"
    orjson.dumps(ev.to_dict())  # and it can be written out again

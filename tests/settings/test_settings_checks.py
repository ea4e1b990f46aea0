"""The shared checks: each refuses what its name says with one wording, located at the field's line."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pytest

from rollguard.settings.checks import (
    boolean,
    choice,
    fill,
    mapping,
    name_list,
    names,
    number,
    only,
    positive,
    probability,
    required,
    sequence,
    text,
    weight,
    whole,
)
from rollguard.settings.config import ConfigError, compose_located

YAML = """\
section:
  value: 1
  other: 2
"""
DATA, LOC = compose_located(YAML, "rollguard.yaml")


def refusal(check: Any, value: Any, *args: Any, **kwargs: Any) -> str:
    """The located message ``check`` refuses ``value`` with, read at ``section.value`` (line 2)."""
    with pytest.raises(ConfigError) as info:
        check(value, "section.value", LOC, *args, **kwargs)
    assert (info.value.line, info.value.field) == (2, "section.value")
    return info.value.message


def test_an_error_is_located_at_the_line_of_its_field_or_else_of_its_section() -> None:
    assert str(LOC.error("section.other", "x")) == "rollguard.yaml:3: section.other: x"
    assert str(LOC.error("section.missing", "x")) == "rollguard.yaml:2: section.missing: x"  # section's body


def test_a_mapping_may_be_absent_but_not_another_type() -> None:
    assert mapping(None, "section.value", LOC) == {} and mapping({"a": 1}, "section.value", LOC) == {"a": 1}
    assert refusal(mapping, [1]) == "must be a mapping, got list"


def test_a_sequence_is_a_list_worded_by_what_it_holds() -> None:
    assert sequence([], "section.value", LOC) == []
    assert refusal(sequence, "a") == "must be a list"
    assert refusal(sequence, None, of="rules") == "must be a list of rules"
    assert refusal(sequence, [], of="clauses", non_empty=True) == "must be a non-empty list of clauses"


def test_only_names_the_unknown_key_and_every_known_one_sorted() -> None:
    only({"b": 1, "a": 2}, ("a", "b"), "section", LOC)
    with pytest.raises(ConfigError) as info:
        only({"a": 1, "other": 2}, ("b", "a"), "section", LOC)
    assert str(info.value) == "rollguard.yaml:3: section.other: unknown setting (expected one of: a, b)"
    with pytest.raises(ConfigError, match=r"section.other: unknown metric \(expected one of: a\)"):
        only(["other"], ("a",), "section", LOC, what="metric")


def test_required_names_the_first_missing_key_in_the_order_given() -> None:
    required({"a": 1}, ("a",), "section", LOC)
    with pytest.raises(ConfigError) as info:
        required({"a": 1}, ("a", "other", "value"), "section", LOC)
    assert str(info.value) == "rollguard.yaml:3: section.other: required setting is missing"


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        ("5", {}, "must be a number, got '5'"),
        (True, {}, "must be a number, got True"),
        (math.inf, {}, "must be a number, got inf"),
        (2.5, {"integer": True}, "must be a whole number, got 2.5"),
        (-1, {}, "must be at least 0, got -1"),
        (1, {"minimum": 2}, "must be at least 2, got 1"),
    ],
)
def test_number_refuses_non_numbers_fractions_and_small_values(
    value: Any, kwargs: dict[str, Any], message: str
) -> None:
    assert refusal(number, value, **kwargs) == message


def test_number_accepts_ints_and_floats_as_floats() -> None:
    assert (
        number(3, "section.value", LOC) == 3.0 and number(-2, "section.value", LOC, minimum=-math.inf) == -2.0
    )


def test_whole_accepts_a_whole_float_and_returns_an_int() -> None:
    assert whole(7.0, "section.value", LOC) == 7 and isinstance(whole(7.0, "section.value", LOC), int)
    assert refusal(whole, 0, minimum=1) == "must be at least 1, got 0"
    assert refusal(whole, 1.5) == "must be a whole number, got 1.5"


@pytest.mark.parametrize(
    ("value", "integer", "message"),
    [
        (0, False, "must be positive, got 0"),
        (-3, False, "must be positive, got -3"),  # not "at least 0": zero is refused too
        (-2.5, True, "must be a whole number, got -2.5"),
        ("x", False, "must be a number, got 'x'"),
    ],
)
def test_positive_refuses_zero_and_below(value: Any, integer: bool, message: str) -> None:
    assert positive(0.5, "section.value", LOC) == 0.5
    assert refusal(positive, value, integer=integer) == message


@pytest.mark.parametrize("value", [0, 1, -0.5, 2])
def test_probability_is_strictly_between_0_and_1_and_quotes_the_value_as_written(value: Any) -> None:
    assert probability(0.5, "section.value", LOC) == 0.5
    assert refusal(probability, value) == f"must be strictly between 0 and 1, got {value!r}"


def test_weight_is_in_0_to_1_inclusive() -> None:
    assert weight(0, "section.value", LOC) == 0.0 and weight(1, "section.value", LOC) == 1.0
    assert refusal(weight, 1.5) == "must be in [0, 1], got 1.5"
    assert refusal(weight, -0.1) == "must be at least 0, got -0.1"


def test_boolean_takes_yaml_booleans_only() -> None:
    assert boolean(False, "section.value", LOC) is False
    for value in (1, "yes", None):
        assert refusal(boolean, value) == "must be true or false"


def test_text_is_a_non_empty_string() -> None:
    assert text("a", "section.value", LOC) == "a"
    assert refusal(text, "") == "must be a non-empty string, got ''"
    assert refusal(text, 5) == "must be a non-empty string, got 5"


def test_choice_lists_the_options_in_their_order() -> None:
    assert choice("b", "section.value", LOC, ("b", "a")) == "b"
    assert refusal(choice, "c", ("b", "a")) == "must be one of b, a, got 'c'"


def test_name_list_is_a_list_of_non_empty_strings() -> None:
    assert (
        name_list(["a", "b"], "section.value", LOC) == ("a", "b")
        and name_list([], "section.value", LOC) == ()
    )
    assert refusal(name_list, "a") == "must be a list of names"
    assert refusal(name_list, ["a", ""], what="dimension names") == "must be a list of dimension names"


def test_names_takes_one_name_or_a_list_and_locates_a_bad_item() -> None:
    assert names("a", "section.value", LOC) == ("a",) and names(["a", "b"], "section.value", LOC) == (
        "a",
        "b",
    )
    assert refusal(names, [1]) == "must be a name or a list of names"
    assert refusal(names, "c", ("a", "b")) == "must be one of a, b, got 'c'"
    with pytest.raises(ConfigError) as info:
        names(["a", "c"], "section.value", LOC, ("a", "b"))
    assert info.value.field == "section.value[1]"


@dataclass(frozen=True)
class Flat:
    flag: bool = False
    count: int = 3
    share: float = 0.5
    name: str = "n"
    key: str | None = None
    items: tuple[str, ...] = ()
    derived: int = 0
    table: dict[str, int] = field(default_factory=dict)


def test_fill_checks_each_setting_by_the_type_of_its_default() -> None:
    data, loc = compose_located("s: {flag: true, count: 4.0, share: 2, name: x, key: k}\n", "f.yaml")
    assert fill(Flat(), data["s"], "s", loc, internal=("table",)) == Flat(True, 4, 2.0, "x", "k")
    for yaml_text, message in [
        ("s: {flag: 1}", "s.flag: must be true or false"),
        ("s: {count: 1.5}", "s.count: must be a whole number, got 1.5"),
        ("s: {share: -1}", "s.share: must be at least 0, got -1"),
        ("s: {key: ''}", "s.key: must be a non-empty string, got ''"),
    ]:
        data, loc = compose_located(yaml_text, "f.yaml")
        with pytest.raises(ConfigError) as info:
            fill(Flat(), data["s"], "s", loc)
        assert str(info.value) == f"f.yaml:1: {message}"


def test_fill_uses_a_settings_own_check_and_keeps_int_settings_ints() -> None:
    data, loc = compose_located("s: {items: [a], count: 5.0}\n", "f.yaml")
    out = fill(
        Flat(),
        data["s"],
        "s",
        loc,
        {"items": lambda v, p: name_list(v, p, loc), "count": lambda v, p: positive(v, p, loc, integer=True)},
    )
    assert out.items == ("a",) and out.count == 5 and isinstance(out.count, int)


def test_fill_reports_the_first_bad_setting_in_file_order() -> None:
    data, loc = compose_located("s:\n  count: x\n  bogus: 1\n", "f.yaml")
    with pytest.raises(ConfigError, match=r"^f.yaml:2: s.count: must be a number"):
        fill(Flat(), data["s"], "s", loc)
    data, loc = compose_located("s:\n  bogus: 1\n  count: x\n", "f.yaml")
    with pytest.raises(ConfigError, match=r"^f.yaml:2: s.bogus: unknown setting"):
        fill(Flat(), data["s"], "s", loc)


def test_fill_knows_nested_keys_and_refuses_internal_fields() -> None:
    data, loc = compose_located("s: {extra: {anything: 1}, count: 1}\n", "f.yaml")
    assert fill(Flat(), data["s"], "s", loc, nested=("extra",)).count == 1
    data, loc = compose_located("s: {derived: 1}\n", "f.yaml")
    with pytest.raises(ConfigError) as info:
        fill(Flat(), data["s"], "s", loc, nested=("extra",), internal=("derived", "table"))
    assert "s.derived: unknown setting (expected one of: count, extra, flag, items, key, name, share)" in str(
        info.value
    )


def test_fill_refuses_to_guess_a_check_for_a_setting_without_one() -> None:
    data, loc = compose_located("s: {items: [a]}\n", "f.yaml")
    with pytest.raises(TypeError, match=r"s\.items: no check for a tuple setting"):
        fill(Flat(), data["s"], "s", loc)

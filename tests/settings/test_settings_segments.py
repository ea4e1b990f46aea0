"""The segments section: which dimensions become cohorts, and crosses of two or more of them."""

from __future__ import annotations

import pytest
from config_errors import assert_fails

from rollguard.settings import parse_config
from rollguard.settings.segments import SegmentSettings


def test_defaults_analyse_every_dimension_seen() -> None:
    assert parse_config("segments:\n").segments == SegmentSettings(None, (), (), 8)
    assert parse_config("segments: {dimensions: null, groupings: null}").segments == SegmentSettings()


def test_groupings_are_sorted_crosses() -> None:
    segments = parse_config(
        "segments: {dimensions: [tenant], exclude: [region], "
        "groupings: [[tenant, input_class]], max_dimensions: 3}"
    ).segments
    assert segments == SegmentSettings(("tenant",), ("region",), (("input_class", "tenant"),), 3)


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        (
            "segments:\n  dims: [a]\n",
            2,
            "segments.dims",
            "unknown setting (expected one of: dimensions, exclude, groupings, max_dimensions)",
        ),
        ("segments:\n  dimensions: tenant\n", 2, "segments.dimensions", "must be a list of names"),
        ("segments:\n  exclude: [1]\n", 2, "segments.exclude", "must be a list of names"),
        ("segments:\n  exclude: null\n", 2, "segments.exclude", "must be a list of names"),
        # a scalar used to crash with a TypeError (or be read as no groupings when falsy)
        ("segments:\n  groupings: 3\n", 2, "segments.groupings", "must be a list of groupings"),
        ("segments:\n  groupings: false\n", 2, "segments.groupings", "must be a list of groupings"),
        ("segments:\n  groupings: [tenant]\n", 2, "segments.groupings[0]", "must be a list of names"),
        (
            "segments:\n  groupings: [[tenant]]\n",
            2,
            "segments.groupings[0]",
            "a grouping crosses two or more distinct dimensions",
        ),
        (
            "segments:\n  groupings: [[a, a]]\n",
            2,
            "segments.groupings[0]",
            "a grouping crosses two or more distinct dimensions",
        ),
        ("segments:\n  max_dimensions: -1\n", 2, "segments.max_dimensions", "must be at least 0, got -1"),
        (
            "segments:\n  max_dimensions: x\n  dims: 1\n",
            2,
            "segments.max_dimensions",
            "must be a number, got 'x'",
        ),
    ],
)
def test_errors_name_the_line_and_field(text: str, line: int, field: str, message: str) -> None:
    assert_fails(text, line, field, message)

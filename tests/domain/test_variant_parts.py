"""Bounded scope: which parts of its version the canary changes, and when that is a bundled change."""

from __future__ import annotations

from rollguard.domain.variant_parts import (
    bundled_parts,
    changed_parts_text,
    compare,
    differing_parts,
)

CONTROL = {"model": "m-2025-12", "prompt": "p6", "tools": "t3"}


def test_a_canary_changing_one_part_is_a_bounded_change_naming_that_part() -> None:
    c = compare(CONTROL, {**CONTROL, "prompt": "p7"})
    assert c.changed == ("prompt",) and not c.bundled
    assert c.to_dict() == {"control": CONTROL, "canary": {**CONTROL, "prompt": "p7"}, "changed": ["prompt"],
                           "bundled_change": False}  # fmt: skip


def test_a_canary_changing_more_than_one_part_is_a_bundled_change_with_the_parts_named_in_order() -> None:
    c = compare(CONTROL, {"tools": "t4", "model": "m-2026-01", "prompt": "p6"})
    assert c.changed == ("model", "tools") and c.bundled
    assert bundled_parts({"variant_parts": c.to_dict()}) == ["model", "tools"]


def test_a_part_named_by_one_arm_only_counts_as_changed() -> None:
    assert differing_parts(CONTROL, {**CONTROL, "retriever": "r2"}) == ("retriever",)
    assert differing_parts(CONTROL, {"model": "m-2025-12", "prompt": "p6"}) == ("tools",)


def test_identical_parts_change_nothing() -> None:
    c = compare(CONTROL, dict(reversed(list(CONTROL.items()))))
    assert c.changed == () and not c.bundled


def test_until_both_arms_named_their_parts_nothing_is_compared_or_flagged() -> None:
    for c in (compare(None, CONTROL), compare(CONTROL, None), compare(None, None)):
        assert c.changed is None and not c.bundled and c.to_dict()["changed"] is None
        assert bundled_parts({"variant_parts": c.to_dict()}) == []


def test_bundled_parts_reads_a_status_or_the_comparison_view_and_is_empty_otherwise() -> None:
    view = compare(CONTROL, {"model": "m-2", "prompt": "p7", "tools": "t4"}).to_dict()
    assert bundled_parts(view) == bundled_parts({"variant_parts": view}) == ["model", "prompt", "tools"]
    assert bundled_parts({"variant_parts": None}) == []
    assert bundled_parts({"rollout_id": "r"}) == []
    assert bundled_parts({"variant_parts": {"bundled_change": "yes", "changed": ["a", "b"]}}) == []


def test_the_alert_wording_names_one_part_or_the_parts_changed_together() -> None:
    assert changed_parts_text(("tools",)) == "changed part: tools"
    assert changed_parts_text(("model", "prompt")) == "bundled change: model and prompt changed together"

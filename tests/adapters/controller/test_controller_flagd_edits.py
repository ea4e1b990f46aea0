"""The pure flag-definition edits: each command's end state, read back through flagd's own evaluator."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from controller_testkit import canary_flags, command
from rollguard.adapters.controller.admission import Refusal, RolloutCommand, parse_command
from rollguard.adapters.controller.flagd import (
    PAUSED_BY_KEY,
    PAUSED_KEY,
    FlagEdit,
    canary_share,
    edit_flags,
    scope_condition,
)
from rollguard.settings.controller import FlagMapping

FLAG = "checkout-v2"
MAPPING = FlagMapping(FLAG)


def cmd(action: str, **kw: Any) -> RolloutCommand:
    parsed = parse_command(command(action, FLAG, **kw))
    assert isinstance(parsed, RolloutCommand), parsed
    return parsed


def applied(doc: dict[str, Any], c: RolloutCommand, mapping: FlagMapping = MAPPING) -> FlagEdit:
    edit = edit_flags(doc, c, mapping)
    assert isinstance(edit, FlagEdit), edit
    return edit


def refused(doc: dict[str, Any], c: RolloutCommand, mapping: FlagMapping = MAPPING) -> Refusal:
    edit = edit_flags(doc, c, mapping)
    assert isinstance(edit, Refusal), edit
    return edit


def evaluate(doc: dict[str, Any], targeting_key: str | None, flag: str = FLAG, **attrs: str) -> str | None:
    core = FlagdCore()
    core.set_flags(copy.deepcopy(doc))
    ctx = EvaluationContext(targeting_key=targeting_key, attributes=attrs)
    result = core.resolve_string_value(flag, "<default>", ctx)
    return result.variant


def share(doc: dict[str, Any], n: int = 2000, **attrs: str) -> float:
    return sum(evaluate(doc, f"user-{i:06d}", **attrs) == "canary" for i in range(n)) / n


def test_disable_scope_sends_the_scope_to_control_and_leaves_the_rest_on_the_split() -> None:
    doc = canary_flags()
    edit = applied(doc, cmd("disable_scope", scope={"input_class": "coding"}))
    assert edit.changed and edit.version == "2"
    new = edit.document
    assert new["flags"][FLAG]["targeting"] == {
        "if": [
            {"and": [{"==": [{"var": "input_class"}, "coding"]}]},
            "control",
            {"fractional": [["canary", 10], ["control", 90]]},
        ]
    }
    assert share(new, input_class="coding") == 0.0
    assert share(new, input_class="chat") == share(doc, input_class="chat") > 0.05


def test_disable_scope_matches_every_dimension_of_the_scope_under_its_context_key() -> None:
    mapping = FlagMapping(FLAG, context_keys={"input_class": "inputClass"})
    edit = applied(
        canary_flags(), cmd("disable_scope", scope={"input_class": "coding", "tenant": "t3"}), mapping
    )
    doc = edit.document
    assert doc["flags"][FLAG]["targeting"]["if"][0] == scope_condition(
        frozenset({("inputClass", "coding"), ("tenant", "t3")})
    )
    assert share(doc, inputClass="coding", tenant="t3") == 0.0
    assert share(doc, inputClass="coding", tenant="t1") > 0.05  # one dimension alone is not the scope
    assert share(doc, input_class="coding", tenant="t3") > 0.05  # the dimension's name is not its key here


def test_disable_scope_twice_changes_nothing_the_second_time() -> None:
    c = cmd("disable_scope", scope={"input_class": "coding"})
    first = applied(canary_flags(), c)
    second = applied(first.document, c)
    assert not second.changed and second.document == first.document and second.version == "2"
    assert second.detail.startswith("already in effect")


def test_a_broader_disabled_scope_already_covers_a_narrower_one_but_not_the_reverse() -> None:
    broad = applied(canary_flags(), cmd("disable_scope", scope={"input_class": "coding"})).document
    narrow = cmd("disable_scope", scope={"input_class": "coding", "tenant": "t3"})
    assert not applied(broad, narrow).changed
    narrow_first = applied(canary_flags(), narrow).document
    assert applied(narrow_first, cmd("disable_scope", scope={"input_class": "coding"})).changed


def test_disable_scope_goes_in_front_of_existing_rules_as_one_flat_if() -> None:
    doc = canary_flags()
    doc["flags"][FLAG]["targeting"] = {
        "if": [
            {"==": [{"var": "tenant"}, "beta"]},
            "canary",
            {"fractional": [["canary", 10], ["control", 90]]},
        ]
    }
    new = applied(doc, cmd("disable_scope", scope={"tenant": "beta"})).document
    args = new["flags"][FLAG]["targeting"]["if"]
    assert len(args) == 5 and args[1] == "control" and args[3] == "canary"
    assert evaluate(new, "u1", tenant="beta") == "control"
    assert evaluate(doc, "u1", tenant="beta") == "canary"


def test_disable_scope_on_a_flag_without_targeting_leaves_other_contexts_on_the_default() -> None:
    doc = canary_flags()
    del doc["flags"][FLAG]["targeting"]
    doc["flags"][FLAG]["defaultVariant"] = "canary"
    new = applied(doc, cmd("disable_scope", scope={"input_class": "coding"})).document
    assert evaluate(new, "u1", input_class="coding") == "control"
    assert evaluate(new, "u1", input_class="chat") == "canary"


def test_reduce_weight_sets_the_split_to_the_target_and_bumps_the_version() -> None:
    edit = applied(canary_flags(), cmd("reduce_weight", target_weight=0.05))
    assert edit.document["flags"][FLAG]["targeting"] == {"fractional": [["canary", 5], ["control", 95]]}
    assert edit.version == "2" and canary_share(edit.document, MAPPING) == [0.05]
    assert 0.035 < share(edit.document, n=4000) < 0.065


def test_reduce_weight_never_raises_exposure_and_promote_never_lowers_it() -> None:
    doc = canary_flags()
    assert not applied(doc, cmd("reduce_weight", target_weight=0.2)).changed
    assert not applied(doc, cmd("promote", target_weight=0.05)).changed
    raised = applied(doc, cmd("promote", target_weight=0.25)).document
    assert canary_share(raised, MAPPING) == [0.25]


def test_promote_to_one_gives_the_canary_everything_including_contexts_without_a_targeting_key() -> None:
    new = applied(canary_flags(), cmd("promote", target_weight=1.0)).document
    flag = new["flags"][FLAG]
    assert flag["targeting"] == {"fractional": [["canary", 100], ["control", 0]]}
    assert flag["defaultVariant"] == "canary"
    assert share(new, n=500) == 1.0 and evaluate(new, None) == "canary"


def test_a_weight_the_split_cannot_express_scales_it_by_a_power_of_ten() -> None:
    new = applied(canary_flags(), cmd("reduce_weight", target_weight=0.023)).document
    assert new["flags"][FLAG]["targeting"] == {"fractional": [["canary", 23], ["control", 977]]}
    third = applied(canary_flags(), cmd("reduce_weight", target_weight=1 / 30)).document
    (s,) = canary_share(third, MAPPING)
    assert abs(s - 1 / 30) < 1e-6
    assert not applied(third, cmd("reduce_weight", target_weight=1 / 30)).changed


def test_weight_changes_touch_every_split_with_the_canary_and_keep_other_variants_and_bucketing() -> None:
    doc = canary_flags()
    bucket = {"cat": [{"var": "$flagd.flagKey"}, {"var": "tenant"}]}
    doc["flags"][FLAG]["variants"]["shadow"] = "model-shadow"
    doc["flags"][FLAG]["targeting"] = {
        "if": [
            {"==": [{"var": "region"}, "eu"]},
            {"fractional": [bucket, ["canary", 20], ["control", 70], ["shadow", 10]]},
            {"fractional": [["canary", 10], ["control", 90]]},
        ]
    }
    new = applied(doc, cmd("reduce_weight", target_weight=0.05)).document
    eu, rest = new["flags"][FLAG]["targeting"]["if"][1:]
    assert eu == {"fractional": [bucket, ["canary", 5], ["control", 85], ["shadow", 10]]}
    assert rest == {"fractional": [["canary", 5], ["control", 95]]}


def test_rollback_serves_control_everywhere_and_keeps_the_rules_readable() -> None:
    doc = canary_flags()
    doc["flags"][FLAG]["targeting"] = {
        "if": [
            {"==": [{"var": "tenant"}, "beta"]},
            "canary",
            {"in": [{"var": "tenant"}, ["t1", "t2"]]},
            {"if": [{"==": [{"var": "input_class"}, "canary"]}, "canary", "control"]},
            {"fractional": [["canary", 10], ["control", 90]]},
        ]
    }
    edit = applied(doc, cmd("rollback"))
    flag = edit.document["flags"][FLAG]
    assert flag["defaultVariant"] == "control"
    t = flag["targeting"]["if"]
    assert t[0] == {"==": [{"var": "tenant"}, "beta"]}  # conditions are kept as they were
    assert t[1] == "control"
    assert t[3] == {"if": [{"==": [{"var": "input_class"}, "canary"]}, "control", "control"]}
    assert t[4] == {"fractional": [["canary", 0], ["control", 100]]}
    for tenant in ("beta", "t1", "t9"):
        for ic in ("canary", "chat"):
            assert all(
                evaluate(edit.document, f"u{i}", tenant=tenant, input_class=ic) == "control"
                for i in range(50)
            )
    assert not applied(edit.document, cmd("rollback")).changed


def test_rollback_removes_targeting_whose_outcomes_are_computed() -> None:
    doc = canary_flags()
    doc["flags"][FLAG]["targeting"] = {"var": "preferred_variant"}
    assert evaluate(doc, "u1", preferred_variant="canary") == "canary"
    edit = applied(doc, cmd("rollback"))
    assert edit.document["flags"][FLAG]["targeting"] == {}
    assert "computed targeting removed" in edit.detail
    assert evaluate(edit.document, "u1", preferred_variant="canary") == "control"


def test_rollback_needs_only_the_control_variant_and_never_refuses_a_split_it_cannot_read() -> None:
    doc = canary_flags()
    doc["flags"][FLAG]["targeting"] = {"fractional": [["canary", 0.5], ["control", 0.5]]}
    edit = applied(doc, cmd("rollback"), FlagMapping(FLAG, canary="no-such-variant"))
    assert edit.document["flags"][FLAG]["targeting"] == {} and evaluate(edit.document, "u1") == "control"
    r = refused(doc, cmd("reduce_weight", target_weight=0.05))
    assert r.reason_code == "invalid" and "whole numbers" in r.reason


def test_pause_freezes_the_split_against_weight_changes_but_not_against_taking_exposure_away() -> None:
    pause = cmd("pause")
    paused = applied(canary_flags(), pause)
    meta = paused.document["flags"][FLAG]["metadata"]
    assert meta[PAUSED_KEY] is True and meta[PAUSED_BY_KEY] == pause.command_id and meta["version"] == "2"
    assert paused.document["flags"][FLAG]["targeting"] == canary_flags()["flags"][FLAG]["targeting"]
    assert not applied(paused.document, cmd("pause")).changed
    for action, weight in (("reduce_weight", 0.05), ("promote", 0.5)):
        r = refused(paused.document, cmd(action, target_weight=weight))
        assert r.reason_code == "conflict" and "paused" in r.reason and pause.command_id in r.reason
    assert not applied(paused.document, cmd("reduce_weight", target_weight=0.1)).changed  # end state holds
    assert applied(paused.document, cmd("disable_scope", scope={"tenant": "t3"})).changed
    assert applied(paused.document, cmd("rollback")).changed


def test_expected_version_must_match_when_something_would_change() -> None:
    doc = canary_flags()
    r = refused(doc, cmd("reduce_weight", target_weight=0.05, expected_version="7"))
    assert r.reason_code == "conflict" and "'1'" in r.reason and "'7'" in r.reason
    ok = applied(doc, cmd("reduce_weight", target_weight=0.05, expected_version="1"))
    assert ok.version == "2"
    again = applied(ok.document, cmd("reduce_weight", target_weight=0.05, expected_version="1"))
    assert not again.changed and again.version == "2"  # the end state holds: nothing to guard


@pytest.mark.parametrize(
    ("version", "after"), [(None, "1"), (41, "42"), ("v9", "v10"), ("2026.01.09", "2026.01.10")]
)
def test_every_change_bumps_the_flag_version_whatever_its_form(version: Any, after: str) -> None:
    doc = canary_flags()
    if version is None:
        del doc["flags"][FLAG]["metadata"]
    else:
        doc["flags"][FLAG]["metadata"]["version"] = version
    edit = applied(doc, cmd("rollback"))
    assert edit.version == after
    assert type(edit.document["flags"][FLAG]["metadata"]["version"]) is (
        int if isinstance(version, int) else str
    )


@pytest.mark.parametrize(
    ("action", "kw", "mapping", "fragment"),
    [
        ("rollback", {}, FlagMapping("other-flag"), "'other-flag' is not defined"),
        ("rollback", {}, FlagMapping(FLAG, control="off"), "no control variant 'off'"),
        ("disable_scope", {}, MAPPING, "needs a scope"),
        ("reduce_weight", {"target_weight": 0.05, "scope": {"tenant": "t1"}}, MAPPING, "whole flag"),
        ("rollback", {"scope": {"tenant": "t1"}}, MAPPING, "whole flag"),
        (
            "disable_scope",
            {"scope": {"a": "1", "b": "2"}},
            FlagMapping(FLAG, context_keys={"a": "k", "b": "k"}),
            "one context key",
        ),
    ],
)
def test_commands_that_cannot_mean_anything_for_the_flag_are_invalid(
    action: str, kw: dict[str, Any], mapping: FlagMapping, fragment: str
) -> None:
    r = refused(canary_flags(), cmd(action, **kw), mapping)
    assert r.reason_code == "invalid" and fragment in r.reason


def test_a_flag_without_a_canary_split_cannot_have_its_weight_changed() -> None:
    doc = canary_flags()
    doc["flags"][FLAG]["targeting"] = {"if": [{"==": [{"var": "tenant"}, "beta"]}, "canary"]}
    r = refused(doc, cmd("reduce_weight", target_weight=0.0))
    assert r.reason_code == "invalid" and "no fractional split" in r.reason


def test_the_input_document_is_never_modified() -> None:
    doc = canary_flags()
    doc["flags"]["other"] = {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
    }
    before = copy.deepcopy(doc)
    for c in (
        cmd("disable_scope", scope={"input_class": "coding"}),
        cmd("reduce_weight", target_weight=0.05),
        cmd("rollback"),
        cmd("pause"),
        cmd("promote", target_weight=1.0),
    ):
        edit = applied(doc, c)
        assert edit.document["flags"]["other"] == before["flags"]["other"]
    assert doc == before


_COMMANDS = st.one_of(
    st.builds(
        lambda v: ("disable_scope", {"scope": {"input_class": v}}), st.sampled_from(["coding", "chat"])
    ),
    st.builds(
        lambda v: ("disable_scope", {"scope": {"input_class": "coding", "tenant": v}}),
        st.sampled_from(["t1", "t2"]),
    ),
    st.builds(lambda w: ("reduce_weight", {"target_weight": w}), st.floats(0, 1)),
    st.builds(lambda w: ("promote", {"target_weight": w}), st.floats(0, 1)),
    st.just(("rollback", {})),
    st.just(("pause", {})),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_COMMANDS, min_size=1, max_size=6))
def test_any_sequence_of_commands_is_idempotent_step_by_step_and_stays_loadable_by_flagd(
    steps: list[tuple[str, dict[str, Any]]],
) -> None:
    doc = canary_flags()
    for action, kw in steps:
        c = cmd(action, **kw)
        edit = edit_flags(doc, c, MAPPING)
        if isinstance(edit, Refusal):
            assert edit.reason_code == "conflict"  # only a pause refuses these
            continue
        again = edit_flags(edit.document, c, MAPPING)
        assert isinstance(again, FlagEdit) and not again.changed and again.document == edit.document
        doc = edit.document
        variant = evaluate(doc, "user-1", input_class="coding", tenant="t1")
        assert variant in ("control", "canary")

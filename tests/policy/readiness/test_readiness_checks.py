"""Pre-flight readiness in the pure core: each check's outcomes, when a rollout is ready, and its record."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from policy_testkit import ROLLOUT, T0, ack, firing, policy, verdict
from rollguard.detect.control_history import CohortHistory
from rollguard.policy.commands.signing import verify_command
from rollguard.policy.policy import Output, Policy
from rollguard.policy.readiness.baselines import BaselineFacts, baselines_check
from rollguard.policy.readiness.eval_gate import EvalGateOutcome, eval_gate_check
from rollguard.policy.readiness.rollout import RolloutReadiness
from rollguard.settings.readiness import EvalGateReport, ReadinessSettings

KEY = b"readiness-key"


def started(yaml_text: str = "") -> tuple[Policy, Output]:
    """A policy that saw the rollout's first event at T0."""
    p = policy(yaml_text, KEY)
    out = p.readiness_started(ROLLOUT, T0)
    out += p.readiness_changed(ROLLOUT)
    return p, out


def check(p: Policy, name: str) -> dict[str, Any]:
    readiness = p.status(ROLLOUT)["readiness"]
    return next(c for c in readiness["checks"] if c["check"] == name)


# ---------------------------------------------------------------------------------------------- revert


def test_the_first_event_issues_a_signed_dry_run_rollback_marked_as_a_rehearsal() -> None:
    p, out = started()
    (rehearsal,) = out.commands
    assert (rehearsal["action"], rehearsal["scope"], rehearsal["dry_run"], rehearsal["rehearsal"]) == (
        "rollback", {}, True, True,
    )  # fmt: skip
    assert verify_command(rehearsal, KEY) and rehearsal["sequence"] == 1
    assert check(p, "revert")["state"] == "pending"
    assert p.status(ROLLOUT)["readiness"]["ready"] is False
    assert p.readiness_started(ROLLOUT, T0 + 10).commands == []  # once per rollout


def test_a_dry_run_ok_answer_makes_the_revert_check_met_and_the_rollout_ready() -> None:
    p, out = started()
    out = p.on_ack(ack(out.commands[0], "dry_run_ok", controller="flagd-file"))
    assert out.audit[0]["result"] == "rehearsal: dry_run_ok"
    assert check(p, "revert")["state"] == "met"
    assert "answered dry_run_ok by flagd-file" in check(p, "revert")["evidence"]
    (record,) = out.readiness
    assert record["ready"] is True and record["blocking"] == []


def test_the_rehearsal_and_its_ack_never_move_the_command_ladder() -> None:
    p, out = started()
    p.on_ack(ack(out.commands[0], "dry_run_ok"))
    rc = p.planner.rollouts[ROLLOUT]
    assert (rc.commands, rc.level, rc.issued_times, rc.in_flight()) == ({}, 0, [], None)
    # The ladder then starts at its first step, with the next sequence number.
    out = p.on_changes([verdict("error_rate", "input_class=coding", ts=T0 + 30)])
    assert [(c["action"], c["sequence"]) for c in out.commands] == [("disable_scope", 2)]


def test_no_answer_within_the_timeout_is_not_ready_and_warns_the_on_call() -> None:
    p, _ = started("readiness: {rehearsal_timeout_s: 60}")
    assert p.advance(T0 + 59).alerts == []
    out = p.advance(T0 + 60)
    (alert,) = firing(out)
    assert (alert["rule"], alert["severity"], alert["audience"]) == (
        "revert_not_rehearsed",
        "warning",
        "oncall",
    )
    assert "revert path not rehearsed" in alert["summary"]
    assert check(p, "revert")["state"] == "unmet" and out.readiness[0]["blocking"] == ["revert"]
    # A late dry_run_ok still proves the path: the check is met and the warning resolves.
    p.advance(T0 + 90)
    out = p.on_ack(ack(_rehearsal_of(p), "dry_run_ok"))
    assert (
        check(p, "revert")["state"] == "met"
        and "after 90 s, later than 60 s" in check(p, "revert")["evidence"]
    )
    assert [a["status"] for a in out.alerts] == ["resolved"]


def _rehearsal_of(p: Policy) -> dict[str, Any]:
    cid = p.readiness[ROLLOUT].rehearsal.command_id
    return {"command_id": cid, "rollout_id": ROLLOUT, "issued_at": T0}


@pytest.mark.parametrize(
    ("status", "words"),
    [("rejected", "was rejected"), ("failed", "was failed"), ("applied", "a controller changed the rollout")],
)
def test_a_rejected_failed_or_applied_rehearsal_is_not_ready_and_warns(status: str, words: str) -> None:
    p, out = started()
    out = p.on_ack(ack(out.commands[0], status, reason="unauthorized"))
    assert check(p, "revert")["state"] == "unmet" and words in check(p, "revert")["evidence"]
    assert [a["rule"] for a in firing(out)] == ["revert_not_rehearsed"]


def test_with_commands_disabled_for_the_rollout_the_check_says_so_and_nothing_is_rehearsed() -> None:
    p, out = started(f"commands: {{rollouts: {{{ROLLOUT}: {{enabled: false}}}}}}")
    assert out.commands == []
    revert = check(p, "revert")
    assert revert["state"] == "unmet" and "rollout commands are disabled" in revert["evidence"]
    assert firing(p.advance(T0 + 3600)) == []  # a setting, not a failure: no alert


def test_the_revert_check_switched_off_issues_no_rehearsal() -> None:
    p, out = started("readiness: {revert: off}")
    assert out.commands == [] and check(p, "revert")["state"] == "off"
    assert p.status(ROLLOUT)["readiness"]["ready"] is True


def test_in_warn_mode_an_unanswered_rehearsal_is_a_warning_not_a_block() -> None:
    p, _ = started("readiness: {revert: warn, baselines: off, rehearsal_timeout_s: 60}")
    out = p.advance(T0 + 61)
    view = p.status(ROLLOUT)["readiness"]
    assert view["ready"] is True and view["warnings"] == ["revert"]
    assert [a["rule"] for a in firing(out)] == ["revert_not_rehearsed"]


# ---------------------------------------------------------------------------------------------- baselines


def history(cohort: str, born: float, **control: int) -> CohortHistory:
    return CohortHistory(cohort, born, tuple(control.items()))


SETTINGS = ReadinessSettings(
    baselines="block",
    min_samples={"guardrail": 100, "latency": 50, "quality": 100, "cost": 100},
    min_span_s=300,
)


def test_baselines_are_pending_while_control_history_grows_and_met_once_every_cohort_has_enough() -> None:
    facts = BaselineFacts(T0, history=[history("*", -math.inf, guardrail=40, latency=40)])
    thin = baselines_check(SETTINGS, facts, T0 + 100)
    assert (
        thin.state == "pending"
        and "whole rollout (guardrail 40 of 100; latency 40 of 50; 100 s of 300 s)" in (thin.evidence)
    )
    facts.history = [
        history("*", -math.inf, guardrail=400, latency=300),
        history("input_class=coding", T0 + 5, guardrail=150, latency=90),
        history("tenant=t9", T0 + 5, guardrail=0, latency=0),  # never seen in control traffic: not judged
    ]
    met = baselines_check(SETTINGS, facts, T0 + 400)
    assert met.state == "met" and met.evidence.startswith("2 cohort(s)")


def test_a_canary_that_starts_before_a_cohort_has_enough_control_lists_that_cohort() -> None:
    facts = BaselineFacts(
        T0,
        canary_at=T0 + 600,
        history=[
            history("*", -math.inf, guardrail=5000, latency=4000),
            history("input_class=billing", T0 + 500, guardrail=20, latency=20),  # a cohort seen late
        ],
    )
    result = baselines_check(SETTINGS, facts, T0 + 5000)
    assert result.state == "unmet" and result.blocks
    assert [d["cohort"] for d in result.details] == ["input_class=billing"]
    assert result.details[0]["short"] == ["guardrail", "latency"] and result.details[0]["span_s"] == 100
    assert "thin baseline when the canary started" in result.evidence


def test_a_canary_from_the_first_event_has_no_baseline_at_all() -> None:
    facts = BaselineFacts(T0, canary_at=T0, history=[history("*", -math.inf, guardrail=0, latency=0)])
    result = baselines_check(SETTINGS, facts, T0)
    assert result.state == "unmet" and result.details[0]["cohort"] == "*"


def test_a_family_the_traffic_never_reports_cannot_be_thin() -> None:
    facts = BaselineFacts(T0, canary_at=T0 + 600, history=[history("*", -math.inf, guardrail=500, latency=500,
                                                                     quality=0)])  # fmt: skip
    assert baselines_check(SETTINGS, facts, T0 + 600).state == "met"


# ---------------------------------------------------------------------------------------------- eval gate


@pytest.mark.parametrize(
    ("report", "outcome", "state"),
    [
        (None, None, "off"),
        (EvalGateReport("g.json"), None, "pending"),
        (EvalGateReport("g.json"), EvalGateOutcome("g.json", "pass", tests=12), "met"),
        (EvalGateReport("g.json"), EvalGateOutcome("g.json", "regression", tests=12), "unmet"),
        (EvalGateReport("g.json"), EvalGateOutcome("g.json", "inconclusive"), "unmet"),
        (EvalGateReport("g.json"), EvalGateOutcome("g.json", "missing"), "unmet"),
        (EvalGateReport("g.json", required=False), EvalGateOutcome("g.json", "missing"), "met"),
        (
            EvalGateReport("g.json", required=False),
            EvalGateOutcome("g.json", "unreadable", "not JSON"),
            "unmet",
        ),
    ],
)
def test_the_eval_gate_check_follows_the_named_report(
    report: EvalGateReport | None, outcome: EvalGateOutcome | None, state: str
) -> None:
    result = eval_gate_check("block", report, outcome)
    assert result.state == state
    assert (result.to_satisfy == "") == (state in ("met", "off"))  # what would satisfy it, when unsatisfied


def test_a_failed_eval_gate_blocks_readiness_and_says_what_would_satisfy_it() -> None:
    p, _ = started("readiness: {revert: off, eval_gate_reports: {r1: gates/r1.json}}")
    p.readiness_eval_gate(ROLLOUT, EvalGateOutcome("gates/r1.json", "regression", tests=8))
    (record,) = p.readiness_changed(ROLLOUT).readiness
    gate = next(c for c in record["checks"] if c["check"] == "eval_gate")
    assert record["ready"] is False and record["blocking"] == ["eval_gate"]
    assert gate["evidence"] == "eval gate failed: result regression (gates/r1.json, 8 tests)"
    assert "a passing report at gates/r1.json" in gate["to_satisfy"]


# ---------------------------------------------------------------------------------------- record and state


def test_a_record_is_published_only_when_readiness_changes_and_is_signed() -> None:
    p, out = started()
    (first,) = out.readiness
    assert first["kind"] == "readiness" and first["sequence"] == 1 and verify_command(first, KEY)
    assert p.readiness_changed(ROLLOUT).readiness == []  # nothing changed
    assert p.advance(T0 + 100).readiness == []  # still waiting: same state


def test_readiness_round_trips_through_json_with_the_policy_state() -> None:
    p, _ = started("readiness: {rehearsal_timeout_s: 60}")
    state = orjson.loads(orjson.dumps(p.to_state()))
    restored = Policy.from_state(p.config, state, signing_key=KEY)
    assert restored.to_state() == state
    # The restored policy times the rehearsal out exactly as the original does.
    assert restored.advance(T0 + 60).alerts == p.advance(T0 + 60).alerts != []
    assert RolloutReadiness.from_state(p.readiness[ROLLOUT].to_state()) == p.readiness[ROLLOUT]

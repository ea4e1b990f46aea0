"""Rollback commands: scoped first, escalated only after an applied step and a persisting regression, safe."""

from __future__ import annotations

from typing import Any

from policy_testkit import T0, ack, firing, policy, reset, verdict
from rollguard.policy.policy import Output, Policy


def _cmds(out: Output) -> list[tuple[str, dict[str, str], Any]]:
    return [(c["action"], c["scope"], c.get("target_weight")) for c in out.commands]


def test_a_regression_confined_to_one_cohort_disables_that_cohort_only() -> None:
    p = policy()
    out = p.on_changes([verdict("error_rate", "input_class=coding", ts=T0 + 60)])
    assert _cmds(out) == [("disable_scope", {"input_class": "coding"}, None)]
    (cmd,) = out.commands
    (alert,) = firing(out)
    assert cmd["alert_ids"] == [alert["alert_id"]] and cmd["issued_at"] == T0 + 60
    assert alert["annotations"]["commands"] == cmd["command_id"]
    assert cmd["evidence"]["signals"][0]["metric"] == "error_rate"


def test_an_error_spike_in_coding_never_rolls_back_billing() -> None:
    """The whole rollout looks regressed only because coding is: the command names coding."""
    p = policy()
    out = p.on_changes(
        [
            verdict("error_rate", "*", ts=T0 + 60),
            verdict("error_rate", "input_class=coding", ts=T0 + 60),
            verdict("error_rate", "input_class=billing", "non_inferior", ts=T0 + 60),
            verdict("error_rate", "input_class=chat", "non_inferior", ts=T0 + 60),
        ]
    )
    assert _cmds(out) == [("disable_scope", {"input_class": "coding"}, None)]
    p.on_ack(ack(out.commands[0]))
    later = p.advance(T0 + 3 * 3600)
    assert later.commands == [], "the attributed whole-rollout regression is covered by the scoped disable"


def _escalation_policy(extra: str = "") -> Policy:
    return policy("commands: {persist_s: 300, cooldown_s: 60}\n" + extra)


def test_a_second_regressed_scope_escalates_to_reduce_weight_after_the_first_step_applied() -> None:
    p = _escalation_policy()
    first = p.on_changes([verdict("error_rate", "input_class=coding", ts=T0)])
    assert _cmds(first) == [("disable_scope", {"input_class": "coding"}, None)]
    # billing regresses while the coding command is still unacked: nothing new in flight
    assert p.on_changes([verdict("timeout_rate", "input_class=billing", ts=T0 + 30)]).commands == []
    p.on_ack(ack(first.commands[0], at=T0 + 40))
    assert p.advance(T0 + 100).commands == []  # applied at T0+40: the regression must persist 300 s
    out = p.advance(T0 + 340)
    assert _cmds(out) == [("reduce_weight", {}, 0.01)]


def test_whole_rollout_regression_steps_down_reduce_weight_then_rollback() -> None:
    p = _escalation_policy()
    out = p.on_changes([verdict("error_rate", "*", ts=T0)])
    assert _cmds(out) == [("reduce_weight", {}, 0.01)]
    p.on_ack(ack(out.commands[0], at=T0 + 10))
    assert p.advance(T0 + 309).commands == []
    out = p.advance(T0 + 310)
    assert _cmds(out) == [("rollback", {}, None)]
    p.on_ack(ack(out.commands[0], at=T0 + 320))
    p.on_changes([verdict("latency_ms.p95", "input_class=legal", ts=T0 + 400)])
    quiet = p.advance(T0 + 10 * 3600)
    assert quiet.commands == [], "no command after a rollback (nothing left to escalate)"
    assert p.status("r1")["level"] == 2


def test_no_escalation_when_the_regression_does_not_persist() -> None:
    p = _escalation_policy("alerts: {resolve_after_s: 60}")
    out = p.on_changes([verdict("error_rate", "*", window="recent", ts=T0)])
    p.on_ack(ack(out.commands[0], at=T0 + 10))
    p.on_changes([verdict("error_rate", "*", "non_inferior", window="recent", ts=T0 + 100)])
    assert p.advance(T0 + 3600).commands == []


def test_no_escalation_without_an_applied_ack() -> None:
    p = _escalation_policy()
    out = p.on_changes([verdict("error_rate", "*", ts=T0)])
    p.on_ack(ack(out.commands[0], status="accepted"))
    later = p.advance(T0 + 800)  # expired at T0+900? not yet: still in flight
    assert later.commands == []


def test_progression_is_configurable() -> None:
    p = policy("commands: {progression: [disable_scope, rollback], escalate_at_scopes: 3}")
    out = p.on_changes([verdict("error_rate", "*", ts=T0)])
    assert _cmds(out) == [("rollback", {}, None)]


def test_ids_are_deterministic_and_a_decision_is_never_issued_twice() -> None:
    changes = [verdict("error_rate", "input_class=coding", ts=T0)]
    a, b = policy(key=b"k"), policy(key=b"k")
    ca, cb = a.on_changes(changes).commands, b.on_changes(changes).commands
    assert ca == cb and ca[0]["command_id"].startswith("cmd-")
    again = a.on_changes([verdict("error_rate", "input_class=coding", ts=T0 + 10)])
    assert again.commands == []


def test_cooldown_between_commands_for_the_same_scope() -> None:
    p = policy("commands: {cooldown_s: 600, ttl_s: 120, ack_timeout_s: 60, max_attempts: 3}")
    out = p.on_changes([verdict("error_rate", "input_class=coding", ts=T0)])
    (first,) = out.commands
    assert p.advance(T0 + 121).commands == []  # expired unacked, but still cooling down
    (retry,) = p.advance(T0 + 600).commands
    assert retry["attempt"] == 2 and retry["command_id"] != first["command_id"]
    assert retry["scope"] == first["scope"] and retry["action"] == first["action"]


def test_cap_on_commands_per_rollout_per_hour_raises_an_alert() -> None:
    p = policy("commands: {max_per_hour: 2, cooldown_s: 0, persist_s: 0, escalate_at_scopes: 9}")
    issued = []
    for i, cohort in enumerate(["tenant=t1", "tenant=t2", "tenant=t3"]):
        out = p.on_changes([verdict("error_rate", cohort, ts=T0 + 10 * i)])
        for c in out.commands:
            issued.append(c)
            p.on_ack(ack(c, at=T0 + 10 * i + 1))
    out = p.advance(T0 + 100)
    assert [c["scope"] for c in issued] == [{"tenant": "t1"}, {"tenant": "t2"}]
    assert "command_cap_reached" in {a.rule for a in p.book.active("r1")}
    later = p.advance(T0 + 3600)
    assert [c["scope"] for c in later.commands] == [{"tenant": "t3"}]


def test_dry_run_publishes_the_rehearsal_and_dry_run_ok_drives_the_ladder() -> None:
    p = policy("commands: {dry_run: true, persist_s: 300, cooldown_s: 60}")
    out = p.on_changes([verdict("error_rate", "*", ts=T0)])
    assert out.commands[0]["dry_run"] is True
    p.on_ack(ack(out.commands[0], status="dry_run_ok", at=T0 + 5))
    (step2,) = p.advance(T0 + 305).commands
    assert (step2["action"], step2["dry_run"]) == ("rollback", True)


def test_per_rollout_dry_run_override() -> None:
    p = policy("commands: {rollouts: {r1: {dry_run: true}}}")
    assert p.on_changes([verdict("error_rate", "*")]).commands[0]["dry_run"] is True
    q = policy("commands: {rollouts: {r2: {dry_run: true}}}")
    assert q.on_changes([verdict("error_rate", "*")]).commands[0]["dry_run"] is False


def test_an_unacked_command_raises_an_alert_that_resolves_on_ack() -> None:
    p = policy("commands: {ack_timeout_s: 120}")
    out = p.on_changes([verdict("error_rate", "input_class=coding", ts=T0)])
    assert firing(p.advance(T0 + 119)) == []
    (unacked,) = firing(p.advance(T0 + 120))
    assert (unacked["rule"], unacked["severity"], unacked["scope"]) == (
        "command_unacked",
        "critical",
        {"input_class": "coding"},
    )
    assert out.commands[0]["command_id"] in unacked["summary"]
    res = p.on_ack(ack(out.commands[0], at=T0 + 130))
    assert [(a["rule"], a["status"]) for a in res.alerts] == [("command_unacked", "resolved")]
    assert res.audit[0]["result"] == "applied"


def test_a_rejected_command_raises_an_alert_and_stops_the_ladder() -> None:
    p = _escalation_policy()
    out = p.on_changes([verdict("error_rate", "input_class=coding", ts=T0)])
    res = p.on_ack(
        ack(out.commands[0], status="rejected", reason="conflict: flag changed", reason_code="conflict")
    )
    (failed,) = firing(res)
    assert failed["rule"] == "command_failed" and "conflict" in failed["summary"]
    p.on_changes([verdict("error_rate", "input_class=billing", ts=T0 + 30)])
    assert p.advance(T0 + 3600).commands == [], "a refusal is not retried, and nothing escalates past it"
    assert p.status("r1")["commands"][0]["status"] == "rejected"


def test_post_rollout_regressions_without_effect_estimates_still_page() -> None:
    p = policy()
    change = verdict("error_rate", "input_class=legal", phase="post_rollout")
    change["evidence"] = {
        "method": "cusum-bernoulli",
        "reference": 0.009,
        "statistic": 14.0,
        "threshold": 12.0,
        "n_canary": 4000,
        "alpha": 1e-5,
    }
    out = p.on_changes([change])
    (a,) = firing(out)
    assert a["severity"] == "critical" and "after promotion" in a["summary"]
    assert _cmds(out) == [("disable_scope", {"input_class": "legal"}, None)]


def test_a_new_canary_variant_keeps_counting_command_sequences() -> None:
    """Controllers reject a sequence they have seen: the new variant's first command must be above the
    old variant's last one (it targets the same flag)."""
    p = policy()
    (first,) = p.on_changes([verdict("error_rate", "input_class=coding", ts=T0)]).commands
    p.on_changes([reset(T0 + 100)])
    (again,) = p.on_changes([verdict("error_rate", "input_class=coding", ts=T0 + 200)]).commands
    assert again["sequence"] > first["sequence"]

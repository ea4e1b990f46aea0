"""Human in the loop: approvals that hold and expire, operator hold/release, verdict overrides, acks."""

from __future__ import annotations

from policy_testkit import T0, ack, firing, operator, policy, srm, verdict


def _approval_policy() -> object:
    return policy("commands: {approval: required, approval_timeout_s: 600}")


def test_a_rule_needing_approval_proposes_and_holds_until_approved() -> None:
    p = policy("commands: {approval: required, approval_timeout_s: 600}")
    out = p.on_changes([verdict("error_rate", "input_class=coding", ts=T0)])
    (proposal,) = out.commands
    assert proposal["requires_approval"] is True and proposal["approved_by"] is None
    assert "command_awaiting_approval" in {a["rule"] for a in firing(out)}
    assert p.advance(T0 + 300).commands == []  # held: nothing else happens meanwhile
    res = p.on_operator(operator("approve", by="bob", command_id=proposal["command_id"], issued_at=T0 + 310))
    (cmd,) = res.commands
    assert (cmd["requires_approval"], cmd["approved_by"], cmd["proposal_id"]) == (
        False,
        "bob",
        proposal["command_id"],
    )
    assert cmd["command_id"] != proposal["command_id"] and cmd["scope"] == {"input_class": "coding"}
    assert ("command_awaiting_approval", "resolved") in {(a["rule"], a["status"]) for a in res.alerts}


def test_per_rule_approval() -> None:
    p = policy("""
alerts:
  rules:
    - {name: guardrail_regression, severity: critical, approval: required, match: [{family: guardrail}]}
""")
    assert p.on_changes([verdict("error_rate", "tenant=t1")]).commands[0]["requires_approval"] is True
    q = policy()
    assert q.on_changes([verdict("error_rate", "tenant=t1")]).commands[0]["requires_approval"] is False


def test_an_unapproved_proposal_expires_and_escalates_its_alert() -> None:
    p = policy(
        "commands: {approval: required, approval_timeout_s: 600}\nalerts: {rules: "
        "[{name: latency_regression, severity: warning, command: true, match: [{family: latency}]}]}"
    )
    out = p.on_changes([verdict("latency_ms.p95", "tenant=t1", ts=T0)])
    (alert,) = [a for a in firing(out) if a["rule"] == "latency_regression"]
    assert alert["severity"] == "warning" and out.commands[0]["requires_approval"]
    assert p.advance(T0 + 599).alerts == []
    later = p.advance(T0 + 600)
    (esc,) = [a for a in firing(later) if a["rule"] == "latency_regression"]
    assert (esc["alert_id"], esc["severity"], esc["notification"]["reason"]) == (
        alert["alert_id"],
        "critical",
        "approval_expired",
    )
    assert esc["annotations"]["escalated"] == "true" and esc["audience"] == "oncall"
    late = p.on_operator(operator("approve", command_id=out.commands[0]["command_id"], issued_at=T0 + 700))
    assert late.commands == [] and late.audit[0]["result"] == "rejected: proposal is approval_expired"


def test_a_denied_proposal_is_not_proposed_again_while_its_alert_fires() -> None:
    p = policy("commands: {approval: required, cooldown_s: 0}")
    out = p.on_changes([verdict("error_rate", "tenant=t1", ts=T0)])
    res = p.on_operator(operator("reject", command_id=out.commands[0]["command_id"]))
    assert res.audit[0]["result"].endswith("denied")
    assert p.advance(T0 + 7200).commands == []


def test_srm_makes_automatic_rollbacks_wait_for_an_operator() -> None:
    p = policy()
    out = p.on_changes([srm(ts=T0), verdict("error_rate", "tenant=t1", ts=T0)])
    assert out.commands[0]["requires_approval"] is True
    q = policy("commands: {on_srm: block}")
    assert q.on_changes([srm(ts=T0), verdict("error_rate", "tenant=t1", ts=T0)]).commands == []


def test_hold_stops_automatic_commands_until_released_or_expired() -> None:
    p = policy()
    p.on_operator(operator("hold", until=T0 + 1000, comment="incident review"))
    out = p.on_changes([verdict("error_rate", "tenant=t1", ts=T0 + 10)])
    assert out.commands == [] and firing(out), "alerts still fire while held"
    assert p.advance(T0 + 999).commands == []
    assert [c["scope"] for c in p.advance(T0 + 1000).commands] == [{"tenant": "t1"}]
    q = policy()
    q.on_operator(operator("hold"))
    q.on_changes([verdict("error_rate", "tenant=t1", ts=T0 + 10)])
    released = q.on_operator(operator("release", issued_at=T0 + 20))
    assert [c["scope"] for c in released.commands] == [{"tenant": "t1"}]


def test_override_of_a_verdict_resolves_its_alert_and_is_recorded() -> None:
    p = policy("alerts: {resolve_after_s: 0}\ncommands: {enabled: false}")
    (fired,) = firing(p.on_changes([verdict("latency_ms.p95", "tenant=t1", ts=T0)]))
    res = p.on_operator(
        operator(
            "override_verdict",
            by="carol",
            cohort="tenant=t1",
            metric="latency_ms.p95",
            verdict="non_inferior",
            comment="known slow tenant",
        )
    )
    assert res.audit[0]["by"] == "carol" and res.audit[0]["result"].startswith("ok")
    assert [a["alert_id"] for a in res.alerts if a["status"] == "resolved"] == [fired["alert_id"]]


def test_acks_are_recorded_and_visible_to_operators() -> None:
    p = policy()
    out = p.on_changes([verdict("error_rate", "tenant=t1", ts=T0)])
    p.on_ack(ack(out.commands[0], status="accepted", controller="flagd-bridge"))
    p.on_ack(ack(out.commands[0], status="applied", at=T0 + 20))
    dup = p.on_ack(ack(out.commands[0], status="applied", at=T0 + 20))
    assert dup.audit[0]["result"] == "ignored: duplicate"
    unknown = p.on_ack({"command_id": "cmd-nope", "rollout_id": "r1", "status": "applied", "at": T0})
    assert unknown.audit[0]["result"] == "ignored: unknown command"
    status = p.status("r1")
    assert status["commands"][0]["status"] == "applied" and status["disabled_scopes"] == ["tenant=t1"]


def test_bad_operator_actions_are_rejected_and_recorded() -> None:
    p = policy()
    assert (
        p.on_operator({"action": "rollback"})
        .audit[0]["result"]
        .startswith("rejected: not an operator action")
    )
    bad = operator("silence", matchers={}, duration_s=60)
    assert p.on_operator(bad).audit[0]["result"] == "rejected: a silence needs at least one matcher"

"""Which signals make which alert: default tiers and audiences, compound rules, overrides, attribution."""

from __future__ import annotations

from policy_testkit import T0, drift, firing, policy, scopes, srm, verdict


def _one(out_alerts: list[dict]) -> dict:
    assert len(out_alerts) == 1, [a["rule"] for a in out_alerts]
    return out_alerts[0]


def test_a_regressed_guardrail_rate_pages_oncall_now() -> None:
    p = policy()
    alert = _one(firing(p.on_changes([verdict("error_rate", "input_class=coding", ts=T0 + 60)])))
    assert alert["severity"] == "critical" and alert["rule"] == "guardrail_regression"
    assert alert["labels"]["audience"] == "oncall" and alert["labels"]["delivery"] == "now"
    assert p.topic_role(alert) == "alerts.critical"
    assert alert["starts_at"] == T0 + 60 and alert["ends_at"] is None


def test_latency_and_quality_warn_engineering_and_product_and_cost_informs_finance() -> None:
    cases = {
        "latency_ms.p95": ("warning", "engineering", "business_hours", "alerts.warning"),
        "quality.eval_score.mean": ("warning", "product", "digest", "alerts.warning"),
        "cost_usd.mean": ("info", "finance", "business_hours", "alerts.info"),
    }
    for metric, (severity, audience, delivery, role) in cases.items():
        p = policy()
        alert = _one(firing(p.on_changes([verdict(metric, "input_class=chat")])))
        assert (alert["severity"], alert["audience"], alert["labels"]["delivery"]) == (
            severity,
            audience,
            delivery,
        )
        assert p.topic_role(alert) == role
        assert not p.planner.rollouts["r1"].commands, f"{metric}: lower tiers never command by default"


def test_srm_warns_that_the_rollout_is_unhealthy() -> None:
    p = policy()
    alert = _one(firing(p.on_changes([srm()])))
    assert (alert["severity"], alert["rule"], alert["scope"]) == ("warning", "sample_ratio_mismatch", {})
    assert "promotion is held" in alert["summary"]
    assert p.status("r1")["healthy"] is False


def test_drift_of_both_arms_is_info_and_never_a_rollback() -> None:
    p = policy()
    out = p.on_changes([drift("timeout_rate", "tenant=t2")])
    alert = _one(firing(out))
    assert (alert["severity"], alert["rule"], alert["scope"]) == ("info", "baseline_drift", {"tenant": "t2"})
    assert "not a canary regression" in alert["summary"]
    assert out.commands == []


def test_sub_cohort_alerts_name_their_scope() -> None:
    p = policy()
    alert = _one(firing(p.on_changes([verdict("error_rate", "input_class=coding")])))
    assert alert["scope"] == {"input_class": "coding"}
    assert (
        alert["labels"]["scope_input_class"] == "coding" and alert["labels"]["cohort"] == "input_class=coding"
    )
    assert "input_class=coding" in alert["summary"] and "error_rate" in alert["summary"]


def test_whole_rollout_regression_is_attributed_to_the_one_regressed_cohort() -> None:
    p = policy()
    out = p.on_changes(
        [
            verdict("error_rate", "*"),
            verdict("error_rate", "input_class=coding"),
            verdict("error_rate", "input_class=billing", "non_inferior"),
            verdict("error_rate", "input_class=chat", "non_inferior"),
        ]
    )
    alert = _one(firing(out))
    assert alert["scope"] == {"input_class": "coding"}
    assert alert["annotations"]["attributed_from"] == "*"
    assert {s["cohort"] for s in alert["signals"]} == {"*", "input_class=coding"}


def test_strict_attribution_waits_for_the_other_cohorts_to_be_non_inferior() -> None:
    changes = [
        verdict("error_rate", "*"),
        verdict("error_rate", "input_class=coding"),
        verdict("error_rate", "input_class=billing", "insufficient"),
    ]
    strict = policy("alerts: {attribution: non_inferior}")
    (alert,) = firing(strict.on_changes(changes))  # the whole rollout's, coding grouped into it
    assert alert["scope"] == {} and [a["cohort"] for a in alert["affected"]] == ["input_class=coding"]
    lenient = policy()  # the default: no alarm elsewhere is enough, escalation covers the rest
    assert scopes(firing(lenient.on_changes(changes))) == ["input_class=coding"]


def test_a_cohort_of_another_dimension_regressed_through_the_culprit_is_folded_into_it() -> None:
    """Coding errors show up in every tenant that sends coding traffic: still one problem, in coding."""
    p = policy()
    out = p.on_changes(
        [
            verdict("error_rate", "*", window="recent"),
            verdict("error_rate", "input_class=coding", window="recent"),
            verdict("error_rate", "tenant=t1", window="recent"),
            verdict("error_rate", "input_class=billing", "insufficient"),
            verdict("error_rate", "input_class=chat", "non_inferior"),
            verdict("error_rate", "tenant=t2", "insufficient"),
        ]
    )
    (alert,) = firing(out)
    assert alert["scope"] == {"input_class": "coding"}
    assert alert["annotations"]["attributed_from"] == "*, tenant=t1"
    assert [c["scope"] for c in out.commands] == [{"input_class": "coding"}]


def test_a_regression_carrying_most_of_the_traffic_is_not_confined() -> None:
    p = policy("alerts: {attribution_max_share: 0.5}")
    out = p.on_changes(
        [
            verdict("error_rate", "*", n_canary=1000),
            verdict("error_rate", "input_class=chat", n_canary=800),
            verdict("error_rate", "input_class=coding", "non_inferior", n_canary=200),
        ]
    )
    (alert,) = firing(out)  # not confined to chat: the whole rollout's alert, chat grouped into it
    assert alert["scope"] == {} and alert["most_affected"]["cohort"] == "input_class=chat"


def test_multi_window_rule_needs_both_windows_to_agree() -> None:
    rule = """
alerts:
  default_rules: false
  rules:
    - name: errors_confirmed
      severity: critical
      match:
        - {metric: error_rate, windows: [cumulative, recent]}
"""
    p = policy(rule)
    assert firing(p.on_changes([verdict("error_rate", "input_class=coding", window="recent")])) == []
    assert firing(p.on_changes([verdict("error_rate", "input_class=billing", ts=T0 + 5)])) == []
    out = p.on_changes([verdict("error_rate", "input_class=coding", ts=T0 + 10)])
    alert = _one(firing(out))
    assert alert["scope"] == {"input_class": "coding"}
    assert {s["window"] for s in alert["signals"]} == {"cumulative", "recent"}


def test_compound_rule_over_several_metrics_and_the_srm_gate() -> None:
    rule = """
alerts:
  default_rules: false
  rules:
    - name: slow_and_verbose
      severity: warning
      require_healthy: true
      match:
        - {family: [latency, cost], min_metrics: 2}
"""
    p = policy(rule)
    assert firing(p.on_changes([verdict("latency_ms.mean", "tenant=t3")])) == []
    out = p.on_changes([verdict("tokens_out.mean", "tenant=t3")])
    assert _one(firing(out))["rule"] == "slow_and_verbose"
    out = p.on_changes([srm(ts=T0 + 1)])  # the split is off: the gate closes
    assert [a["status"] for a in out.alerts] == []  # resolve waits for the hysteresis
    assert p.book.active("r1") == []


def test_rollout_level_rule_over_several_cohorts() -> None:
    rule = """
alerts:
  default_rules: false
  rules:
    - {name: widespread_latency, severity: critical, group_by: rollout, min_cohorts: 3,
       match: [{family: latency}]}
"""
    p = policy(rule)
    assert firing(p.on_changes([verdict("latency_ms.p95", f"tenant=t{i}") for i in (1, 2)])) == []
    alert = _one(firing(p.on_changes([verdict("latency_ms.p95", "tenant=t3")])))
    assert alert["scope"] == {} and len(alert["signals"]) == 3


def test_segment_and_time_of_day_overrides_change_the_tier() -> None:
    rule = """
alerts:
  rules:
    - name: guardrail_regression
      severity: critical
      match: [{family: guardrail}]
      overrides:
        - {scope: {tenant: free}, severity: warning}
        - {hours: [22, 6], severity: warning, audience: engineering}
"""
    day, night = T0 + 12 * 3600, T0 + 23 * 3600
    p = policy(rule)
    by_scope = {
        a["labels"]["cohort"]: a
        for a in firing(
            p.on_changes(
                [verdict("error_rate", "tenant=free", ts=day), verdict("error_rate", "tenant=t1", ts=day)]
            )
        )
    }
    assert by_scope["tenant=free"]["severity"] == "warning"
    assert by_scope["tenant=t1"]["severity"] == "critical"
    q = policy(rule)
    alert = _one(firing(q.on_changes([verdict("error_rate", "tenant=t1", ts=night)])))
    assert (alert["severity"], alert["audience"]) == ("warning", "engineering")


def test_a_critical_margin_above_the_detection_margin_demotes_small_regressions() -> None:
    rule = """
alerts:
  rules:
    - {name: guardrail_regression, severity: critical, match: [{family: guardrail, min_effect_margins: 5}]}
    - {name: guardrail_minor, severity: warning, match: [{family: guardrail}]}
"""
    p = policy(rule)
    alert = _one(firing(p.on_changes([verdict("error_rate", "tenant=t1", effect=0.01)])))  # 2 margins
    assert (alert["rule"], alert["severity"]) == ("guardrail_minor", "warning")


def test_a_shift_everywhere_is_not_pinned_on_the_first_cohort_to_show_it() -> None:
    """Chat carries a fifth of the traffic and the whole rollout is as much worse as chat: chat alone
    cannot explain it (a fifth of the excess), so the alert stays on the whole rollout."""
    p = policy()
    out = p.on_changes(
        [
            verdict("cost_usd.mean", "*", scale=1.0),
            verdict("cost_usd.mean", "input_class=chat"),
            verdict("cost_usd.mean", "input_class=coding", "insufficient"),
        ]
    )
    assert scopes(firing(out)) == ["*"]  # one notification, chat among the affected
    assert [s for a in p.book.active("r1") for s in [a.cohort]] == ["*", "input_class=chat"]


def test_another_cohort_certainly_worse_than_control_is_not_fine() -> None:
    p = policy()
    out = p.on_changes(
        [
            verdict("cost_usd.mean", "*"),
            verdict("cost_usd.mean", "input_class=chat"),
            verdict("cost_usd.mean", "input_class=coding", "insufficient", interval=[-0.0001, 0.0002]),
        ]
    )
    assert scopes(firing(out)) == ["*"] and sorted(a.cohort for a in p.book.active("r1")) == [
        "*", "input_class=chat"
    ]  # fmt: skip


def test_an_alert_already_out_is_not_moved_by_later_attribution() -> None:
    """Chat alone would explain it now, but the whole rollout's alert is out: it stays, and chat's news
    is told in it rather than in a second notification."""
    p = policy("alerts: {resolve_after_s: 0}\ncommands: {enabled: false}")
    (whole,) = firing(p.on_changes([verdict("latency_ms.p95", "*", ts=T0)]))
    out = p.on_changes(
        [
            verdict("latency_ms.p95", "input_class=chat", ts=T0 + 30),
            verdict("latency_ms.p95", "input_class=coding", "non_inferior", ts=T0 + 30),
        ]
    )
    assert out.alerts == []
    assert whole["alert_id"] in {a.alert_id for a in p.book.active("r1")}
    chat = next(a for a in p.book.active("r1") if a.cohort == "input_class=chat")
    assert chat.suppressed == f"grouped:{whole['alert_id']}"

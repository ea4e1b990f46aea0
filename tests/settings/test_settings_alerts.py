"""The alerts section: default rules and routes without config, compound rules with scope and hour
overrides, alert lifecycle settings, and errors that name the file, line and field."""

from __future__ import annotations

import pytest
from config_errors import assert_fails

from rollguard.settings import Config, parse_config
from rollguard.settings.alerts import Clause, RuleOverride

RULE = "alerts:\n  rules:\n    - name: x\n      severity: info\n"  # a rule, its match on line 5
CLAUSE = RULE + "      match:\n        - "  # one clause on line 6
OVERRIDE = RULE + "      match: [{}]\n      overrides:\n        - "  # one override on line 7


def test_defaults_without_config() -> None:
    alerts = Config().alerts
    assert [r.name for r in alerts.rules] == [
        "guardrail_regression",
        "latency_regression",
        "quality_regression",
        "cost_regression",
        "semantic_drift",
        "shadow_divergence",
        "sample_ratio_mismatch",
        "baseline_drift",
    ]
    assert {s: r.audience for s, r in alerts.routing.items()} == {
        "critical": "oncall",
        "warning": "engineering",
        "info": "operations",
    }
    assert [r.commands for r in alerts.rules] == [True, False, False, False, False, False, False, False]


def test_semantic_drift_and_shadow_divergence_warn_by_default() -> None:
    rules = {r.name: r for r in Config().alerts.rules}
    assert rules["semantic_drift"].severity == "warning" and not rules["semantic_drift"].commands
    assert rules["shadow_divergence"].severity == "warning" and not rules["shadow_divergence"].commands


def test_the_section_parses_into_typed_settings() -> None:
    cfg = parse_config("""
alerts:
  resolve_after_s: 120
  repeat_interval_s: {critical: 900}
  routing:
    info: {audience: finops, role: alerts.info}
  rules:
    - name: errors_confirmed
      severity: critical
      match: [{metric: error_rate, windows: [cumulative, recent]}]
      overrides: [{scope: {tenant: free}, hours: [22, 6], severity: warning}]
""")
    a = cfg.alerts
    assert a.resolve_after_s == 120 and a.repeat_interval_s["critical"] == 900
    assert a.repeat_interval_s["info"] == 86400.0  # the tiers not given keep their default
    assert a.routing["info"].audience == "finops" and a.routing["info"].delivery == "business_hours"
    assert a.routing["critical"].audience == "oncall"
    rule = a.rules[-1]
    assert rule.name == "errors_confirmed" and rule.match[0].windows == ("cumulative", "recent")
    assert rule.overrides == (
        RuleOverride(scope=(("tenant", "free"),), hours=(22.0, 6.0), severity="warning"),
    )
    assert "alerts" in cfg.extra_sections  # still available verbatim to other modules


def test_a_rule_replaces_the_default_rule_of_its_name_and_default_rules_false_drops_the_rest() -> None:
    text = "alerts:\n  rules: [{name: latency_regression, severity: info, match: [{family: latency}]}]\n"
    rules = {r.name: r for r in parse_config(text).alerts.rules}
    assert len(rules) == 8 and rules["latency_regression"].severity == "info"
    only = parse_config(text + "  default_rules: false\n").alerts.rules
    assert [r.name for r in only] == ["latency_regression"]


def test_require_healthy_adds_the_absent_srm_clause() -> None:
    rule = parse_config(RULE + "      match: [{}]\n      require_healthy: true\n").alerts.rules[-1]
    assert rule.match[-1] == Clause(kind="srm", states=("unhealthy",), at="any", absent=True)


def test_flap_and_time_zone_settings() -> None:
    a = parse_config("alerts: {flap: {window: 10, start: 0.4, stop: 0.2}, utc_offset_hours: -5}").alerts
    assert (a.flap_window, a.flap_start, a.flap_stop, a.utc_offset_hours) == (10, 0.4, 0.2, -5.0)


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("alerts: []", 1, "alerts", "must be a mapping, got list"),
        (
            "alerts:\n  resolve_after: 5\n",
            2,
            "alerts.resolve_after",
            "unknown setting (expected one of: attribution, "
            "attribution_max_share, attribution_min_explained, "
            "default_rules, digest_audience, digest_interval_s, drift_guard_s, flap, generator_url, "
            "group_wait_s, grouping, inhibit_targets, max_alerts_per_rollout, repeat_interval_s, "
            "resolve_after_s, routing, rules, runbook_url, source, utc_offset_hours)",
        ),
        (
            "alerts:\n  flap_window: 8\n",
            2,
            "alerts.flap_window",  # set through flap.window only
            "unknown setting (expected one of: attribution, "
            "attribution_max_share, attribution_min_explained, "
            "default_rules, digest_audience, digest_interval_s, drift_guard_s, flap, generator_url, "
            "group_wait_s, grouping, inhibit_targets, max_alerts_per_rollout, repeat_interval_s, "
            "resolve_after_s, routing, rules, runbook_url, source, utc_offset_hours)",
        ),
        (
            "alerts:\n  resolve_after_s: x\n  bogus: 1\n",
            2,
            "alerts.resolve_after_s",
            "must be a number, got 'x'",
        ),
        ("alerts:\n  default_rules: 0", 2, "alerts.default_rules", "must be true or false"),
        (
            "alerts:\n  inhibit_targets: [page]",
            2,
            "alerts.inhibit_targets[0]",
            "must be one of critical, warning, info, got 'page'",
        ),
        (
            "alerts:\n  attribution: always",
            2,
            "alerts.attribution",
            "must be one of non_inferior, not_regressed, off, got 'always'",
        ),
        (
            "alerts:\n  attribution_max_share: 1",
            2,
            "alerts.attribution_max_share",
            "must be strictly between 0 and 1, got 1",
        ),
        (
            "alerts:\n  attribution_min_explained: 0",
            2,
            "alerts.attribution_min_explained",
            "must be strictly between 0 and 1, got 0",
        ),
        (
            "alerts:\n  utc_offset_hours: 25",
            2,
            "alerts.utc_offset_hours",
            "must be within [-24, 24] hours, got 25",
        ),
        (
            "alerts:\n  utc_offset_hours: -25",
            2,
            "alerts.utc_offset_hours",
            "must be within [-24, 24] hours, got -25",
        ),
        ("alerts:\n  digest_interval_s: 0", 2, "alerts.digest_interval_s", "must be positive, got 0"),
        (
            "alerts:\n  max_alerts_per_rollout: 4",
            2,
            "alerts.max_alerts_per_rollout",
            "must be at least 8, got 4",
        ),
        ("alerts:\n  digest_audience: ''", 2, "alerts.digest_audience", "must be a non-empty string, got ''"),
        # routing and repeat intervals, by severity
        (
            "alerts:\n  routing:\n    page: {audience: x}",
            3,
            "alerts.routing.page",
            "must be one of critical, warning, info, got 'page'",
        ),
        (
            "alerts:\n  routing:\n    info: {delivery: later}",
            3,
            "alerts.routing.info.delivery",
            "must be one of now, business_hours, digest, got 'later'",
        ),
        (
            "alerts:\n  routing:\n    info: {channel: x}",
            3,
            "alerts.routing.info.channel",
            "unknown setting (expected one of: audience, delivery, role)",
        ),
        (
            "alerts:\n  routing:\n    info: {role: ''}",
            3,
            "alerts.routing.info.role",
            "must be a non-empty string, got ''",
        ),
        (
            "alerts:\n  repeat_interval_s:\n    info: 0",
            3,
            "alerts.repeat_interval_s.info",
            "must be positive, got 0",
        ),
        (
            "alerts:\n  repeat_interval_s:\n    page: 10",
            3,
            "alerts.repeat_interval_s.page",
            "must be one of critical, warning, info, got 'page'",
        ),
        # flapping
        (
            "alerts:\n  flap: {start: 0.1, stop: 0.2}\n",
            2,
            "alerts.flap.stop",
            "must not exceed alerts.flap.start (hysteresis)",
        ),
        ("alerts:\n  flap: {window: 3}", 2, "alerts.flap.window", "must be at least 4, got 3"),
        ("alerts:\n  flap: {window: 65}", 2, "alerts.flap.window", "must be at most 64 evaluations"),
        ("alerts:\n  flap: {start: 1}", 2, "alerts.flap.start", "must be strictly between 0 and 1, got 1"),
        (
            "alerts:\n  flap: {size: 1}",
            2,
            "alerts.flap.size",
            "unknown setting (expected one of: start, stop, window)",
        ),
        # rules
        ("alerts:\n  rules: {}", 2, "alerts.rules", "must be a list of rules"),
        (
            RULE.replace("info", "loud") + "      match: [{}]\n",
            4,
            "alerts.rules[0].severity",
            "must be one of critical, warning, info, got 'loud'",
        ),
        (
            "alerts:\n  rules:\n    - {severity: info, match: [{}]}",
            3,
            "alerts.rules[0].name",
            "required setting is missing",
        ),
        (
            "alerts:\n  rules:\n    - {name: x, match: [{}]}",
            3,
            "alerts.rules[0].severity",
            "required setting is missing",
        ),
        (
            "alerts:\n  rules:\n    - {name: a b, severity: info, match: [{}]}",
            3,
            "alerts.rules[0].name",
            "use letters, digits, _ and - only",
        ),
        (
            "alerts:\n  rules:\n    - {name: x, severity: info, match: []}",
            3,
            "alerts.rules[0].match",
            "must be a non-empty list of clauses",
        ),
        (
            "alerts:\n  rules:\n    - {name: x, severity: info, match: [{}]}\n"
            "    - {name: x, severity: warning, match: [{}]}",
            4,
            "alerts.rules[1].name",
            "duplicate rule name 'x'",
        ),
        (
            "alerts:\n  rules:\n    - {name: x, severity: info, match: [{}], bogus: 1}",
            3,
            "alerts.rules[0].bogus",
            "unknown setting (expected one of: approval, audience, command, delivery, description, group_by, "
            "match, min_cohorts, name, overrides, require_healthy, runbook_url, severity)",
        ),
        (
            "alerts:\n  rules:\n    - {name: x, severity: info, match: [{kind: srm, absent: true}]}",
            3,
            "alerts.rules[0].match",
            "needs at least one clause that is not absent",
        ),
        (
            "alerts:\n  rules:\n    - {name: d, severity: info, command: true, match: [{kind: drift}]}\n",
            3,
            "alerts.rules[0].command",
            "drift hits both arms: a drift rule never commands a rollback",
        ),
        (
            RULE + "      group_by: tenant\n      match: [{}]\n",
            5,
            "alerts.rules[0].group_by",
            "must be one of scope, rollout, got 'tenant'",
        ),
        (
            RULE + "      min_cohorts: 0\n      match: [{}]\n",
            5,
            "alerts.rules[0].min_cohorts",
            "must be at least 1, got 0",
        ),
        (
            RULE + "      approval: maybe\n      match: [{}]\n",
            5,
            "alerts.rules[0].approval",
            "must be one of auto, required, got 'maybe'",
        ),
        (
            RULE + "      delivery: later\n      match: [{}]\n",
            5,
            "alerts.rules[0].delivery",
            "must be one of now, business_hours, digest, got 'later'",
        ),
        (
            RULE + "      audience: ''\n      match: [{}]\n",
            5,
            "alerts.rules[0].audience",
            "must be a non-empty string, got ''",
        ),
        (
            RULE + "      runbook_url: 5\n      match: [{}]\n",
            5,
            "alerts.rules[0].runbook_url",
            "must be a non-empty string, got 5",
        ),
        (
            RULE + "      require_healthy: 1\n      match: [{}]\n",
            5,
            "alerts.rules[0].require_healthy",
            "must be true or false",
        ),
        (
            RULE + "      match: [{}]\n      overrides: {scope: {}}\n",
            6,
            "alerts.rules[0].overrides",
            "must be a list",
        ),
        # clauses
        (CLAUSE + "5", 6, "alerts.rules[0].match[0]", "must be a mapping, got int"),
        (
            CLAUSE + "{metrics: error_rate}",
            6,
            "alerts.rules[0].match[0].metrics",
            "unknown setting (expected one of: absent, at, family, "
            "kind, metric, min_effect_margins, min_metrics, "
            "min_relative_effect, phase, state, window, windows)",
        ),
        (
            CLAUSE + "{kind: budget}",
            6,
            "alerts.rules[0].match[0].kind",
            "must be one of verdict, srm, drift, excess, got 'budget'",
        ),
        (
            CLAUSE + "{kind: drift, state: regressed}",
            6,
            "alerts.rules[0].match[0].state",
            "must be one of drifted, stable, got 'regressed'",
        ),
        (
            CLAUSE + "{family: speed}",
            6,
            "alerts.rules[0].match[0].family",
            "must be one of guardrail, latency, quality, cost, got 'speed'",
        ),
        (CLAUSE + "{metric: [1]}", 6, "alerts.rules[0].match[0].metric", "must be a name or a list of names"),
        (
            CLAUSE + "{window: recent, windows: [recent]}",
            6,
            "alerts.rules[0].match[0].windows",
            "give either window or windows",
        ),
        (
            CLAUSE + "{window: [recent, cumulative]}",
            6,
            "alerts.rules[0].match[0].window",
            "one window (use windows: [...] to require several)",
        ),
        (
            CLAUSE + "{phase: [canary, launch]}",
            6,
            "alerts.rules[0].match[0].phase[1]",
            "must be one of canary, post_rollout, got 'launch'",
        ),
        (
            CLAUSE + "{at: everywhere}",
            6,
            "alerts.rules[0].match[0].at",
            "must be one of same, whole, any, got 'everywhere'",
        ),
        (CLAUSE + "{min_metrics: 0}", 6, "alerts.rules[0].match[0].min_metrics", "must be at least 1, got 0"),
        (
            CLAUSE + "{min_effect_margins: -1}",
            6,
            "alerts.rules[0].match[0].min_effect_margins",
            "must be at least 0, got -1",
        ),
        (
            CLAUSE + "{min_relative_effect: x}",
            6,
            "alerts.rules[0].match[0].min_relative_effect",
            "must be a number, got 'x'",
        ),
        (CLAUSE + "{absent: 1}", 6, "alerts.rules[0].match[0].absent", "must be true or false"),
        # rule overrides
        (
            OVERRIDE + "{severity: warning}",
            7,
            "alerts.rules[0].overrides[0]",
            "an override needs a scope or hours to match",
        ),
        (
            OVERRIDE + "{hours: 22}",
            7,
            "alerts.rules[0].overrides[0].hours",
            "must be [start, end] in hours, e.g. [22, 6]",
        ),
        (OVERRIDE + "{hours: [22, 25]}", 7, "alerts.rules[0].overrides[0].hours", "hours are within [0, 24]"),
        (
            OVERRIDE + "{hours: [x, 6]}",
            7,
            "alerts.rules[0].overrides[0].hours[0]",
            "must be a number, got 'x'",
        ),
        (
            OVERRIDE + "{scope: {tenant: 5}}",
            7,
            "alerts.rules[0].overrides[0].scope.tenant",
            "must be a non-empty string, got 5",
        ),
        (
            OVERRIDE + "{scope: {tenant: a}, tier: 1}",
            7,
            "alerts.rules[0].overrides[0].tier",
            "unknown setting (expected one of: audience, command, "
            "hours, min_effect_margins, scope, severity)",
        ),
        (
            OVERRIDE + "{scope: {tenant: a}, severity: page}",
            7,
            "alerts.rules[0].overrides[0].severity",
            "must be one of critical, warning, info, got 'page'",
        ),
        (
            OVERRIDE + "{scope: {tenant: a}, command: yes please}",
            7,
            "alerts.rules[0].overrides[0].command",
            "must be true or false",
        ),
        (
            OVERRIDE + "{scope: {tenant: a}, min_effect_margins: x}",
            7,
            "alerts.rules[0].overrides[0].min_effect_margins",
            "must be a number, got 'x'",
        ),
        (
            OVERRIDE + "{scope: {tenant: a}, audience: ''}",
            7,
            "alerts.rules[0].overrides[0].audience",
            "must be a non-empty string, got ''",
        ),
    ],
)
def test_errors_name_the_line_and_field(text: str, line: int, field: str, message: str) -> None:
    assert_fails(text, line, field, message)

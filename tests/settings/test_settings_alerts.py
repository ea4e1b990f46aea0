"""The alerts, commands, promotion and gate config sections: typed settings, documented defaults, and
errors that name the file, line and field."""

from __future__ import annotations

import pytest

from rollguard.settings.config import Config, ConfigError, parse_config


def test_defaults_without_config() -> None:
    cfg = Config()
    assert [r.name for r in cfg.alerts.rules] == [
        "guardrail_regression",
        "latency_regression",
        "quality_regression",
        "cost_regression",
        "semantic_drift",
        "shadow_divergence",
        "sample_ratio_mismatch",
        "baseline_drift",
    ]
    assert {s: r.audience for s, r in cfg.alerts.routing.items()} == {
        "critical": "oncall",
        "warning": "engineering",
        "info": "operations",
    }
    assert [r.commands for r in cfg.alerts.rules] == [True, False, False, False, False, False, False, False]
    c = cfg.commands
    assert (c.dry_run, c.progression, c.approval, c.on_srm) == (
        False,
        ("disable_scope", "reduce_weight", "rollback"),
        "auto",
        "approve",
    )
    assert cfg.promotion.enabled is False and cfg.promotion.ramp == (0.01, 0.05, 0.25, 0.5, 1.0)
    assert (cfg.gate.alpha, cfg.gate.method) == (0.05, "fixed")


def test_sections_parse_into_typed_settings() -> None:
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
commands:
  dry_run: true
  progression: [disable_scope, rollback]
  rollouts: {r9: {approval: required}}
promotion:
  rollouts: {r9: {enabled: true, ramp: [0.1, 0.5, 1.0]}}
  tradeoffs: [{metric: "quality.*", max_relative_drop: 0.02, when: cost_usd.mean, min_relative_saving: 0.25}]
gate: {alpha: 0.01, families: [guardrail, quality], dimensions: [input_class]}
""")
    a = cfg.alerts
    assert a.resolve_after_s == 120 and a.repeat_interval_s["critical"] == 900
    assert a.routing["info"].audience == "finops" and a.routing["critical"].audience == "oncall"
    rule = a.rules[-1]
    assert rule.name == "errors_confirmed" and rule.match[0].windows == ("cumulative", "recent")
    assert rule.overrides[0].scope == (("tenant", "free"),) and rule.overrides[0].hours == (22.0, 6.0)
    assert cfg.commands.dry_run and cfg.commands.progression == ("disable_scope", "rollback")
    assert cfg.commands.for_rollout("r9").approval == "required"
    assert cfg.promotion.for_rollout("r9") == (True, (0.1, 0.5, 1.0), 900.0)
    assert cfg.promotion.for_rollout("other")[0] is False
    assert cfg.promotion.tradeoffs[0].min_relative_saving == 0.25
    assert (cfg.gate.alpha, cfg.gate.dimensions) == (0.01, ("input_class",))
    assert "alerts" in cfg.extra_sections  # still available verbatim to other modules


@pytest.mark.parametrize(
    ("text", "line", "field", "fragment"),
    [
        ("alerts:\n  resolve_after: 5\n", 2, "alerts.resolve_after", "unknown setting"),
        (
            "alerts:\n  rules:\n    - name: x\n      severity: loud\n      match: [{}]\n",
            4,
            "alerts.rules[0].severity",
            "must be one of",
        ),
        (
            "alerts:\n  rules:\n    - name: x\n      severity: info\n"
            "      match:\n        - {family: speed}\n",
            6,
            "alerts.rules[0].match[0].family",
            "must be one of",
        ),
        (
            "alerts:\n  rules:\n    - name: x\n      severity: info\n"
            "      match:\n        - {kind: drift, state: regressed}\n",
            6,
            "alerts.rules[0].match[0].state",
            "must be one of",
        ),
        (
            "alerts:\n  rules:\n    - {name: d, severity: info, command: true, match: [{kind: drift}]}\n",
            3,
            "alerts.rules[0].command",
            "never commands a rollback",
        ),
        ("alerts:\n  flap: {start: 0.1, stop: 0.2}\n", 2, "alerts.flap.stop", "hysteresis"),
        ("commands:\n  progression: [rollback, disable_scope]\n", 2, "commands.progression", "in the order"),
        ("commands:\n  ttl_s: 60\n  ack_timeout_s: 120\n", 3, "commands.ack_timeout_s", "must not exceed"),
        ("commands:\n  max_per_hour: 0\n", 2, "commands.max_per_hour", "at least 1"),
        ("promotion:\n  ramp: [0.5, 0.25]\n", 2, "promotion.ramp", "strictly increasing"),
        (
            "promotion:\n  tradeoffs:\n    - {metric: q, when: c}\n",
            3,
            "promotion.tradeoffs[0].max_relative_drop",
            "required",
        ),
        ("gate:\n  method: bayes\n", 2, "gate.method", "must be one of"),
    ],
)
def test_errors_name_the_line_and_field(text: str, line: int, field: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="rollguard.yaml")
    err = info.value
    assert (err.line, err.field) == (line, field) and fragment in err.message, str(err)
    assert str(err).startswith(f"rollguard.yaml:{line}: {field}: ")


def test_semantic_drift_and_shadow_divergence_warn_by_default() -> None:
    rules = {r.name: r for r in Config().alerts.rules}
    assert rules["semantic_drift"].severity == "warning" and not rules["semantic_drift"].commands
    assert rules["shadow_divergence"].severity == "warning" and not rules["shadow_divergence"].commands

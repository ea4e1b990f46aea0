"""The readiness section: each pre-flight check's mode, the rehearsal timeout, the baseline thresholds and
the eval gate reports named per rollout."""

from __future__ import annotations

import pytest
from config_errors import assert_fails

from rollguard.settings import Config, parse_config
from rollguard.settings.readiness import EvalGateReport


def test_defaults_block_on_the_revert_warn_on_baselines_and_check_gates_only_when_named() -> None:
    r = Config().readiness
    assert (r.revert, r.baselines, r.eval_gate) == ("block", "warn", "block")
    assert (r.rehearsal_timeout_s, r.min_span_s, r.eval_gate_reports) == (300.0, 600.0, {})
    assert set(r.min_samples.values()) == {100} and r.report_for("any") is None


def test_typed_settings_with_counts_per_family_and_reports_by_path_or_mapping() -> None:
    r = parse_config(
        "readiness:\n"
        "  revert: warn\n"
        "  baselines: off\n"  # YAML reads a bare off as false: still the off mode
        "  min_samples: {guardrail: 500}\n"
        "  min_span_s: 0\n"
        "  eval_gate_reports:\n"
        "    checkout-v2: reports/checkout.json\n"
        "    '*': {path: reports/any.json, required: false}\n"
    ).readiness
    assert (r.revert, r.baselines) == ("warn", "off")
    assert (r.min_samples["guardrail"], r.min_samples["latency"], r.min_span_s) == (500, 100, 0.0)
    assert r.report_for("checkout-v2") == EvalGateReport("reports/checkout.json", required=True)
    assert r.report_for("search") == EvalGateReport("reports/any.json", required=False)
    assert parse_config("readiness: {min_samples: 20}").readiness.min_samples == dict.fromkeys(
        ("guardrail", "latency", "quality", "cost"), 20
    )


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("readiness:\n  revert: maybe\n", 2, "readiness.revert",
         "must be one of block, warn, off, got 'maybe'"),
        ("readiness:\n  eval_gate: true\n", 2, "readiness.eval_gate",
         "must be one of block, warn, off, got True"),
        ("readiness:\n  rehearsal_timeout_s: 0\n", 2, "readiness.rehearsal_timeout_s",
         "must be positive, got 0"),
        ("readiness:\n  min_span_s: -5\n", 2, "readiness.min_span_s", "must be at least 0, got -5"),
        ("readiness:\n  min_samples: 0\n", 2, "readiness.min_samples", "must be at least 1, got 0"),
        (
            "readiness:\n  min_samples:\n    speed: 10\n",
            3,
            "readiness.min_samples.speed",
            "unknown metric family (expected one of: cost, guardrail, latency, quality)",
        ),
        ("readiness:\n  min_samples: {latency: 2.5}\n", 2, "readiness.min_samples.latency",
         "must be a whole number, got 2.5"),
        (
            "readiness:\n  eval_gate_reports:\n    r1:\n      required: true\n",
            4,
            "readiness.eval_gate_reports.r1.path",
            "required setting is missing",
        ),
        (
            "readiness:\n  eval_gate_reports:\n    r1: {path: g.json, required: 1}\n",
            3,
            "readiness.eval_gate_reports.r1.required",
            "must be true or false",
        ),
        (
            "readiness:\n  eval_gate_reports:\n    r1: {path: g.json, when: always}\n",
            3,
            "readiness.eval_gate_reports.r1.when",
            "unknown setting (expected one of: path, required)",
        ),
        ("readiness:\n  eval_gate_reports:\n    r1: ''\n", 3, "readiness.eval_gate_reports.r1",
         "must be a non-empty string, got ''"),
        (
            "readiness:\n  rehearsal: 60\n",
            2,
            "readiness.rehearsal",
            "unknown setting (expected one of: baselines, bundled, eval_gate, eval_gate_reports, "
            "min_samples, min_span_s, rehearsal_timeout_s, revert, shadow)",
        ),
    ],
)  # fmt: skip
def test_bad_values_fail_at_start_with_file_line_and_field(
    text: str, line: int, field: str, message: str
) -> None:
    assert_fails(text, line, field, message)

"""The promotion section: the ramp a healthy canary climbs, per rollout, and accepted tradeoffs."""

from __future__ import annotations

import pytest
from config_errors import assert_fails

from rollguard.settings import Config, parse_config
from rollguard.settings.promotion import Tradeoff


def test_defaults_without_config() -> None:
    p = Config().promotion
    assert p.enabled is False and p.ramp == (0.01, 0.05, 0.25, 0.5, 1.0) and p.tradeoffs == ()
    assert p.for_rollout("any") == (False, p.ramp, 900.0)


def test_the_section_parses_into_typed_settings() -> None:
    p = parse_config("""
promotion:
  rollouts: {r9: {enabled: true, ramp: [0.1, 0.5, 1.0]}}
  tradeoffs: [{metric: "quality.*", max_relative_drop: 0.02, when: cost_usd.mean, min_relative_saving: 0.25}]
  families: latency
""").promotion
    assert p.for_rollout("r9") == (True, (0.1, 0.5, 1.0), 900.0)
    assert p.for_rollout("other")[0] is False
    assert p.tradeoffs == (Tradeoff("quality.*", 0.02, "cost_usd.mean", 0.25),)
    assert p.families == ("latency",)
    assert parse_config("promotion: {tradeoffs: null}").promotion.tradeoffs == ()


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        (
            "promotion:\n  ramp: [0.5, 0.25]\n",
            2,
            "promotion.ramp",
            "weights must be positive and strictly increasing",
        ),
        (
            "promotion:\n  ramp: [0, 0.5]",
            2,
            "promotion.ramp",
            "weights must be positive and strictly increasing",
        ),
        ("promotion:\n  ramp: []", 2, "promotion.ramp", "must be a non-empty list of weights"),
        ("promotion:\n  ramp: [0.5, 2]", 2, "promotion.ramp[1]", "must be in [0, 1], got 2"),
        (
            "promotion:\n  families: [speed]",
            2,
            "promotion.families[0]",
            "must be one of guardrail, latency, quality, cost, got 'speed'",
        ),
        ("promotion:\n  metrics: 5", 2, "promotion.metrics", "must be a name or a list of names"),
        ("promotion:\n  cohorts: some", 2, "promotion.cohorts", "must be one of all, whole, got 'some'"),
        (
            "promotion:\n  approval: never",
            2,
            "promotion.approval",
            "must be one of auto, required, got 'never'",
        ),
        ("promotion:\n  min_step_s: -1", 2, "promotion.min_step_s", "must be at least 0, got -1"),
        ("promotion:\n  enabled: 1", 2, "promotion.enabled", "must be true or false"),
        ("promotion:\n  ramp: x\n  bogus: 1", 2, "promotion.ramp", "must be a non-empty list of weights"),
        (
            "promotion:\n  bogus: 1",
            2,
            "promotion.bogus",
            "unknown setting (expected one of: approval, cohorts, "
            "enabled, families, metrics, min_step_s, ramp, rollouts, tradeoffs)",
        ),
        ("promotion:\n  tradeoffs: {metric: q}", 2, "promotion.tradeoffs", "must be a list"),
        ("promotion:\n  tradeoffs:\n    - 5", 3, "promotion.tradeoffs[0]", "must be a mapping, got int"),
        (
            "promotion:\n  tradeoffs:\n    - {metric: q, when: c}\n",
            3,
            "promotion.tradeoffs[0].max_relative_drop",
            "required setting is missing",
        ),
        (
            "promotion:\n  tradeoffs:\n    - {metric: q, "
            "max_relative_drop: 0.1, when: c, min_relative_saving: 1}",
            3,
            "promotion.tradeoffs[0].min_relative_saving",
            "must be strictly between 0 and 1, got 1",
        ),
        (
            "promotion:\n  tradeoffs:\n    - {metric: q, "
            "max_relative_drop: 0.1, when: c, min_relative_saving: 0.2,"
            " unless: x}",
            3,
            "promotion.tradeoffs[0].unless",
            "unknown setting (expected one of: max_relative_drop, metric, min_relative_saving, when)",
        ),
        (
            "promotion:\n  tradeoffs:\n    - {metric: '', "
            "max_relative_drop: 0.1, when: c, min_relative_saving: 0.2}",
            3,
            "promotion.tradeoffs[0].metric",
            "must be a non-empty string, got ''",
        ),
        (
            "promotion:\n  tradeoffs:\n    - {metric: q, "
            "max_relative_drop: -0.1, when: c, min_relative_saving: 0.2}",
            3,
            "promotion.tradeoffs[0].max_relative_drop",
            "must be at least 0, got -0.1",
        ),
        (
            "promotion:\n  rollouts:\n    r9: {ramp: [0.5, 0.25]}",
            3,
            "promotion.rollouts.r9.ramp",
            "weights must be positive and strictly increasing",
        ),
        (
            "promotion:\n  rollouts:\n    r9: {min_step_s: x}",
            3,
            "promotion.rollouts.r9.min_step_s",
            "must be a number, got 'x'",
        ),
        (
            "promotion:\n  rollouts:\n    r9: {enabled: 1}",
            3,
            "promotion.rollouts.r9.enabled",
            "must be true or false",
        ),
        (
            "promotion:\n  rollouts:\n    r9: {steps: 1}",
            3,
            "promotion.rollouts.r9.steps",
            "unknown setting (expected one of: enabled, min_step_s, ramp)",
        ),
    ],
)
def test_errors_name_the_line_and_field(text: str, line: int, field: str, message: str) -> None:
    assert_fails(text, line, field, message)

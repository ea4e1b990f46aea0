"""The metrics section: overrides of a built-in metric's margin, direction of the margin, or presence."""

from __future__ import annotations

import pytest
from config_errors import assert_fails

from rollguard.settings import parse_config


def test_overrides_apply_to_the_named_metric_only() -> None:
    cfg = parse_config("metrics:\n  latency_ms.p95: {margin: 0.2}\n  tokens_out.mean: {enabled: false}\n")
    by_name = {m.name: m for m in cfg.metrics}
    assert by_name["latency_ms.p95"].margin == 0.2 and by_name["latency_ms.p99"].margin == 0.15
    assert not by_name["tokens_out.mean"].enabled and by_name["cost_usd.mean"].enabled


def test_a_quality_score_is_overridden_by_its_key_before_any_event_names_it() -> None:
    cfg = parse_config(
        "metrics:\n  quality.eval_score.mean: {margin: 0.02, relative: false, enabled: true}\n"
    )
    assert cfg.quality_overrides == {"eval_score": {"margin": 0.02, "relative": False, "enabled": True}}
    q = cfg.quality_spec("eval_score")
    assert (q.margin, q.relative, q.higher_is_worse) == (0.02, False, False)


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("metrics: [error_rate]\n", 1, "metrics", "must be a mapping, got list"),
        ("metrics:\n  error_rate: 0.1\n", 2, "metrics.error_rate", "must be a mapping, got float"),
        (
            "metrics:\n  error_rate:\n    margin: -1\n",
            3,
            "metrics.error_rate.margin",
            "must be at least 0, got -1",
        ),
        (
            "metrics:\n  error_rate: {relative: 1}\n",
            2,
            "metrics.error_rate.relative",
            "must be true or false",
        ),
        (
            "metrics:\n  error_rate: {enabled: nope}\n",
            2,
            "metrics.error_rate.enabled",
            "must be true or false",
        ),
        (
            "metrics:\n  error_rate: {bogus: 1}\n",
            2,
            "metrics.error_rate.bogus",
            "unknown setting (expected one of: enabled, margin, relative)",
        ),
        (
            "metrics:\n  quality..mean: {margin: 0.1}\n",
            2,
            "metrics.quality..mean",
            "unknown metric (expected one of: error_rate, timeout_rate, refusal_rate, format_invalid_rate, "
            "latency_ms.mean, latency_ms.p95, latency_ms.p99, ttft_ms.mean, ttft_ms.p95, tpot_ms.mean, "
            "tpot_ms.p95, tokens_out.mean, cost_usd.mean, quality.<key>.mean)",
        ),
    ],
)
def test_errors_name_the_line_and_field(text: str, line: int, field: str, message: str) -> None:
    assert_fails(text, line, field, message)

"""The gate section: how ``rollguard gate`` compares two eval runs."""

from __future__ import annotations

import pytest
from config_errors import assert_fails

from rollguard.settings import Config, parse_config


def test_defaults_and_typed_settings() -> None:
    assert (Config().gate.alpha, Config().gate.method, Config().gate.dimensions) == (0.05, "fixed", None)
    gate = parse_config("gate: {alpha: 0.01, families: [guardrail, quality], dimensions: [input_class]}").gate
    assert (gate.alpha, gate.families, gate.dimensions) == (0.01, ("guardrail", "quality"), ("input_class",))


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("gate:\n  method: bayes\n", 2, "gate.method", "must be one of fixed, sequential, got 'bayes'"),
        ("gate:\n  alpha: 0", 2, "gate.alpha", "must be strictly between 0 and 1, got 0"),
        (
            "gate:\n  families: [speed]",
            2,
            "gate.families[0]",
            "must be one of guardrail, latency, quality, cost, got 'speed'",
        ),
        ("gate:\n  dimensions: input_class", 2, "gate.dimensions", "must be a list of dimension names"),
        ("gate:\n  dimensions: [1]", 2, "gate.dimensions", "must be a list of dimension names"),
        ("gate:\n  min_samples: 1", 2, "gate.min_samples", "must be at least 2, got 1"),
        ("gate:\n  max_dimensions: -1", 2, "gate.max_dimensions", "must be at least 0, got -1"),
        ("gate:\n  paired: always", 2, "gate.paired", "must be one of auto, never, got 'always'"),
        (
            "gate:\n  alpah: 0.1\n",
            2,
            "gate.alpah",
            "unknown setting (expected one of: alpha, dimensions, "
            "families, max_dimensions, method, min_samples, paired)",
        ),
    ],
)
def test_errors_name_the_line_and_field(text: str, line: int, field: str, message: str) -> None:
    assert_fails(text, line, field, message)

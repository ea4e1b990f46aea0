"""The config file: defaults without one, overrides with one, and errors that name line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollguard.settings.config import Config, ConfigError, load_config, parse_config


def test_no_file_means_documented_defaults() -> None:
    cfg = load_config(None)
    assert cfg == Config()
    assert cfg.alpha == 0.01
    margins = {m.name: m.margin for m in cfg.metrics}
    assert margins["error_rate"] == 0.005
    assert margins["latency_ms.p95"] == 0.10


def test_overrides_apply_to_the_named_metric_only() -> None:
    cfg = parse_config(
        """
alpha: 0.05
engine:
  batch_seconds: 5
segments:
  dimensions: [input_class]
  groupings: [[tenant, input_class]]
metrics:
  latency_ms.p95: {margin: 0.2}
  quality.eval_score.mean: {margin: 0.02, relative: false}
rollouts:
  checkout: {canary_weight: 0.1, phase: canary}
"""
    )
    assert cfg.alpha == 0.05
    assert cfg.engine.batch_seconds == 5.0
    assert cfg.segments.groupings == (("input_class", "tenant"),)
    by_name = {m.name: m for m in cfg.metrics}
    assert by_name["latency_ms.p95"].margin == 0.2
    assert by_name["latency_ms.p99"].margin == 0.15
    q = cfg.quality_spec("eval_score")
    assert (q.margin, q.relative, q.higher_is_worse) == (0.02, False, False)
    assert cfg.rollout("checkout").canary_weight == 0.1
    assert cfg.rollout("other").phase == "auto"


@pytest.mark.parametrize(
    ("text", "line", "field", "fragment"),
    [
        ("alpha: 2\n", 1, "alpha", "between 0 and 1"),
        ("engine:\n  batch_seconds: fast\n", 2, "engine.batch_seconds", "must be a number"),
        ("engine:\n  batchseconds: 1\n", 2, "engine.batchseconds", "unknown setting"),
        ("metrics:\n  error_rate:\n    margin: -1\n", 3, "metrics.error_rate.margin", "at least 0"),
        ("metrics:\n  eror_rate: {margin: 0.1}\n", 2, "metrics.eror_rate", "unknown metric"),
        ("rollouts:\n  r1:\n    phase: done\n", 3, "rollouts.r1.phase", "must be one of"),
        ("alerts: {}\nbogus: 1\n", 2, "bogus", "unknown section"),
        ("alpha: [1\n", 2, "", "not valid YAML"),
        ("alpha: 0.1\nalpha: 0.2\n", 2, "alpha", "duplicate key"),
        # Sections report their errors in file order: a bad value before an unknown key comes first.
        ("engine:\n  min_samples: x\n  bogus: 1\n", 2, "engine.min_samples", "must be a number"),
        ("embeddings:\n  batch_size: 2.5\n  bogus: 1\n", 2, "embeddings.batch_size",
         "must be a whole number, got 2.5"),
        ("shadow:\n  bogus: 1\n", 2, "shadow.bogus", "unknown setting (expected one of: "),
        ("segments:\n  dims: [a]\n", 2, "segments.dims", "unknown setting (expected one of: dimensions, "),
    ],
)
def test_errors_name_the_line_and_field(text: str, line: int, field: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="rollguard.yaml")
    err = info.value
    assert err.line == line and err.field == field and fragment in err.message
    assert str(err).startswith(f"rollguard.yaml:{line}: ")


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")

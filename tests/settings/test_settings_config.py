"""The config file as a whole: defaults without one, every section assembled, and errors of the file
itself (YAML, unknown sections, duplicate keys, the top-level budgets) that name line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_errors import assert_fails, config_error

from rollguard.settings import Config, ConfigError, load_config, parse_config


def test_no_file_means_documented_defaults() -> None:
    cfg = load_config(None)
    assert cfg == Config() == parse_config("") == parse_config("# only a comment\n")
    assert cfg.alpha == 0.01 and cfg.srm_alpha == 0.001
    margins = {m.name: m.margin for m in cfg.metrics}
    assert margins["error_rate"] == 0.005
    assert margins["latency_ms.p95"] == 0.10


def test_every_section_reaches_its_settings(tmp_path: Path) -> None:
    path = tmp_path / "rollguard.yaml"
    path.write_text(
        """
alpha: 0.05
srm_alpha: 0.01
engine:
  batch_seconds: 5
segments:
  dimensions: [input_class]
  groupings: [[tenant, input_class]]
metrics:
  latency_ms.p95: {margin: 0.2}
rollouts:
  checkout: {canary_weight: 0.1, phase: canary}
embeddings: {enabled: false}
shadow: {max_wait_s: 10}
alerts: {resolve_after_s: 120}
commands: {dry_run: true}
promotion: {enabled: true}
gate: {alpha: 0.01}
worker: {web_port: 7000}
"""
    )
    cfg = load_config(path)
    assert (cfg.alpha, cfg.srm_alpha, cfg.engine.batch_seconds) == (0.05, 0.01, 5.0)
    assert cfg.segments.groupings == (("input_class", "tenant"),)
    assert {m.name: m.margin for m in cfg.metrics}["latency_ms.p95"] == 0.2
    assert cfg.rollout("checkout").canary_weight == 0.1
    assert (cfg.embeddings.enabled, cfg.shadow.max_wait_s, cfg.alerts.resolve_after_s) == (
        "false",
        10.0,
        120.0,
    )
    assert (cfg.commands.dry_run, cfg.promotion.enabled, cfg.gate.alpha, cfg.worker.web_port) == (
        True,
        True,
        0.01,
        7000,
    )


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("alpha: 2\n", 1, "alpha", "must be strictly between 0 and 1, got 2"),
        ("alpha: -1\n", 1, "alpha", "must be strictly between 0 and 1, got -1"),
        ("srm_alpha: x\n", 1, "srm_alpha", "must be a number, got 'x'"),
        (
            "alerts: {}\nbogus: 1\n",
            2,
            "bogus",
            "unknown section (expected one of: alerts, alpha, bridge, commands, controller, embeddings, "
            "engine, gate, metrics, operators, otlp, promotion, readiness, rollouts, segments, shadow, "
            "srm_alpha, srm_request_alpha, worker)",
        ),
        ("alpha: 0.1\nalpha: 0.2\n", 2, "alpha", "duplicate key"),
        ("[1, 2]\n", 1, "", "the config must be a mapping of sections"),
    ],
)
def test_errors_name_the_line_and_field(text: str, line: int, field: str, message: str) -> None:
    if field:
        assert_fails(text, line, field, message)
    else:
        err = config_error(text)
        assert (err.line, err.message, str(err)) == (line, message, f"rollguard.yaml:{line}: {message}")


def test_bad_yaml_names_the_line() -> None:
    err = config_error("alpha: [1\n")
    assert err.line == 2 and err.field == "" and err.message.startswith("not valid YAML: ")


def test_keys_must_be_plain_scalars() -> None:
    err = config_error("engine:\n  ? [a, b]\n  : 1\n")
    assert (err.line, err.field, err.message) == (2, "engine", "keys must be plain scalars")


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.yaml: cannot read config file: No such file or directory"):
        load_config(tmp_path / "nope.yaml")

"""``rollguard config check FILE`` validates without running anything and lists every error it can find
(``file:line: field: what is wrong and what is allowed``); ``rollguard config example`` prints a fully
commented example that is itself valid; the worker refuses a bad file the same way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rollguard.cli import main
from rollguard.settings import load_config
from rollguard.settings.config import check_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "rollguard.yaml"

BAD = """\
alpha: 2
engine:
  batch_seconds: fast
  min_samples: -3
  batchseconds: 1
commands:
  approval: maybe
  ttl_s: 0
operators:
  keys:
    alice: {operator: alice, public_key: not-a-key}
bogus: 1
alpha: 0.5
worker:
  web_port: http
"""


def test_the_example_is_valid_and_is_what_config_example_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out == f"{EXAMPLE}: valid\n"
    assert main(["config", "example"]) == 0
    assert capsys.readouterr().out == EXAMPLE.read_text()
    config = load_config(EXAMPLE)
    assert config.commands.for_rollout("checkout-v2").approval == "required"
    assert config.operators.keys["alice-2026"].operator == "alice"


def test_every_setting_of_the_example_is_commented() -> None:
    lines = EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.match(r"\s*[\w.\"*-]+:\s*\S", line) or re.match(r"\s*- ", line):  # a setting with its value
            above = lines[i - 1].strip() if i else ""
            assert "#" in line or above.startswith("#") or _commented_block(lines, i), f"line {i + 1}: {line}"


def _commented_block(lines: list[str], i: int) -> bool:
    """A line inside a list or mapping whose opening line carries the comment."""
    indent = len(lines[i]) - len(lines[i].lstrip())
    for j in range(i - 1, -1, -1):
        other = lines[j]
        if other.strip() and len(other) - len(other.lstrip()) < indent:
            return "#" in other
    return False


def test_check_lists_every_error_of_the_file_in_line_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    assert main(["config", "check", str(bad)]) == 2
    out, err = capsys.readouterr()
    f = str(bad)
    assert out.splitlines() == [
        f"{f}:1: alpha: must be strictly between 0 and 1, got 2",
        f"{f}:3: engine.batch_seconds: must be a number, got 'fast'",
        f"{f}:4: engine.min_samples: must be positive, got -3",
        f"{f}:5: engine.batchseconds: unknown setting (expected one of: baseline_window_s, batch_seconds, "
        "canary_horizon_s, cohort_ttl_s, cusum_step_s, dedup_max_ids, dedup_window_s, drift_horizon_s, "
        "max_batch_seconds, max_cohorts_per_rollout, max_quality_keys, min_batch_events, min_samples, "
        "post_rollout_period_s, promotion_silence_s, unit_filter_bits, whole_rollout_alpha_share)",
        f"{f}:7: commands.approval: must be one of auto, required, got 'maybe'",
        f"{f}:8: commands.ttl_s: must be positive, got 0",
        f"{f}:11: operators.keys.alice.public_key: must be an Ed25519 public key: 64 hex digits or the "
        "base64 of 32 bytes (as `rollguard operator keygen` prints it)",
        f"{f}:12: bogus: unknown section (expected one of: alerts, alpha, bridge, commands, controller, "
        "embeddings, engine, gate, metrics, operators, otlp, promotion, readiness, rollouts, segments, "
        "shadow, srm_alpha, srm_request_alpha, worker)",
        f"{f}:13: alpha: duplicate key",
        f"{f}:15: worker.web_port: must be a number, got 'http'",
    ]
    assert err == f"{f}: 10 error(s)\n"


def test_a_file_that_is_not_yaml_has_one_error_and_the_services_refuse_it_alike(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("engine: [1,\n")
    errors = check_config(bad.read_text(), str(bad))
    assert (
        len(errors) == 1 and errors[0].where().startswith(f"{bad}:") and "not valid YAML" in errors[0].message
    )


def test_the_controller_section_is_checked_with_the_file() -> None:
    errors = check_config("controller:\n  canary_variant: control\n", "c.yaml")
    assert [e.where() for e in errors] == [
        "c.yaml:2: controller.canary_variant: must differ from control_variant ('control')"
    ]


def test_replay_and_the_worker_refuse_a_bad_file_with_every_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    events = tmp_path / "events.jsonl"
    events.write_text("")
    for argv in (
        ["replay", str(events), "--config", str(bad), "--out", str(tmp_path / "o")],
        ["worker", "--config", str(bad), "--bootstrap", "127.0.0.1:1"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 10 and all(line.startswith(f"rollguard: bad config: {bad}:") for line in err), err

"""``rollguard replay`` and pre-flight readiness: records whenever a rollout's readiness changes (not ready
until the revert rehearsal is answered and the control history is long enough, then ready), the
rehearsal's warning when nobody answers it, and an eval gate report named in the config."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from referencing import Registry, Resource

from core_traffic import T0, Traffic
from rollguard.adapters.replay import replay
from rollguard.adapters.topic_contracts import default_topics_dir
from rollguard.cli import main
from rollguard.policy.commands.signing import verify_command
from rollguard.settings.config import parse_config

KEY = b"replay-readiness-key"
CANARY_AT = 700.0  # seconds of control-only traffic before the canary starts
CONFIG = "readiness: {baselines: block, min_samples: 200, min_span_s: 600, rehearsal_timeout_s: 120}\n"


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _events(path: Path, canary_at: float = CANARY_AT) -> Path:
    """Control-only traffic, then a 20% canary from ``canary_at`` on (declared weight follows the split)."""
    weight = lambda t: 0.0 if t < canary_at else 0.2  # noqa: E731
    with open(path, "wb") as fh:
        for ev in Traffic(rate=10, weight_at=weight, rollout_id="r1").events(1200):
            fh.write(orjson.dumps(ev.to_dict()) + b"\n")
    return path


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _events(tmp_path_factory.mktemp("readiness") / "events.jsonl")


def _checks(record: dict[str, Any]) -> dict[str, str]:
    return {c["check"]: c["state"] for c in record["checks"]}


def test_readiness_turns_ready_once_the_rehearsal_is_answered_and_the_baselines_are_long_enough(
    events: Path, tmp_path: Path
) -> None:
    summary = replay(events, parse_config(CONFIG), tmp_path, signing_key=KEY, auto_ack_s=5.0)
    records = _lines(tmp_path / "readiness.jsonl")
    assert summary.readiness_records == len(records) >= 3
    assert all(r["kind"] == "readiness" and verify_command(r, KEY) for r in records)
    assert [r["sequence"] for r in records] == list(range(1, len(records) + 1))
    first, answered, last = records[0], records[1], records[-1]
    assert first["at"] == pytest.approx(T0, abs=1.0) and first["ready"] is False
    assert _checks(first) == {
        "revert": "pending", "baselines": "pending", "eval_gate": "off", "shadow": "off", "bundled": "off"
    }  # fmt: skip
    # The auto-ack answers the rehearsal 5 s later: the revert is rehearsed, the baselines still grow.
    assert answered["at"] == pytest.approx(first["at"] + 5.0) and _checks(answered)["revert"] == "met"
    assert answered["ready"] is False and answered["blocking"] == ["baselines"]
    # Ready after 600 s of control history with at least 200 observations per family, before the canary.
    assert last["ready"] is True and last["blocking"] == [] and T0 + 600 <= last["at"] < T0 + CANARY_AT
    assert not any(r["ready"] for r in records[:-1])
    # The rehearsal is a dry-run rollback among the commands; its ack never moved the ladder.
    (rehearsal,) = _lines(tmp_path / "commands.jsonl")
    assert (rehearsal["action"], rehearsal["dry_run"], rehearsal["rehearsal"]) == ("rollback", True, True)
    acks = [a for a in _lines(tmp_path / "audit.jsonl") if a["type"] == "ack"]
    assert [a["result"] for a in acks] == ["rehearsal: dry_run_ok"]
    report = json.loads((tmp_path / "summary.json").read_text())
    final = report["readiness"]["r1"]
    assert final["ready"] is True and final["warnings"] == []
    baselines = next(c for c in final["checks"] if c["check"] == "baselines")
    assert baselines["evidence"].endswith("with enough control history before the canary's first event")


def test_an_unanswered_rehearsal_times_out_in_event_time_with_a_warning_to_the_on_call(
    events: Path, tmp_path: Path
) -> None:
    replay(events, parse_config(CONFIG), tmp_path, signing_key=KEY)
    records = _lines(tmp_path / "readiness.jsonl")
    timed_out = next(r for r in records if _checks(r)["revert"] == "unmet")
    assert timed_out["at"] == pytest.approx(T0 + 120, abs=1.0) and timed_out["ready"] is False
    revert = next(c for c in timed_out["checks"] if c["check"] == "revert")
    assert revert["evidence"].startswith(
        "revert path not rehearsed: no controller answered the dry-run rollback"
    )
    assert "dry_run_ok" in revert["to_satisfy"]
    warnings = [a for a in _lines(tmp_path / "alerts.jsonl") if a["rule"] == "revert_not_rehearsed"]
    assert [(a["status"], a["severity"], a["audience"]) for a in warnings] == [
        ("firing", "warning", "oncall")
    ]
    assert warnings[0]["starts_at"] == pytest.approx(timed_out["at"], abs=1.0)
    final = json.loads((tmp_path / "summary.json").read_text())["readiness"]["r1"]
    assert final["ready"] is False and final["blocking"] == ["revert"]


def test_a_canary_from_the_first_event_is_not_ready_and_lists_its_thin_cohorts(tmp_path: Path) -> None:
    events = _events(tmp_path / "events.jsonl", canary_at=0.0)
    replay(events, parse_config(CONFIG), tmp_path / "out", signing_key=KEY, auto_ack_s=5.0)
    final = json.loads((tmp_path / "out" / "summary.json").read_text())["readiness"]["r1"]
    assert final["ready"] is False and final["blocking"] == ["baselines"]
    baselines = next(c for c in final["checks"] if c["check"] == "baselines")
    assert baselines["state"] == "unmet" and baselines["evidence"].startswith(
        "thin baseline when the canary started"
    )
    assert [d["cohort"] for d in baselines["details"]] == ["*"]


def _eval_run(path: Path, error_rate: float) -> Path:
    rng = random.Random(7)
    with open(path, "w") as fh:
        for i in range(400):
            fail = rng.random() < error_rate
            fh.write(json.dumps({"item_id": f"q{i}", "status": "error" if fail else "ok"}) + "\n")
    return path


@pytest.mark.parametrize(("candidate_errors", "ready"), [(0.0, True), (0.4, False)])
def test_an_eval_gate_report_named_for_the_rollout_must_pass(
    events: Path, tmp_path: Path, candidate_errors: float, ready: bool
) -> None:
    gate_config = tmp_path / "gate.yaml"
    gate_config.write_text("gate: {families: [guardrail]}\n")
    report = tmp_path / "r1.gate.json"
    main(["gate", "--baseline", str(_eval_run(tmp_path / "base.jsonl", 0.0)), "--candidate",
          str(_eval_run(tmp_path / "cand.jsonl", candidate_errors)), "--config", str(gate_config),
          "--out", str(report)])  # fmt: skip
    config = parse_config(f"readiness: {{rehearsal_timeout_s: 120, eval_gate_reports: {{r1: '{report}'}}}}\n")
    replay(events, config, tmp_path / "out", signing_key=KEY, auto_ack_s=5.0)
    final = json.loads((tmp_path / "out" / "summary.json").read_text())["readiness"]["r1"]
    gate = next(c for c in final["checks"] if c["check"] == "eval_gate")
    assert final["ready"] is ready and gate["state"] == ("met" if ready else "unmet")
    assert gate["evidence"] == (
        f"eval gate passed ({report}, 3 tests)"
        if ready
        else f"eval gate failed: result regression ({report}, 3 tests)"
    )


def test_a_required_report_that_is_missing_is_not_ready_and_a_bad_one_says_why(
    events: Path, tmp_path: Path
) -> None:
    (tmp_path / "bad.json").write_text('{"verdict": "fine"}')
    config = parse_config(
        f"readiness:\n  eval_gate_reports:\n    r1: {{path: '{tmp_path / 'missing.json'}', required: true}}\n"
    )
    replay(events, config, tmp_path / "a", signing_key=KEY, auto_ack_s=5.0)
    checks = json.loads((tmp_path / "a" / "summary.json").read_text())["readiness"]["r1"]["checks"]
    gate = next(c for c in checks if c["check"] == "eval_gate")
    assert (gate["state"], gate["evidence"]) == (
        "unmet",
        f"eval gate report missing: no file at {tmp_path / 'missing.json'}",
    )
    config = parse_config(f"readiness:\n  eval_gate_reports:\n    '*': '{tmp_path / 'bad.json'}'\n")
    replay(events, config, tmp_path / "b", signing_key=KEY, auto_ack_s=5.0)
    final = json.loads((tmp_path / "b" / "summary.json").read_text())["readiness"]["r1"]
    gate = next(c for c in final["checks"] if c["check"] == "eval_gate")
    assert final["ready"] is False and "not a `rollguard gate --out` report" in gate["evidence"]


def test_readiness_records_and_the_rehearsal_match_the_control_topic_contract(
    events: Path, tmp_path: Path
) -> None:
    replay(events, parse_config(CONFIG), tmp_path, signing_key=KEY, auto_ack_s=5.0)
    schemas = default_topics_dir() / "schemas"
    resources = [
        (s["$id"], Resource.from_contents(s))
        for s in (json.loads((schemas / n).read_text()) for n in ("command.v1.json", "readiness.v1.json"))
    ]
    control = jsonschema.Draft202012Validator(
        json.loads((schemas / "control.v1.json").read_text()), registry=Registry().with_resources(resources)
    )
    records = [*_lines(tmp_path / "commands.jsonl"), *_lines(tmp_path / "readiness.jsonl")]
    assert len(records) >= 4
    for record in records:
        control.validate(record)
    assert not control.is_valid({**records[-1], "kind": "unknown"})

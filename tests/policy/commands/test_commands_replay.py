"""End to end: simulated traffic → replay → alerts.jsonl and commands.jsonl, deterministic and resumable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from policy_testkit import T0, ack, drift, operator, policy, srm, verdict
from rollguard.adapters.replay import replay
from rollguard.adapters.topic_contracts import default_topics_dir
from rollguard.policy.policy import Output, Policy
from rollguard.settings.config import Config
from rollguard.sim import generate, get_scenario, write_jsonl


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def spike(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A strong error spike in input_class=coding two minutes into a 15-minute canary."""
    d = tmp_path_factory.mktemp("spike")
    sc = get_scenario("error_spike_coding", seed=3, duration_s=900, start_s=120, error_rate=0.10)
    write_jsonl(generate(sc), d / "events.jsonl")
    return d


def test_replay_writes_alerts_and_commands_scoped_to_the_spiking_cohort(spike: Path) -> None:
    out = spike / "out"
    summary = replay(spike / "events.jsonl", Config(), out, signing_key=b"k")
    alerts, commands = _lines(out / "alerts.jsonl"), _lines(out / "commands.jsonl")
    assert summary.alerts == len(alerts) and summary.commands == len(commands) >= 2
    # The first command is the revert rehearsal of the rollout's first event; no controller answers it
    # here, so its warning goes to the on-call audience. The ladder's commands follow.
    rehearsal, commands = commands[0], commands[1:]
    assert (rehearsal["action"], rehearsal["scope"], rehearsal["dry_run"], rehearsal["rehearsal"]) == (
        "rollback", {}, True, True,
    )  # fmt: skip
    unrehearsed = [a for a in alerts if a["rule"] == "revert_not_rehearsed"]
    assert [(a["status"], a["severity"], a["audience"]) for a in unrehearsed] == [
        ("firing", "warning", "oncall")
    ]
    alerts = [a for a in alerts if a["rule"] != "revert_not_rehearsed"]
    first = alerts[0]
    assert (first["severity"], first["scope"], first["rule"]) == (
        "critical",
        {"input_class": "coding"},
        "guardrail_regression",
    )
    assert [(c["action"], c["scope"]) for c in commands][:1] == [("disable_scope", {"input_class": "coding"})]
    assert all(c["scope"].get("input_class") != "billing" for c in commands)
    assert first["starts_at"] >= get_scenario("error_spike_coding", seed=3).start_ts + 120
    report = json.loads((out / "summary.json").read_text())
    assert report["alerts"] == len(alerts) + 1 and "verdict_changes" in report and "counters" in report
    schemas = default_topics_dir() / "schemas"
    alert_v, command_v = (
        jsonschema.Draft202012Validator(json.loads((schemas / n).read_text()))
        for n in ("alert.v1.json", "command.v1.json")
    )
    for a in alerts:
        alert_v.validate(a)
    for c in [rehearsal, *commands]:
        command_v.validate(c)


def test_replay_is_deterministic_byte_for_byte(spike: Path) -> None:
    a, b = spike / "a", spike / "b"
    replay(spike / "events.jsonl", Config(), a, signing_key=b"k")
    replay(spike / "events.jsonl", Config(), b, signing_key=b"k")
    for name in (
        "verdicts.jsonl",
        "alerts.jsonl",
        "commands.jsonl",
        "readiness.jsonl",
        "audit.jsonl",
        "summary.json",
    ):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_replayed_acks_drive_the_ladder(spike: Path) -> None:
    out = spike / "acked"
    replay(spike / "events.jsonl", Config(), out, auto_ack_s=20)
    audit = _lines(out / "audit.jsonl")
    # The rehearsal's ack comes first and is the readiness check's; the ladder's first command is applied.
    assert [(a["type"], a["result"]) for a in audit[:2]] == [
        ("ack", "rehearsal: dry_run_ok"),
        ("ack", "applied"),
    ]
    assert all(
        a["rule"] not in ("command_unacked", "revert_not_rehearsed") for a in _lines(out / "alerts.jsonl")
    )
    ready = [r["ready"] for r in _lines(out / "readiness.jsonl")]
    assert ready[0] is False and True in ready  # not ready until the rehearsal was answered


def test_both_arms_outage_alerts_as_drift_and_issues_no_command(tmp_path: Path) -> None:
    sc = get_scenario("both_arms_outage", seed=3, duration_s=1300, start_s=700, end_s=1000, timeout_rate=0.2)
    write_jsonl(generate(sc), tmp_path / "events.jsonl")
    replay(tmp_path / "events.jsonl", Config(), tmp_path)
    alerts = _lines(tmp_path / "alerts.jsonl")
    assert any(a["rule"] == "baseline_drift" and a["severity"] == "info" for a in alerts)
    assert all(a["severity"] != "critical" for a in alerts)
    # Only the revert rehearsal of the first event: no command acts on the canary.
    assert [c.get("rehearsal") for c in _lines(tmp_path / "commands.jsonl")] == [True]


def _script() -> list[tuple[str, Any]]:
    """A varied sequence of inputs for the policy, in time order."""
    return [
        (
            "changes",
            [
                verdict("error_rate", "input_class=coding", ts=T0 + 10),
                verdict("error_rate", "input_class=billing", "non_inferior", ts=T0 + 10),
                verdict("latency_ms.p95", "tenant=t1", window="recent", ts=T0 + 10),
                verdict("quality.eval_score.mean", "input_class=chat", ts=T0 + 10),
                drift("timeout_rate", "tenant=t2", ts=T0 + 10),
            ],
        ),
        ("advance", T0 + 200),
        ("operator", operator("silence", matchers={"severity": "info"}, duration_s=900, issued_at=T0 + 200)),
        ("changes", [verdict("latency_ms.p95", "tenant=t1", "non_inferior", window="recent", ts=T0 + 300)]),
        ("advance", T0 + 700),
        ("changes", [verdict("timeout_rate", "input_class=billing", ts=T0 + 800), srm(ts=T0 + 800)]),
        ("advance", T0 + 4000),
        ("advance", T0 + 90000),
    ]


def _run(p: Policy, steps: list[tuple[str, Any]], out: Output) -> None:
    for kind, arg in steps:
        if kind == "changes":
            out += p.on_changes(arg)
        elif kind == "advance":
            out += p.advance(arg)
        else:
            out += p.on_operator(arg)
        for c in out.commands:
            if c["command_id"] not in {a["command_id"] for a in out.audit if a.get("type") == "ack"}:
                out += p.on_ack(ack(c, at=c["issued_at"] + 5))


def test_state_round_trips_through_json_and_a_restored_policy_decides_the_same() -> None:
    script = _script()
    whole = Output()
    _run(policy(key=b"k"), script, whole)
    for cut in range(1, len(script)):
        first, rest = Output(), Output()
        p = policy(key=b"k")
        _run(p, script[:cut], first)
        state = orjson.loads(orjson.dumps(p.to_state()))
        restored = Policy.from_state(p.config, state, signing_key=b"k")
        assert restored.to_state() == state
        rest.extend(first)
        _run(restored, script[cut:], rest)
        assert rest.alerts == whole.alerts and rest.commands == whole.commands, f"cut at step {cut}"

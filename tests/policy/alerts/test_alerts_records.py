"""Alert and command records fit their schemas and what Alertmanager / PagerDuty bridges expect."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import orjson

from policy_testkit import T0, ack, drift, firing, operator, policy, srm, verdict
from rollguard.adapters.topic_contracts import default_topics_dir
from rollguard.policy.alerts.records import fingerprint
from rollguard.policy.policy import Output

SCHEMAS = default_topics_dir() / "schemas"


def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((SCHEMAS / name).read_text()))


def _busy_run() -> Output:
    """Every kind of record: firings of each tier, a command, an ack, resolves, a digest, an unacked alert."""
    p = policy("alerts: {digest_interval_s: 3600, resolve_after_s: 0}\ncommands: {dry_run: true}", key=b"k")
    out = p.on_changes(
        [
            verdict("error_rate", "input_class=coding", ts=T0 + 10),
            verdict("error_rate", "input_class=billing", "non_inferior", ts=T0 + 10),
            verdict("latency_ms.p95", "tenant=t1", window="recent", ts=T0 + 10),
            verdict("quality.eval_score.mean", "input_class=chat", ts=T0 + 10),
            verdict("cost_usd.mean", "*", ts=T0 + 10),
            drift("timeout_rate", "tenant=t2", ts=T0 + 10),
            srm(ts=T0 + 10),
        ]
    )
    out += p.on_changes([verdict("latency_ms.p95", "tenant=t1", "non_inferior", window="recent", ts=T0 + 20)])
    out += p.advance(T0 + 300)
    out += p.on_ack(ack(out.commands[0], "dry_run_ok"))
    out += p.on_operator(operator("silence", matchers={"rule": "cost_regression"}, duration_s=60))
    out += p.advance(T0 + 3600)
    return out


def test_every_record_validates_against_its_topic_schema() -> None:
    out = _busy_run()
    alerts, commands = _validator("alert.v1.json"), _validator("command.v1.json")
    assert {a["status"] for a in out.alerts} == {"firing", "resolved"}
    assert {a["severity"] for a in out.alerts} == {"critical", "warning", "info"}
    assert any(a["rule"] == "quality_digest" for a in out.alerts)
    for record in out.alerts:
        alerts.validate(record)
    assert out.commands
    for record in out.commands:
        commands.validate(record)
    commands.validate(operator("hold", until=T0 + 60))
    ack_schema = _validator("ack.v1.json")
    ack_schema.validate(ack(out.commands[0]))


def test_labels_and_annotations_are_what_alertmanager_and_pagerduty_take() -> None:
    for a in _busy_run().alerts:
        for name, value in a["labels"].items():
            assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name) and isinstance(value, str)
        assert all(isinstance(v, str) for v in a["annotations"].values())
        assert {"alertname", "severity", "rollout", "audience", "delivery", "cohort"} <= set(a["labels"])
        if "pagerduty" in a:
            pd = a["pagerduty"]
            assert pd["dedup_key"] == a["fingerprint"]
            assert pd["event_action"] == ("trigger" if a["status"] == "firing" else "resolve")
            assert pd["payload"]["severity"] in {"critical", "error", "warning", "info"}
            assert {"summary", "source", "component", "group", "class"} <= set(pd["payload"])


def test_fingerprint_is_the_identity_of_rule_rollout_and_scope() -> None:
    p = policy()
    (a,) = firing(p.on_changes([verdict("error_rate", "input_class=coding")]))
    assert a["fingerprint"] == fingerprint("guardrail_regression", "r1", "input_class=coding")
    assert a["fingerprint"] != fingerprint("guardrail_regression", "r1", "input_class=billing")
    assert a["fingerprint"] != fingerprint("guardrail_regression", "r2", "input_class=coding")


def test_alerts_and_commands_never_carry_prompt_or_response_text() -> None:
    secret = "SECRET PROMPT: how do I reset my password?"
    change = verdict(
        "error_rate",
        "input_class=coding",
        response_text=secret,
        examples=[secret],
        reason=secret,
        prompt=secret,
        method=secret,
    )
    p = policy(key=b"k")
    out = p.on_changes([change])
    out += p.advance(T0 + 4000)
    blob = orjson.dumps([out.alerts, out.commands, p.to_state()]).decode()
    assert "SECRET" not in blob and "password" not in blob
    assert out.alerts and out.commands


def test_summary_names_metric_cohort_effect_and_confidence() -> None:
    p = policy()
    (a,) = firing(p.on_changes([verdict("error_rate", "input_class=coding")]))
    text: Any = a["summary"]
    for part in ("error_rate", "input_class=coding", "+2.00 pp", "confidence 99.99%"):
        assert part in text

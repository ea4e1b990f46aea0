"""Alert v1 records made by rollguard itself, for the Alertmanager bridge's tests and benchmark.

The firing record comes from a real replay: the simulator's ``error_spike_coding`` scenario (coding
errors 1% -> 8% at minute 10, as in the demo) replayed with a controller that applies every command
30 s after it was issued (``rollguard replay --auto-ack 30``). The replay's traffic never recovers,
so its resolve is made by the same policy code: the replay's own verdict changes go through a
:class:`~rollguard.policy.policy.Policy` again (which gives the very same firing), then the signals
that fired clear and the policy's calm period passes. Both records validate against the alert v1
schema. :func:`variant` derives more alerts (one rollout each) from a record, as a busy deployment
would produce them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import orjson

from rollguard.adapters.replay import replay
from rollguard.adapters.topic_contracts import default_topics_dir
from rollguard.policy.alerts.records import digest, fingerprint
from rollguard.policy.policy import Policy
from rollguard.settings.config import Config
from rollguard.sim import generate, get_scenario, write_jsonl

SCENARIO = "error_spike_coding"
ALERT_SCHEMA = default_topics_dir() / "schemas" / "alert.v1.json"


def replayed_alert_pair(out_dir: Path, minutes: float = 20.0) -> tuple[dict[str, Any], dict[str, Any]]:
    """The critical firing record of a real replay, and its resolve from the same policy."""
    config = Config()
    scenario = get_scenario(SCENARIO, seed=7, duration_s=minutes * 60.0, error_rate=0.08)
    events = out_dir / "events.jsonl"
    write_jsonl(generate(scenario), events)
    replay(events, config, out_dir, auto_ack_s=30.0)
    alerts = [orjson.loads(line) for line in (out_dir / "alerts.jsonl").read_bytes().splitlines()]
    firing = next(a for a in alerts if a["status"] == "firing" and a["severity"] == "critical")

    changes = [orjson.loads(line) for line in (out_dir / "verdicts.jsonl").read_bytes().splitlines()]
    policy = Policy(config)
    again = policy.on_changes(changes)
    assert [a["alert_id"] for a in again.alerts if a["status"] == "firing"][:1] == [firing["alert_id"]]
    latest: dict[tuple[str, ...], dict[str, Any]] = {}
    for change in changes:
        window = str(change["evidence"].get("window", "cumulative"))
        latest[(change["kind"], change["rollout_id"], change["cohort"], change["metric"], window)] = change
    last_ts = max(c["ts"] for c in changes)
    clearing = [
        {**c, "state": "insufficient", "previous": "regressed", "ts": last_ts + 30.0}
        for c in latest.values()
        if c["state"] == "regressed" and c["scope"] == firing["scope"]
    ]
    assert clearing, "the replay's alert has no regressed signal to clear"
    out = policy.on_changes(clearing)
    out += policy.advance(last_ts + 30.0 + config.alerts.resolve_after_s + 1.0)
    resolved = next(
        a for a in out.alerts if a["status"] == "resolved" and a["alert_id"] == firing["alert_id"]
    )
    return firing, resolved


def variant(record: dict[str, Any], k: int | str) -> dict[str, Any]:
    """The same alert for another rollout (``<rollout>-<k>``): its own fingerprint, id and labels."""
    out = copy.deepcopy(record)
    rollout = f"{record['rollout_id']}-{k}"
    cohort = out["labels"].get("cohort", "*")
    out["rollout_id"] = rollout
    out["labels"]["rollout"] = rollout
    out["fingerprint"] = fingerprint(out["rule"], rollout, cohort)
    out["alert_id"] = "al-" + digest(out["fingerprint"], record["alert_id"])
    out["pagerduty"]["dedup_key"] = out["fingerprint"]
    out["pagerduty"]["payload"]["group"] = rollout
    return out


def alert_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(ALERT_SCHEMA.read_text())
    return schema

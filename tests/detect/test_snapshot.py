"""The dashboard snapshot: what each concern sees now, as plain JSON, without changing anything."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from core_traffic import T0, Arm, Traffic
from rollguard.detect.engine import Engine
from rollguard.domain.events import Event

TOP = ["rollout_id", "ts", "phase", "health", "srm", "cohorts"]
COHORT = ["cohort", "scope", "n_control", "n_canary", "metrics"]
METRIC = ["metric", "state", "control", "canary", "effect", "effect_lo", "effect_hi", "margin",
          "margin_relative", "n_control", "n_canary", "drift"]  # fmt: skip


def slower_coding(t: float, seg: str, arm: str) -> Arm:
    return Arm(error=0.25, latency_median=1200.0) if (arm == "canary" and seg == "coding") else Arm()


def fed(traffic: Traffic, seconds: float) -> tuple[Engine, list[Event]]:
    engine = Engine()
    events = list(traffic.events(seconds))
    for ev in events:
        engine.process(ev)
    return engine, events


def metric(snapshot: dict[str, Any], cohort: str, name: str) -> dict[str, Any]:
    entry = next(c for c in snapshot["cohorts"] if c["cohort"] == cohort)
    found: dict[str, Any] = next(m for m in entry["metrics"] if m["metric"] == name)
    return found


def test_a_regressed_cohort_shows_its_interval_beyond_the_margin() -> None:
    engine, _ = fed(Traffic(rate=40, weight=0.2, behaviour=slower_coding), 900)
    snap = engine.snapshot("r1")
    errors = metric(snap, "input_class=coding", "error_rate")
    assert errors["state"] == "regressed" and errors["margin_relative"] is False
    assert errors["effect_lo"] > errors["margin"] == 0.005
    assert errors["effect_lo"] < errors["effect"] < errors["effect_hi"]
    assert errors["canary"] > 0.15 and errors["control"] < 0.03
    latency = metric(snap, "input_class=coding", "latency_ms.mean")
    assert latency["state"] == "regressed" and latency["margin_relative"] is True
    assert latency["effect_lo"] > latency["margin"] == 0.1
    assert latency["effect"] == pytest.approx(0.5, abs=0.1)
    p95 = metric(snap, "input_class=coding", "latency_ms.p95")
    assert p95["effect"] > p95["margin"] and p95["drift"] is None
    chat = metric(snap, "input_class=chat", "latency_ms.mean")
    assert chat["state"] == "non_inferior" and chat["effect_hi"] < chat["margin"]
    assert chat["drift"] == "stable"  # its control reference is frozen (after 600 s) and quiet


def test_a_snapshot_names_every_field_and_is_plain_json() -> None:
    engine, events = fed(Traffic(rate=40, weight=0.2), 300)
    snap = engine.snapshot("r1")
    json.dumps(snap, allow_nan=False)
    assert list(snap) == TOP and snap["rollout_id"] == "r1" and snap["phase"] == "canary"
    assert snap["health"] == "healthy" and list(snap["srm"]) == [
        "units", "observed_canary", "expected_canary", "p_value", "alpha", "requests"
    ]  # fmt: skip
    assert list(snap["srm"]["requests"]) == [
        "requests", "observed_canary", "expected_canary", "p_value", "alpha", "followed"
    ]  # fmt: skip
    assert T0 < snap["ts"] <= events[-1].ts  # the last closed batch, not the open one
    names = [c["cohort"] for c in snap["cohorts"]]  # in slot order
    assert names[0] == "*" and sorted(names[1:]) == [
        f"input_class={s}" for s in ("billing", "chat", "coding")
    ]
    whole = snap["cohorts"][0]
    assert list(whole) == COHORT and whole["scope"] == {}
    assert whole["n_control"] + whole["n_canary"] < len(events)  # the open batch is not in yet
    assert all(c["scope"] == {"input_class": c["cohort"].split("=")[1]} for c in snap["cohorts"][1:])
    names = [m["metric"] for m in whole["metrics"]]
    assert names[:4] == ["error_rate", "timeout_rate", "refusal_rate", "format_invalid_rate"]
    assert "quality.eval_score.mean" in names and names[-1] == "tpot_ms.p95"
    assert all(list(m) == METRIC for c in snap["cohorts"] for m in c["metrics"])


def test_a_rollout_without_a_closed_batch_has_no_estimates_yet() -> None:
    engine = Engine()
    engine.process(next(Traffic().events(10)))
    snap = engine.snapshot("r1")
    json.dumps(snap, allow_nan=False)
    assert snap["ts"] is None and len(snap["cohorts"]) == 1
    errors = snap["cohorts"][0]["metrics"][0]
    assert errors["state"] == "insufficient" and errors["n_control"] == 0
    assert errors["control"] is None and errors["effect_lo"] is None and errors["drift"] is None


def test_snapshots_never_change_a_later_decision() -> None:
    traffic = Traffic(rate=40, weight=0.2, behaviour=slower_coding)
    plain, watched = Engine(), Engine()
    expected, got, snapshots = [], [], []
    for i, ev in enumerate(traffic.events(1200)):
        expected += [c.to_dict() for c in plain.process(ev)]
        changes = [c.to_dict() for c in watched.process(ev)]
        got += changes
        if changes or i % 500 == 0:
            state = orjson.dumps(watched.to_state())
            snapshots.append(watched.snapshot("r1"))
            assert watched.snapshot("r1") == snapshots[-1]  # deterministic
            assert orjson.dumps(watched.to_state()) == state  # read only
    expected += [c.to_dict() for c in plain.flush()]
    got += [c.to_dict() for c in watched.flush()]
    assert got == expected and len(snapshots) > 50
    assert orjson.dumps(watched.to_state()) == orjson.dumps(plain.to_state())


def test_after_promotion_the_snapshot_compares_with_the_frozen_baseline() -> None:
    engine, _ = fed(Traffic(rate=40, weight_at=lambda t: 0.2 if t < 900 else 1.0), 1500)
    snap = engine.snapshot("r1")
    monitor = engine.monitors["r1"]
    assert snap["phase"] == "post_rollout"
    frozen_n, frozen_mean, _ = monitor.lifecycle.baseline["latency_ms.mean"]
    latency = metric(snap, "*", "latency_ms.mean")
    assert latency["control"] == frozen_mean[0] and latency["n_control"] == frozen_n[0]
    assert latency["n_canary"] > 0 and latency["state"] in ("insufficient", "non_inferior")
    p95 = metric(snap, "*", "latency_ms.p95")
    assert p95["n_control"] == monitor.lifecycle.baseline_hists[(0, "latency_ms")].count


def test_a_snapshot_of_an_unknown_rollout_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="nope"):
        Engine().snapshot("nope")

"""Bounded scope in a replay: the canary's variant parts against control's, read from the events.

A change of the canary's parts restarts the rollout exactly as a new ``variant`` does; a canary that
changes several parts at once is a bundled change, shown in the summary and named in its alerts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from core_traffic import T0, Arm, Traffic
from rollguard.cli import main
from rollguard.domain.variant_parts import bundled_parts

CONTROL = {"model": "m-2025-12", "prompt": "p6", "tools": "t3"}
# Minute 0-10: a new model and a new prompt at once (and a regression); then a fixed prompt.
CANARY_BEFORE = {"model": "m-2026-01", "prompt": "p7", "tools": "t3"}
CANARY_AFTER = {"model": "m-2026-01", "prompt": "p8", "tools": "t3"}
SWITCH_S = 600.0


def broken_then_fixed(t: float, seg: str, arm: str) -> Arm:
    return Arm(error=0.3) if (arm == "canary" and t < SWITCH_S) else Arm()


def write(
    path: Path, traffic: Traffic, seconds: float, extra: Callable[[dict[str, Any], float], None]
) -> None:
    """The traffic's events as lines, each first given to ``extra`` with its time since the start."""
    with open(path, "wb") as fh:
        for ev in traffic.events(seconds):
            row = ev.to_dict()
            extra(row, ev.ts - T0)
            fh.write(orjson.dumps(row) + b"\n")


def with_parts(row: dict[str, Any], t: float) -> None:
    if row["arm"] == "canary":
        row["variant_parts"] = CANARY_BEFORE if t < SWITCH_S else CANARY_AFTER
    else:
        row["variant_parts"] = CONTROL


def replay(tmp_path: Path, name: str, traffic: Traffic, seconds: float,
           extra: Callable[[dict[str, Any], float], None]) -> dict[str, Any]:  # fmt: skip
    events = tmp_path / f"{name}.jsonl"
    write(events, traffic, seconds, extra)
    out = tmp_path / name
    assert main(["replay", str(events), "--out", str(out)]) == 0
    read = {f: [orjson.loads(x) for x in (out / f"{f}.jsonl").read_bytes().splitlines()]
            for f in ("verdicts", "alerts", "audit")}  # fmt: skip
    return {**read, "summary": orjson.loads((out / "summary.json").read_bytes())}


def without_parts(verdict: dict[str, Any]) -> dict[str, Any]:
    """A verdict change without what only parts add (the reason and parts of a reset, the named parts)."""
    drop = {"changed_parts", "bundled_change", "parts_from", "parts_to", "reason", "from", "to"}
    return {**verdict, "evidence": {k: v for k, v in verdict["evidence"].items() if k not in drop}}


def test_a_change_of_the_canary_parts_mid_rollout_restarts_it_exactly_as_a_new_variant_does(
    tmp_path: Path,
) -> None:
    by_parts = replay(tmp_path, "parts", Traffic(rate=40, weight=0.3, behaviour=broken_then_fixed), 1500,
                      with_parts)  # fmt: skip
    by_variant = replay(
        tmp_path, "variant",
        Traffic(rate=40, weight=0.3, behaviour=broken_then_fixed,
                variant_at=lambda t: "v1" if t < SWITCH_S else "v2"),
        1500, lambda row, t: None,
    )  # fmt: skip

    resets = [v for v in by_parts["verdicts"] if v["kind"] == "rollout"]
    assert len(resets) == 1 and resets[0]["state"] == "reset"
    evidence = resets[0]["evidence"]
    assert evidence["reason"] == "canary variant parts changed"
    assert evidence["parts_from"] == CANARY_BEFORE and evidence["parts_to"] == CANARY_AFTER
    assert evidence["changed_parts"] == ["prompt"]
    variant_reset = next(v for v in by_variant["verdicts"] if v["kind"] == "rollout")
    assert resets[0]["ts"] == variant_reset["ts"]
    # The same decisions, batch for batch: only what the parts add to the evidence differs.
    assert [without_parts(v) for v in by_parts["verdicts"]] == [
        without_parts(v) for v in by_variant["verdicts"]
    ]
    assert [a["type"] for a in by_parts["audit"] if a["type"] == "rollout_reset"] == ["rollout_reset"]
    after = [v for v in by_parts["verdicts"] if v["ts"] >= resets[0]["ts"] and v["state"] == "regressed"]
    assert after == []  # the fixed prompt is judged on its own traffic


def test_the_summary_shows_the_changed_parts_and_the_bundled_change_flag(tmp_path: Path) -> None:
    out = replay(tmp_path, "parts", Traffic(rate=40, weight=0.3, behaviour=broken_then_fixed), 1500,
                 with_parts)  # fmt: skip
    view = out["summary"]["variant_parts"]["r1"]
    # After the reset the canary runs a new model and a new prompt: two parts, a bundled change.
    assert view == {"control": CONTROL, "canary": CANARY_AFTER, "changed": ["model", "prompt"],
                    "bundled_change": True}  # fmt: skip
    assert bundled_parts(view) == ["model", "prompt"]


def test_a_regression_alert_of_a_bundled_change_names_the_parts_that_changed_together(tmp_path: Path) -> None:
    out = replay(tmp_path, "parts", Traffic(rate=40, weight=0.3, behaviour=broken_then_fixed), 1500,
                 with_parts)  # fmt: skip
    firing = [a for a in out["alerts"] if a["status"] == "firing" and "regress" in a["rule"]]
    assert firing, "the broken canary raises a regression alert"
    for alert in firing:
        assert "(bundled change: model and prompt changed together)" in alert["summary"], alert["summary"]
        assert "cannot be pinned on one of them" in alert["annotations"]["description"]
    regressed = [v for v in out["verdicts"] if v["state"] == "regressed"]
    assert regressed and all(v["evidence"]["changed_parts"] == ["model", "prompt"] for v in regressed)
    assert all(v["evidence"]["bundled_change"] is True for v in regressed)


def test_a_canary_changing_one_part_is_not_a_bundled_change_and_its_alert_names_that_part(
    tmp_path: Path,
) -> None:
    def one_part(row: dict[str, Any], t: float) -> None:
        row["variant_parts"] = {**CONTROL, "prompt": "p7"} if row["arm"] == "canary" else CONTROL

    out = replay(tmp_path, "one", Traffic(rate=40, weight=0.3, behaviour=broken_then_fixed), 900, one_part)
    view = out["summary"]["variant_parts"]["r1"]
    assert view["changed"] == ["prompt"] and view["bundled_change"] is False
    assert bundled_parts(view) == []
    firing = [a for a in out["alerts"] if a["status"] == "firing" and "regress" in a["rule"]]
    assert firing and all("(changed part: prompt)" in a["summary"] for a in firing)
    assert not any("bundled" in a["summary"] for a in out["alerts"])
    assert [v for v in out["verdicts"] if v["kind"] == "rollout"] == []


def test_events_without_parts_leave_the_summary_and_the_verdicts_as_they_were(tmp_path: Path) -> None:
    out = replay(tmp_path, "none", Traffic(rate=40, weight=0.3, behaviour=broken_then_fixed), 900,
                 lambda row, t: None)  # fmt: skip
    assert "variant_parts" not in out["summary"]
    assert not any("changed_parts" in v["evidence"] for v in out["verdicts"])

"""The timeline: each rollout's dashboard point every N seconds of its own event time, written by replay
next to its other outputs — which stay byte for byte what they were."""

from __future__ import annotations

from pathlib import Path

import orjson

from core_traffic import Arm, Traffic
from rollguard.adapters.replay import replay
from rollguard.pipeline.timeline import Timeline
from rollguard.settings import Config

OUTPUTS = (
    "verdicts.jsonl", "rejected.jsonl", "alerts.jsonl", "commands.jsonl", "audit.jsonl", "summary.json",
)  # fmt: skip


def _events(path: Path) -> Path:
    def behaviour(t: float, seg: str, arm: str) -> Arm:
        return Arm(error=0.25) if (arm == "canary" and seg == "coding" and t > 120) else Arm()

    with open(path, "wb") as fh:
        for ev in Traffic(rate=40, weight=0.2, behaviour=behaviour).events(600):
            fh.write(orjson.dumps(ev.to_dict()) + b"\n")
    return path


def test_points_fall_on_a_grid_of_event_time_one_per_crossing() -> None:
    t = Timeline(30.0)
    assert t.crossed("r", 1000.0) is None  # the first time seen only sets the next grid time
    assert [t.crossed("r", ts) for ts in (1010.0, 1020.0, 1021.0, 1029.0)] == [None, 1020.0, None, None]
    assert t.crossed("r", 1200.0) == 1200.0  # a long gap gives one point, at the newest grid time
    assert t.crossed("other", 1201.0) is None  # every rollout on its own clock


def test_replay_writes_the_timeline_and_leaves_every_other_output_as_it_was(tmp_path: Path) -> None:
    events = _events(tmp_path / "events.jsonl")
    replay(events, Config(), tmp_path / "plain", auto_ack_s=30.0)
    replay(events, Config(), tmp_path / "a", auto_ack_s=30.0, timeline_every_s=60.0)
    replay(events, Config(), tmp_path / "b", auto_ack_s=30.0, timeline_every_s=60.0)
    for name in OUTPUTS:
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "a" / name).read_bytes(), name
    assert not (tmp_path / "plain" / "timeline.jsonl").exists()
    timeline = (tmp_path / "a" / "timeline.jsonl").read_bytes()
    assert timeline == (tmp_path / "b" / "timeline.jsonl").read_bytes()

    points = [orjson.loads(line) for line in timeline.splitlines()]
    assert [p["at"] % 60 for p in points[:-1]] == [0.0] * (len(points) - 1)
    assert [p["at"] for p in points[:-1]] == sorted({p["at"] for p in points[:-1]})
    assert len(points) - 1 == 9  # 10 minutes of traffic: a point at every minute after the first
    last = points[-1]
    assert last["final"] is True and last["at"] == last["clock"]
    coding = next(c for c in last["snapshot"]["cohorts"] if c["cohort"] == "input_class=coding")
    errors = next(m for m in coding["metrics"] if m["metric"] == "error_rate")
    assert errors["state"] == "regressed" and errors["effect_lo"] > errors["margin"]
    # the change detector's window found it first
    assert last["signals"]["input_class=coding"]["error_rate"]["recent"] == "regressed"
    assert [c["status"] for c in last["policy"]["commands"]] == ["applied"]
    assert last["policy"]["disabled_scopes"] == ["input_class=coding"]


def test_the_cli_writes_a_timeline_by_default_and_not_with_zero(tmp_path: Path) -> None:
    from rollguard.cli import main

    events = _events(tmp_path / "events.jsonl")
    assert main(["replay", str(events), "--out", str(tmp_path / "on")]) == 0
    assert main(["replay", str(events), "--out", str(tmp_path / "off"), "--timeline-every", "0"]) == 0
    assert (tmp_path / "on" / "timeline.jsonl").stat().st_size > 0
    assert not (tmp_path / "off" / "timeline.jsonl").exists()

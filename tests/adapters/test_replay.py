"""``rollguard replay``: same input, same output byte for byte; bad lines are kept aside, not fatal."""

from __future__ import annotations

from pathlib import Path

import orjson

from core_traffic import Arm, Traffic
from rollguard.cli import main


def write_events(path: Path) -> None:
    def behaviour(t: float, seg: str, arm: str) -> Arm:
        return Arm(error=0.25) if (arm == "canary" and seg == "coding") else Arm()

    with open(path, "wb") as fh:
        for i, ev in enumerate(Traffic(rate=40, weight=0.2, behaviour=behaviour).events(600)):
            fh.write(orjson.dumps(ev.to_dict()) + b"\n")
            if i == 100:
                fh.write(b'{"event_id": "bad-1", "arm": "blue"}\n')
            if i == 200:
                fh.write(b"not json at all\n")


def test_replay_is_deterministic_and_sets_bad_lines_aside(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    write_events(events)
    assert main(["replay", str(events), "--out", str(tmp_path / "a")]) == 0
    assert main(["replay", str(events), "--out", str(tmp_path / "b")]) == 0
    for name in ("verdicts.jsonl", "rejected.jsonl", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name

    rejected = [orjson.loads(line) for line in (tmp_path / "a" / "rejected.jsonl").read_bytes().splitlines()]
    assert [(r["line"], r["field"]) for r in rejected] == [(102, "request_id"), (203, "")]
    assert "not valid JSON" in rejected[1]["reason"]

    verdicts = [orjson.loads(line) for line in (tmp_path / "a" / "verdicts.jsonl").read_bytes().splitlines()]
    assert verdicts, "a replay of a regression produces verdicts"
    times = [v["ts"] for v in verdicts]
    assert times == sorted(times)  # stamped with event time, in order
    hit = [v for v in verdicts if v["state"] == "regressed" and v["cohort"] == "input_class=coding"]
    assert hit and hit[0]["metric"] == "error_rate" and hit[0]["evidence"]["n_canary"] > 0
    summary = orjson.loads((tmp_path / "a" / "summary.json").read_bytes())
    assert summary["rejected"] == 2 and summary["events"] == summary["lines"] - 2


def test_a_bad_config_fails_before_any_event_is_read(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("engine:\n  min_samples: lots\n")
    events = tmp_path / "events.jsonl"
    events.write_text("")
    assert main(["replay", str(events), "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()

"""``rollguard replay`` with shadow traffic: paired verdicts and pairing counts, identical on every run."""

from __future__ import annotations

from pathlib import Path

import orjson

from rollguard.adapters.replay import replay
from rollguard.settings.config import parse_config
from rollguard.sim import generate, get_scenario, write_jsonl


def test_replay_reports_pairs_and_losses_and_is_deterministic(tmp_path: Path) -> None:
    sc = get_scenario("shadow_text", seed=8, duration_s=300, rate_per_s=20, start_s=0.0, latency=1.6)
    events = tmp_path / "events.jsonl"
    write_jsonl(generate(sc), events)
    config = parse_config("embeddings:\n  enabled: false\n")  # pairing and scalar tests only: no model
    outputs = []
    for run in ("a", "b"):
        replay(events, config, tmp_path / run)
        outputs.append((tmp_path / run / "verdicts.jsonl").read_bytes())
    assert outputs[0] == outputs[1]
    verdicts = [orjson.loads(line) for line in outputs[0].splitlines()]
    hits = {(v["metric"], v["cohort"]) for v in verdicts if v["state"] == "regressed"}
    assert ("shadow.latency_ms", "input_class=coding") in hits
    summary = orjson.loads((tmp_path / "a" / "summary.json").read_bytes())
    counts = summary["semantic"][sc.rollout_id]["shadow"][sc.rollout_id]
    assert counts["paired"] > 1000 and counts["unpaired_live"] > 0
    assert summary["semantic"][sc.rollout_id]["embedded"] == 0

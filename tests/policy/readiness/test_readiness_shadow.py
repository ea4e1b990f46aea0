"""Shadow clean before live, replayed: a new version that answered in shadow before any live canary
traffic is ready only if, when live traffic started, its paired comparisons were non-inferior and
nothing diverged; a rollout without such a shadow run is not judged on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from rollguard.adapters.replay import replay
from rollguard.settings.config import parse_config
from rollguard.sim import generate, get_scenario, write_jsonl
from rollguard.sim.scenario import Injection

CONFIG = "readiness: {baselines: off, revert: off}\n"


def _shadow_then_live(tmp_path: Path, *, shadow_errors: float | None, shadow_first: bool = True) -> list[Any]:
    """20 minutes of shadow copies beside control only, then a 20% live canary (shadow A/A traffic)."""
    sc = get_scenario("shadow_aa", seed=3, duration_s=1500, rate_per_s=40, canary_weight=0.2)
    if shadow_first:
        sc.control_only_s = 1200.0
    if shadow_errors is not None:
        errors = Injection("error_rate", shadow_errors, 0.0, arms=["shadow"], label="shadow errors")
        sc.injections.append(errors)
    write_jsonl(generate(sc), tmp_path / "events.jsonl")
    replay(tmp_path / "events.jsonl", parse_config(CONFIG), tmp_path / "out", signing_key=b"k")
    records = [orjson.loads(x) for x in (tmp_path / "out" / "readiness.jsonl").read_bytes().splitlines()]
    return [(round(r["at"] - sc.start_ts), r["ready"], _shadow(r)) for r in records]


def _shadow(record: dict[str, Any]) -> tuple[str, str]:
    check = next(c for c in record["checks"] if c["check"] == "shadow")
    return check["state"], check["evidence"]


def test_a_clean_shadow_run_makes_the_rollout_ready_when_live_traffic_starts(tmp_path: Path) -> None:
    timeline = _shadow_then_live(tmp_path, shadow_errors=None)
    assert [(at, ready, state) for at, ready, (state, _) in timeline][-2:] == [
        (0, False, "pending"),  # shadowing: judged when live traffic starts
        (1200, True, "met"),
    ]
    evidence = timeline[-1][2][1]
    assert "answers before live traffic; non-inferior: shadow.cost_usd, shadow.failure_rate" in evidence


def test_a_shadow_that_diverged_before_live_traffic_is_not_ready_and_says_where(tmp_path: Path) -> None:
    at, ready, (state, evidence) = _shadow_then_live(tmp_path, shadow_errors=0.2)[-1]
    assert (at, ready, state) == (1200, False, "unmet")
    assert evidence.startswith("shadow diverged from live before live traffic: shadow.failure_rate in")


def test_shadow_and_live_started_together_leave_the_check_off(tmp_path: Path) -> None:
    timeline = _shadow_then_live(tmp_path, shadow_errors=None, shadow_first=False)
    state, evidence = timeline[-1][2]
    assert state == "off" and evidence.startswith("shadow and live canary traffic started together")
    assert "unmet" not in {state for _, _, (state, _) in timeline}

"""A replay of a regression in one cohort, shared by the report tests (a few seconds, once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollguard.adapters.replay import replay
from rollguard.settings import Config
from rollguard.sim import generate, get_scenario, write_jsonl


def regression_events(path: Path) -> Path:
    """8 simulated minutes, 30% canary: coding errors rise to 25% on the canary at minute 2."""
    sc = get_scenario(
        "error_spike_coding", seed=11, duration_s=480, rate_per_s=30, canary_weight=0.3, start_s=120,
        error_rate=0.25,
    )  # fmt: skip
    write_jsonl(generate(sc), path)
    return path


@pytest.fixture(scope="session")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A replay's output directory, with its timeline every 30 s and every command acked after 20 s."""
    d = tmp_path_factory.mktemp("replayed")
    events = regression_events(d / "events.jsonl")
    replay(events, Config(), d / "out", auto_ack_s=20.0, timeline_every_s=30.0)
    return d / "out"

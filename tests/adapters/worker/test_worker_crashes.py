"""Nothing lost, nothing twice: `rollguard worker` killed with SIGKILL at random points during a regression
scenario (and restarted each time) publishes the scoped rollback command exactly once, every critical
alert notification replay produces, counts every event exactly once per cohort, and ends with the
verdicts replay ends with."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from worker_kit import (
    expected_counts,
    get_json,
    make_topics,
    produce,
    replay_outputs,
    rollout_key,
    scenario_events,
    wait_ready,
    worker_command,
    worker_outputs,
    write_contracts,
)

from kafka_broker import free_port
from rollguard.adapters.worker.observability import cohort_counts
from rollguard.domain.events import Event, parse_event
from rollguard.pipeline.pipelines import Pipelines
from rollguard.settings import Config

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(900)]
KILLS = 6


def _final_verdicts(records: list[dict[str, Any]]) -> dict[tuple[str, str, str, str], str]:
    """The last state of every (rollout, kind, cohort, metric), in publishing order."""
    out = {}
    for r in records:
        out[(r["rollout_id"], r["kind"], r["cohort"], r["metric"])] = r["state"]
    return out


def _replay_cohort_counts(events: list[bytes]) -> dict[str, dict[str, list[int]]]:
    pipelines = Pipelines(Config())
    for value in events:
        ev = parse_event(value)
        assert isinstance(ev, Event)
        pipelines.process(ev)
    pipelines.flush()
    return {p.rollout_id: cohort_counts(p.engine.monitors[p.rollout_id].snapshot()) for p in pipelines}


def test_sigkill_at_random_points_loses_nothing_and_repeats_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    events = scenario_events()
    expected = replay_outputs(events, tmp_path)
    rollback = [c for c in expected["control"] if c["action"] == "disable_scope"]
    assert len(rollback) == 1
    critical = [a for a in expected["alerts"] if a["severity"] == "critical"]
    assert len(critical) >= 3

    topics = make_topics(kafka_bootstrap)
    contracts = write_contracts(topics, tmp_path / "topics")
    port = free_port()
    config = tmp_path / "rollguard.yaml"
    config.write_text(
        yaml.safe_dump(
            {"worker": {"web_port": port, "idle_after_s": 3, "tick_s": 0.5, "checkpoint_every_s": 1}}
        )
    )
    produce(kafka_bootstrap, topics.events, events, rollout_key)
    cmd = worker_command(kafka_bootstrap, config, contracts, f"crash-{topics.events}", tmp_path / "data")
    rng = random.Random()
    log = (tmp_path / "worker.log").open("ab")
    status_url = f"http://127.0.0.1:{port}/status"
    kills = 0
    applied_before_kill = []
    try:
        while kills < KILLS:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            wait_ready(proc, port, 90)
            time.sleep(rng.uniform(0.5, 6.0))
            try:
                applied_before_kill.append(get_json(status_url)["worker"]["applied"])
            except OSError:
                applied_before_kill.append(-1)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            kills += 1
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        wait_ready(proc, port, 90)
        want = expected_counts(events)
        deadline = time.monotonic() + 400
        while True:
            status = get_json(status_url)
            counted = {r["rollout_id"]: r["counters"].get("events", 0) for r in status["rollouts"]}
            if counted == want:
                break
            assert time.monotonic() < deadline, f"counts {counted} never reached {want}"
            time.sleep(1)
        # The last batches are closed by idle ticks: wait until every rollout's was handled (published).
        while (final := get_json(status_url))["worker"]["idle_closed"] < len(want):
            assert time.monotonic() < deadline, f"idle ticks handled: {final['worker']['idle_closed']}"
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    assert kills >= 5 and any(n > 0 for n in applied_before_kill), applied_before_kill

    got = worker_outputs(kafka_bootstrap, topics)
    # The scoped rollback, and every command, exactly once.
    ids = [c["command_id"] for c in got["control"]]
    assert ids.count(rollback[0]["command_id"]) == 1
    assert len(ids) == len(set(ids))
    # Every critical notification replay produces is published, none twice.
    notes = [
        (a["alert_id"], a["status"], a["notification"]["seq"])
        for a in got["alerts"]
        if a["severity"] == "critical"
    ]
    assert len(notes) == len(set(notes))
    assert {(a["alert_id"], a["status"], a["notification"]["seq"]) for a in critical} <= set(notes)
    # Every event counted once, in every cohort.
    want_counts = _replay_cohort_counts(events)
    assert {r["rollout_id"]: r["cohort_counts"] for r in final["rollouts"]} == want_counts
    # The verdicts end where replay's end (verdict changes are at-least-once: compare final states).
    assert _final_verdicts(got["verdicts"]) == _final_verdicts(expected["verdicts"])

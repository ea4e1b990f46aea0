"""Several workers in one consumer group split the rollouts: each rollout is analysed by exactly one of
them, and when one dies the other takes its partitions over and resumes those rollouts' statistics from
the changelog — not from zero, not twice."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from worker_kit import (
    get_json,
    make_topics,
    produce,
    rollout_key,
    wait_ready,
    worker_command,
    write_contracts,
)

from kafka_broker import free_port
from rollguard.adapters.worker.topics import partition_for
from rollguard.sim import generate, get_scenario, merge_streams

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(600)]
PARTITIONS = 3


def _rollouts() -> list[str]:
    """Six rollout ids, two on each of the three partitions."""
    chosen: dict[int, list[str]] = {}
    i = 0
    while sum(map(len, chosen.values())) < 6:
        rid = f"group-{i}"
        part = partition_for(rid.encode(), PARTITIONS)
        if len(chosen.setdefault(part, [])) < 2:
            chosen[part].append(rid)
        i += 1
    return sorted(r for rs in chosen.values() for r in rs)


def _events(rollouts: list[str]) -> list[bytes]:
    streams = []
    for k, rid in enumerate(rollouts):
        sc = get_scenario("aa", seed=40 + k, duration_s=360, rate_per_s=10)
        sc.rollout_id = rid
        streams.append(generate(sc))
    return [orjson.dumps(ev) for ev in merge_streams(*streams)]


def _status(port: int) -> dict[str, Any]:
    status: dict[str, Any] = get_json(f"http://127.0.0.1:{port}/status")
    return status


def _counted(status: dict[str, Any]) -> dict[str, int]:
    return {r["rollout_id"]: r["counters"].get("events", 0) + r["open_batch"] for r in status["rollouts"]}


def test_two_workers_split_the_rollouts_and_one_takes_over_when_the_other_dies(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    rollouts = _rollouts()
    events = _events(rollouts)
    want = {rid: sum(1 for v in events if orjson.loads(v)["rollout_id"] == rid) for rid in rollouts}
    first, second = events[: len(events) // 2], events[len(events) // 2 :]
    topics = make_topics(kafka_bootstrap, PARTITIONS)
    contracts = write_contracts(topics, tmp_path / "topics")
    app_id = f"group-{topics.events}"
    procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    logs = []
    try:
        for name in ("a", "b"):
            port = free_port()
            config = tmp_path / f"{name}.yaml"
            config.write_text(yaml.safe_dump({"worker": {"web_port": port, "idle_after_s": 600}}))
            log = (tmp_path / f"{name}.log").open("wb")
            logs.append(log)
            cmd = worker_command(kafka_bootstrap, config, contracts, app_id, tmp_path / f"data-{name}")
            procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), port)
        for proc, port in procs.values():
            wait_ready(proc, port, 120)
        produce(kafka_bootstrap, topics.events, first, rollout_key)
        half = {rid: sum(1 for v in first if orjson.loads(v)["rollout_id"] == rid) for rid in rollouts}
        deadline = time.monotonic() + 180
        while True:
            held = {name: _counted(_status(port)) for name, (_, port) in procs.items()}
            merged = {rid: n for counts in held.values() for rid, n in counts.items()}
            if merged == half and sum(map(len, held.values())) == len(rollouts):
                break
            assert time.monotonic() < deadline, f"{held} never reached {half}"
            time.sleep(1)
        # Each rollout is analysed by exactly one worker, and both have work.
        assert not set(held["a"]) & set(held["b"]) and held["a"] and held["b"]
        taken_over = sorted(held["a"])
        # The dead worker's rollouts are checkpointed (within checkpoint_every_s, even while quiet).
        deadline = time.monotonic() + 60
        while not all(r["checkpointed"] for r in _status(procs["a"][1])["rollouts"]):
            assert time.monotonic() < deadline, "the quiet rollouts were never checkpointed"
            time.sleep(0.5)

        procs["a"][0].send_signal(signal.SIGKILL)
        procs["a"][0].wait(timeout=30)
        produce(kafka_bootstrap, topics.events, second, rollout_key)
        b_port = procs["b"][1]
        deadline = time.monotonic() + 240
        while _counted(_status(b_port)) != want:
            assert time.monotonic() < deadline, f"{_counted(_status(b_port))} never reached {want}"
            time.sleep(1)
        final = _status(b_port)
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
        for log in logs:
            log.close()
    assert final["worker"]["restored"] >= len(taken_over)
    # Resumed from the changelog, not from zero: of each rollout it took over, the surviving worker
    # applied exactly the second half (the dead one had checkpointed the first).
    here = {r["rollout_id"]: r["applied_here"] for r in final["rollouts"]}
    assert {rid: here[rid] for rid in taken_over} == {rid: want[rid] - half[rid] for rid in taken_over}

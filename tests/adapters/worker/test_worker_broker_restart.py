"""A broker of the test's own is stopped and started again in the middle of a run: the worker reconnects,
and the events it consumed, the verdicts and the commands equal a run without the restart (replay)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from worker_kit import (
    ManualClock,
    by_rollout,
    expected_counts,
    make_topics,
    produce,
    replay_outputs,
    rollout_key,
    scenario_events,
    wait_until,
    worker_outputs,
)

import kafka_broker
from rollguard.adapters.worker import WorkerOptions, create_app
from rollguard.settings import Config

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[kafka_broker.Broker]:
    broker = kafka_broker.start(tmp_path / "kafka")
    try:
        yield broker
    finally:
        kafka_broker.stop(broker)


def test_a_broker_restart_mid_run_changes_nothing(own_broker: kafka_broker.Broker, tmp_path: Path) -> None:
    events = scenario_events()
    expected = replay_outputs(events, tmp_path)
    bootstrap = own_broker.bootstrap
    topics = make_topics(bootstrap)
    half = len(events) // 2
    produce(bootstrap, topics.events, events[:half], rollout_key)
    clock = ManualClock()
    options = WorkerOptions(
        bootstrap, app_id=f"restart-{topics.events}", web_enabled=False, idle_after_s=30, tick_s=0.2
    )
    wa = create_app(options, Config(), topics, clock=clock)
    want = expected_counts(events)

    def counted() -> dict[str, int]:
        return {
            rid: rt.pipeline.engine.monitors[rid].counters["events"]
            + len(rt.pipeline.engine.monitors[rid].batch.events)
            for rid, rt in wa.runtime.runtimes.items()
        }

    async def run() -> None:
        await wa.start()
        try:
            await wait_until(lambda: wa.stats.applied >= half // 2, 240, "half of the first half applied")
            # The broker goes away mid-stream and comes back on the same address with the same data.
            await asyncio.to_thread(kafka_broker.stop, own_broker)
            await asyncio.sleep(3)
            await asyncio.to_thread(
                kafka_broker.start, own_broker.data_dir, port=int(bootstrap.rsplit(":", 1)[1])
            )
            await asyncio.to_thread(produce, bootstrap, topics.events, events[half:], rollout_key)
            await wait_until(lambda: counted() == want, 400, "every event counted once")
            clock.now += 60
            n = wa.stats.checkpoints
            await wait_until(lambda: wa.stats.checkpoints >= n + len(want), 120, "the idle ticks")
        finally:
            await wa.stop()

    asyncio.run(run())
    got = worker_outputs(bootstrap, topics)
    last_ts: dict[str, float] = {}
    for value in events:
        ev = orjson.loads(value)
        last_ts[ev["rollout_id"]] = max(last_ts.get(ev["rollout_id"], 0.0), float(ev["ts"]))
    for kind in ("control", "alerts"):
        stamp = "issued_at" if kind == "control" else None
        for rid, records in by_rollout(expected[kind]).items():
            mine = [r for r in by_rollout(got[kind]).get(rid, []) if _at(r, stamp) <= last_ts[rid]]
            assert mine == [r for r in records if _at(r, stamp) <= last_ts[rid]], (kind, rid)
    # Verdict changes are at-least-once: after the reconnect a change may be published twice, never differ.
    got_verdicts, want_verdicts = by_rollout(got["verdicts"]), by_rollout(expected["verdicts"])
    assert {rid: _dedup(v) for rid, v in got_verdicts.items()} == {
        rid: _dedup(v) for rid, v in want_verdicts.items()
    }


def _at(record: dict[str, object], stamp: str | None) -> float:
    if stamp is not None:
        return float(record[stamp])  # type: ignore[arg-type]
    return float(record["notification"]["at"])  # type: ignore[index]


def _dedup(records: list[dict[str, object]]) -> list[bytes]:
    seen: list[bytes] = []
    for r in records:
        b = orjson.dumps(r, option=orjson.OPT_SORT_KEYS)
        if b not in seen:
            seen.append(b)
    return seen
